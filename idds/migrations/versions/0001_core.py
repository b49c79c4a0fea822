"""The scheduling core: owners with leases, tasks, attempts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_PG_NOW = "extract(epoch from clock_timestamp())::float8"


def _now() -> sa.TextClause:
    dialect = op.get_bind().dialect.name
    return sa.text(_PG_NOW if dialect == "postgresql" else _SQLITE_NOW)


def upgrade() -> None:
    now = _now()
    op.create_table(
        "owners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("lease_holder", sa.String(128)),
        sa.Column("lease_expires", sa.Float),
        sa.Column("created", sa.Float, nullable=False, server_default=now),
        sa.Column("updated", sa.Float),
        sa.UniqueConstraint("kind", "name"),
    )
    states = "'pending', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled'"
    final = "'cancelled', 'failed', 'succeeded'"
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("site", sa.String(64)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("retry_errors", sa.Boolean, nullable=False),
        sa.Column("timeout_s", sa.Float),
        sa.Column("token", sa.String(64)),
        sa.Column("lease_expires", sa.Float),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("node", sa.String(128)),
        sa.Column("created", sa.Float, nullable=False, server_default=now),
        sa.Column("dispatched", sa.Float),
        sa.Column("started", sa.Float),
        sa.Column("finished", sa.Float),
        sa.UniqueConstraint("owner_id", "number"),
        sa.CheckConstraint(f"state IN ({states})", name="ck_tasks_state"),
        sa.CheckConstraint(
            f"state NOT IN ({final}) OR finished IS NOT NULL", name="ck_tasks_finished"
        ),
        sa.CheckConstraint("attempt <= max_attempts", name="ck_tasks_attempts"),
    )
    op.create_index("ix_tasks_owner_state", "tasks", ["owner_id", "state"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64)),
        sa.Column("node", sa.String(128)),
        sa.Column("head", sa.String(128)),
        sa.Column("dispatched", sa.Float, nullable=False, server_default=now),
        sa.Column("started", sa.Float),
        sa.Column("finished", sa.Float),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("task_id", "number"),
    )
    op.create_index(
        "ux_attempts_one_success",
        "attempts",
        ["task_id"],
        unique=True,
        sqlite_where=sa.text("state = 'succeeded'"),
        postgresql_where=sa.text("state = 'succeeded'"),
    )


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("tasks")
    op.drop_table("owners")
