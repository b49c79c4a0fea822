"""Users: who owns each study, workflow, scan and carousel, and the users with tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        batch.add_column(sa.Column("user_name", sa.String(64)))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("user_name")
