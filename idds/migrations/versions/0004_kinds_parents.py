"""How each attempt ended (its kind), and owners' parents in place of dotted names.

Attempts recorded before get their kind from their state and error (``lost:``, ``timed out``)
and, for succeeded ones, from the task's result (``pruned``). Owners named ``PARENT.CHILD``
(a segmented study's segments, a workflow's study and toy-scan nodes) get the owner named by
the longest such prefix among study groups and workflows as their parent.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_KINDS = "'succeeded', 'pruned', 'error', 'failed', 'timeout', 'lost', 'cancelled'"
_PARENT_KINDS = ("study-group", "workflow")


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("kind", sa.String(16)))
        batch.create_check_constraint("ck_attempts_kind", f"kind IS NULL OR kind IN ({_KINDS})")
    with op.batch_alter_table("owners") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer))
        batch.create_foreign_key(
            "fk_owners_parent", "owners", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_owners_parent", ["parent_id"])
    conn = op.get_bind()
    _attempt_kinds(conn)
    _parents(conn)


def _attempt_kinds(conn: sa.Connection) -> None:
    conn.execute(
        sa.text(
            "UPDATE attempts SET kind = CASE"
            " WHEN state = 'succeeded' THEN 'succeeded'"
            " WHEN state = 'cancelled' THEN 'cancelled'"
            " WHEN state = 'failed' AND error LIKE 'lost:%' THEN 'lost'"
            " WHEN state = 'failed' AND error LIKE 'timed out%' THEN 'timeout'"
            " WHEN state = 'failed' THEN 'error' END"
        )
    )
    tasks = sa.table("tasks", sa.column("token"), sa.column("state"), sa.column("result", sa.JSON))
    succeeded = sa.select(tasks.c.token, tasks.c.result).where(tasks.c.state == "succeeded")
    rows = conn.execute(succeeded)
    pruned = [t for t, result in rows if isinstance(result, dict) and result.get("pruned")]
    if pruned:
        conn.execute(
            sa.text("UPDATE attempts SET kind = 'pruned' WHERE token = :t AND state = 'succeeded'"),
            [{"t": t} for t in pruned],
        )


def _parents(conn: sa.Connection) -> None:
    owners = sa.table("owners", sa.column("id"), sa.column("kind"), sa.column("name"))
    rows = conn.execute(sa.select(owners.c.id, owners.c.kind, owners.c.name)).all()
    parents = {name: i for i, kind, name in rows if kind in _PARENT_KINDS}
    updates = []
    for owner_id, _kind, name in rows:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            parent = parents.get(".".join(parts[:cut]))
            if parent is not None and parent != owner_id:
                updates.append({"p": parent, "i": owner_id})
                break
    if updates:
        conn.execute(sa.text("UPDATE owners SET parent_id = :p WHERE id = :i"), updates)


def downgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        batch.drop_index("ix_owners_parent")
        batch.drop_constraint("fk_owners_parent", type_="foreignkey")
        batch.drop_column("parent_id")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_constraint("ck_attempts_kind", type_="check")
        batch.drop_column("kind")
