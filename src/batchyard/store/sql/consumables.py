"""Consumable resources: their documents and counts, the jobs that require each, and the
in-use counts that follow jobs in and out of STARTING/RUNNING (the rules are
store/apply_rules.py's; here they are loaded, applied and written).

Part of SqlStore (see parts.py); the functions are what job writes and commit call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from batchyard.domain.model import ConsumableResource, Job
from batchyard.store import apply_rules
from batchyard.store.base import ConflictError, ConsumableJobQuery, ConsumableResourceMutation
from batchyard.store.sql.caches import DecodeCaches
from batchyard.store.sql.fastpath import execute_many, fetch
from batchyard.store.sql.parts import StorePart
from batchyard.store.sql.resources import delete_named
from batchyard.store.sql.rows import consumable_document
from batchyard.store.sql.schema import consumable_resources, job_consumable_resources, jobs
from batchyard.store.sql.statements import (
    BUMP_CHANGES,
    LOCK_CONSUMABLE,
    LOCK_CONSUMABLES_BY_NAME,
    SELECT_CONSUMABLE,
    SELECT_CONSUMABLES,
    SELECT_JOBS,
    SET_CONSUMABLE_COUNTS,
    SUM_HELD,
    chunks,
)


def required_names(pairs: Iterable[tuple[Job | None, Job]]) -> list[str]:
    names: dict[str, None] = {}
    for old, new in pairs:
        for requirement in (*(old.consumable_resources if old else ()), *new.consumable_resources):
            names[requirement.resource] = None
    return sorted(names)


def lock_consumables(
    connection: Connection, caches: DecodeCaches, names: Sequence[str]
) -> dict[str, ConsumableResource]:
    found: dict[str, ConsumableResource] = {}
    for chunk in chunks(names):
        rows = fetch(connection, LOCK_CONSUMABLES_BY_NAME, ids=("names", chunk))
        for resource in caches.consumables_of(rows):
            found[resource.name] = resource
    return found


def write_consumables(
    connection: Connection,
    before: Mapping[str, ConsumableResource],
    after: Mapping[str, ConsumableResource],
) -> None:
    rows = [
        {"b_name": name, "b_total": r.total_quantity, "b_in_use": r.in_use_quantity}
        for name, r in after.items()
        if before.get(name) != r
    ]
    execute_many(connection, SET_CONSUMABLE_COUNTS, rows)


def account_pairs(
    connection: Connection, caches: DecodeCaches, pairs: Sequence[tuple[Job | None, Job]]
) -> None:
    """In-use counts follow jobs in and out of STARTING/RUNNING (no guard: a runtime's
    report or an API call records what happened)."""
    moving = [(old, new) for old, new in pairs if apply_rules.holds_resources(old, new)]
    if not moving:
        return
    before = lock_consumables(connection, caches, required_names(moving))
    after = dict(before)
    for old, new in moving:
        apply_rules.account(after, old, new)
    write_consumables(connection, before, after)


class ConsumableResources(StorePart):
    def put_consumable_resource(self, resource: ConsumableResource, *, create: bool) -> None:
        """Insert or replace; in_use_quantity is the store's either way: a replace keeps it,
        an insert counts what jobs in STARTING/RUNNING already require of that name."""
        text = consumable_document(resource)
        try:
            with self._db.writing() as connection:
                found = fetch(connection, LOCK_CONSUMABLE, {"b_name": resource.name})
                if found and create:
                    raise ConflictError(f"{resource.name} already exists")
                if found:
                    connection.execute(
                        consumable_resources.update()
                        .where(consumable_resources.c.name == resource.name)
                        .values(total_quantity=resource.total_quantity, doc=text)
                    )
                else:
                    # Not fetch: a statement with a literal IN list and a parameter.
                    in_use = connection.execute(SUM_HELD, {"b_name": resource.name}).scalar_one()
                    connection.execute(
                        consumable_resources.insert().values(
                            name=resource.name,
                            total_quantity=resource.total_quantity,
                            in_use_quantity=int(in_use),
                            doc=text,
                        )
                    )
                fetch(connection, BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError(f"{resource.name} already exists") from exc
        self._notify()

    def get_consumable_resource(self, name: str) -> ConsumableResource | None:
        with self._db.reading() as connection:
            rows = fetch(connection, SELECT_CONSUMABLE, {"b_name": name})
        return self._caches.consumable(rows[0]) if rows else None

    def list_consumable_resources(self) -> list[ConsumableResource]:
        with self._db.reading() as connection:
            return self._caches.consumables_of(fetch(connection, SELECT_CONSUMABLES))

    def delete_consumable_resource(self, name: str) -> None:
        if delete_named(self._db, consumable_resources, name):
            self._notify()

    def mutate_consumable_resource(
        self, name: str, mutation: ConsumableResourceMutation
    ) -> ConsumableResource | None:
        # mutation runs inside the write transaction: it may read the store, never write.
        with self._db.writing() as connection:
            found = fetch(connection, LOCK_CONSUMABLE, {"b_name": name})
            if not found:
                return None
            current = self._caches.consumable(found[0])
            if current is None:
                return None
            new = mutation(current)
            if new.name != name:
                raise ValueError(f"a mutation may not rename consumable resource {name}")
            stored = dataclasses.replace(new, in_use_quantity=current.in_use_quantity)
            connection.execute(
                consumable_resources.update()
                .where(consumable_resources.c.name == name)
                .values(total_quantity=stored.total_quantity, doc=consumable_document(stored))
            )
            fetch(connection, BUMP_CHANGES)
        self._notify()
        return stored

    def list_jobs_by_consumable_resource(self, query: ConsumableJobQuery) -> list[Job]:
        if query.limit <= 0:
            return []
        select = SELECT_JOBS.select_from(
            job_consumable_resources.join(jobs, jobs.c.job_id == job_consumable_resources.c.job_id)
        ).where(job_consumable_resources.c.resource == query.resource)
        if query.after is not None:
            select = select.where(job_consumable_resources.c.seq < query.after)
        if query.status is not None:
            select = select.where(jobs.c.status == query.status.value)
        if query.job_name is not None:
            select = select.where(jobs.c.job_name_lc == query.job_name.lower())
        if query.job_name_prefix is not None:
            prefix = query.job_name_prefix.lower()
            select = select.where(sa.func.substr(jobs.c.job_name_lc, 1, len(prefix)) == prefix)
        select = select.order_by(job_consumable_resources.c.seq.desc()).limit(query.limit)
        with self._db.reading() as connection:
            return [self._caches.job(row) for row in connection.execute(select).all()]
