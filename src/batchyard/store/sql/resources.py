"""Compute environments, job queues and scheduling policies: one document a name each.

Part of SqlStore (see parts.py). The snapshot reads these tables too (scheduling.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from batchyard.domain.model import ComputeEnvironment, JobQueue, SchedulingPolicy
from batchyard.store import codec
from batchyard.store.base import ConflictError
from batchyard.store.sql.connection import Database
from batchyard.store.sql.fastpath import fetch
from batchyard.store.sql.parts import StorePart
from batchyard.store.sql.schema import compute_environments, job_queues, scheduling_policies
from batchyard.store.sql.statements import BUMP_CHANGES, SELECT_NAMED


def delete_named(db: Database, table: sa.Table, name: str) -> bool:
    """Delete the row named `name` of a table of named documents; whether there was one."""
    with db.writing() as connection:
        removed = connection.execute(table.delete().where(table.c.name == name)).rowcount
        if removed:
            fetch(connection, BUMP_CHANGES)
    return bool(removed)


class ResourceTables(StorePart):
    def _put_named(self, table: sa.Table, name: str, doc: dict[str, Any], create: bool) -> None:
        text = codec.dumps(doc)
        try:
            with self._db.writing() as connection:
                updated = 0
                if not create:
                    updated = connection.execute(
                        table.update().where(table.c.name == name).values(doc=text)
                    ).rowcount
                if updated == 0:
                    connection.execute(table.insert().values(name=name, doc=text))
                fetch(connection, BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError(f"{name} already exists") from exc
        self._notify()

    def _get_named(self, table: sa.Table, name: str) -> Any:
        """The decoded resource named `name` (SubmitJob looks up a queue and a definition)."""
        with self._db.reading() as connection:
            rows = fetch(connection, SELECT_NAMED[table.name], {"b_name": name})
        return self._caches.decoded(table.name, rows[0][0]) if rows else None

    def _list_named(self, table: sa.Table) -> list[Any]:
        """Every readable resource of a table, by name."""
        with self._db.reading() as connection:
            texts = connection.execute(sa.select(table.c.doc).order_by(table.c.name)).scalars()
            found = [self._caches.decoded(table.name, text) for text in texts]
        return [value for value in found if value is not None]

    def _delete_named(self, table: sa.Table, name: str) -> None:
        if delete_named(self._db, table, name):
            self._notify()

    def put_compute_environment(self, ce: ComputeEnvironment, *, create: bool) -> None:
        self._put_named(
            compute_environments, ce.name, codec.compute_environment_document(ce), create
        )

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None:
        found: ComputeEnvironment | None = self._get_named(compute_environments, name)
        return found

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        found: list[ComputeEnvironment] = self._list_named(compute_environments)
        return found

    def delete_compute_environment(self, name: str) -> None:
        self._delete_named(compute_environments, name)

    def put_job_queue(self, queue: JobQueue, *, create: bool) -> None:
        self._put_named(job_queues, queue.name, codec.job_queue_document(queue), create)

    def get_job_queue(self, name: str) -> JobQueue | None:
        found: JobQueue | None = self._get_named(job_queues, name)
        return found

    def list_job_queues(self) -> list[JobQueue]:
        found: list[JobQueue] = self._list_named(job_queues)
        return found

    def delete_job_queue(self, name: str) -> None:
        self._delete_named(job_queues, name)

    def put_scheduling_policy(self, policy: SchedulingPolicy, *, create: bool) -> None:
        self._put_named(
            scheduling_policies, policy.name, codec.scheduling_policy_document(policy), create
        )

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None:
        found: SchedulingPolicy | None = self._get_named(scheduling_policies, name)
        return found

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        found: list[SchedulingPolicy] = self._list_named(scheduling_policies)
        return found

    def delete_scheduling_policy(self, name: str) -> None:
        self._delete_named(scheduling_policies, name)
