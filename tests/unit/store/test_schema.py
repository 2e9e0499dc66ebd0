"""The tables store/sql/schema.py declares equal the schema its migrations build.

The migrations are the source of truth (they run on every start); the `sa.Table` objects in
store/sql/schema.py are a copy kept by hand for the queries. Each check opens a fresh SQLite
file with `SqlStore`, which runs the migrations as a server does, and compares what they built
with the declared tables: Alembic's autogenerate comparison for tables, columns, types,
nullability and foreign keys, and SQLAlchemy's inspector and SQLite's own DDL for what that
comparison does not see (primary keys, unnamed unique constraints, index sort order and
partial-index conditions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex

from batchyard.store.sql import SqlStore, schema

DECLARED = schema.metadata


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    """A fresh SQLite file that the migrations, and nothing else, have shaped."""
    path = tmp_path / "batchyard.db"
    SqlStore(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def engine(migrated: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{migrated}")
    yield engine
    engine.dispose()


def test_autogenerate_finds_nothing_to_change(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        # Server defaults are not compared: the one the migrations create
        # (jobs.scheduling_priority DEFAULT 0, 0002) only fills rows that existed before the
        # column; every insert names the column, so the tables need not declare it.
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        differences = compare_metadata(context, DECLARED)
    assert differences == []


def test_the_same_tables_are_declared_and_built(engine: sa.Engine) -> None:
    built = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert built == set(DECLARED.tables)


def test_primary_keys_are_the_same(engine: sa.Engine) -> None:
    # Alembic's comparison does not look at primary keys.
    inspector = sa.inspect(engine)
    built = {
        name: inspector.get_pk_constraint(name)["constrained_columns"] for name in DECLARED.tables
    }
    declared = {
        name: [column.name for column in table.primary_key.columns]
        for name, table in DECLARED.tables.items()
    }
    assert built == declared


def test_unique_constraints_are_the_same(engine: sa.Engine) -> None:
    # Alembic's comparison sees only named unique constraints; this sees unnamed ones too.
    inspector = sa.inspect(engine)
    built = {
        name: sorted(
            tuple(constraint["column_names"])
            for constraint in inspector.get_unique_constraints(name)
        )
        for name in DECLARED.tables
    }
    declared = {
        name: sorted(
            tuple(column.name for column in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        )
        for name, table in DECLARED.tables.items()
    }
    assert built == declared


def test_indexes_are_created_by_the_same_statement(migrated: Path) -> None:
    # SQLite keeps each CREATE INDEX as it was run; the declared index compiled for SQLite must
    # read the same, which checks what Alembic's comparison skips on SQLite: the sort order of a
    # column (DESC) and a partial index's WHERE.
    connection = sqlite3.connect(migrated)
    try:
        built = dict(
            connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            ).fetchall()
        )
    finally:
        connection.close()
    declared = {
        index.name: str(CreateIndex(index).compile(dialect=sqlite.dialect())).strip()
        for table in DECLARED.tables.values()
        for index in table.indexes
    }
    assert built == declared
    # The index whose DESC and WHERE the Alembic comparison would miss is among those compared.
    assert "DESC" in built["ix_jobs_runnable_share"]
    assert "WHERE share_identifier IS NOT NULL" in built["ix_jobs_runnable_share"]
