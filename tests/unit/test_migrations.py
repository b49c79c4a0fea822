"""The migrations build the schema the models describe (a model change needs a migration)."""

from __future__ import annotations

import sqlalchemy as sa

import idds.owners
import idds.tasks  # noqa: F401 - registers the tables on Base.metadata
from idds.db import Base


def test_migrated_schema_matches_the_models(engine):
    inspector = sa.inspect(engine)
    assert set(Base.metadata.tables) <= set(inspector.get_table_names())
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
