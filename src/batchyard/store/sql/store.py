"""SqlStore: the Store protocol on a SQL database, one mixin per concept (see __init__.py)."""

from __future__ import annotations

import sqlalchemy as sa

from batchyard.store.sql.caches import DecodeCaches
from batchyard.store.sql.connection import Database
from batchyard.store.sql.consumables import ConsumableResources
from batchyard.store.sql.definitions import JobDefinitions
from batchyard.store.sql.jobs import JobRecords
from batchyard.store.sql.resources import ResourceTables
from batchyard.store.sql.scheduling import Scheduling
from batchyard.store.sql.schema import counters, meta


class SqlStore(ResourceTables, JobDefinitions, ConsumableResources, JobRecords, Scheduling):
    def __init__(self, url: str) -> None:
        self._db = Database(url)
        self.where = self._db.where
        self.engine = self._db.engine
        self._listeners = []
        self._caches = DecodeCaches()

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a SQLite file (`where` is then its path)."""
        return self._db.is_sqlite

    def close(self) -> None:
        self._db.close()

    def probe_write(self) -> None:
        """A write transaction that changes nothing stored, to learn whether writes succeed
        (GET /health, after a write failed). Raises what a write would."""
        with self._db.writing() as connection:
            connection.execute(
                meta.update().where(meta.c.key == "schema").values(value=meta.c.value)
            )

    def change_counter(self) -> int:
        with self._db.reading() as connection:
            value = connection.execute(
                sa.select(counters.c.value).where(counters.c.name == "changes")
            ).scalar_one()
        return int(value)
