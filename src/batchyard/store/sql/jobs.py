"""Jobs: inserting them (with their dependencies, requirements, new shares and the counts of
their array parents), reading and listing them, mutating them, deleting finished ones.

Part of SqlStore (see parts.py). `store_pairs` and `consequences` also serve commit and
quarantine (scheduling.py): storing a new version of a job, and what its status change implies
for its array parent and its dependents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from batchyard.domain.model import ALL_JOB_STATUSES, Job
from batchyard.store import apply_rules, codec
from batchyard.store.base import ConflictError, JobMutation, JobQuery
from batchyard.store.sql.caches import DecodeCaches
from batchyard.store.sql.consumables import account_pairs
from batchyard.store.sql.fastpath import execute_many, execute_rows, fetch
from batchyard.store.sql.parts import StorePart
from batchyard.store.sql.rows import (
    INSERT_COLUMNS,
    VERSION,
    changed_values,
    insert_row,
    requirement_rows,
)
from batchyard.store.sql.schema import (
    COUNT_COLUMN,
    job_consumable_resources,
    job_dependencies,
)
from batchyard.store.sql.schema import jobs as jobs_table  # `jobs` names the jobs inserted
from batchyard.store.sql.statements import (
    BUMP_CHANGES,
    BUMP_JOB,
    BUMP_PARENT,
    COUNT_CHILDREN,
    INSERT_DEPENDENCY,
    INSERT_JOB,
    INSERT_JOB_CONSUMABLE,
    INSERT_SHARE_ROW,
    INSERT_SHARE_ROW_IF_MISSING,
    KEYS_BY_ID,
    LOCK_KEYS_BY_ID,
    LOCK_SEQ,
    LOCK_SHARE_ROW,
    SELECT_DEPENDENTS,
    SELECT_JOB,
    SELECT_JOBS,
    SET_SEQ,
    TERMINAL_STATUSES,
    UPDATE_JOB,
    chunks,
)


def load_for_update(
    connection: Connection, caches: DecodeCaches, job_ids: Sequence[str]
) -> dict[str, Job]:
    found: dict[str, Job] = {}
    for chunk in chunks(job_ids):
        for job in caches.jobs(connection, LOCK_KEYS_BY_ID, ids=("ids", chunk)):
            found[job.job_id] = job
    return found


def store_pairs(connection: Connection, pairs: list[tuple[Job, Job]], *, flag: bool) -> list[Job]:
    """Store each (old, new) pair: new fields, old seq and counts, version + 1.

    Returns the stored versions as a read right after this write sees them, unless the
    same transaction bumps them again (which bumps their version too).
    """
    if not pairs:
        return []
    apply_rules.require_same_jobs(pairs)
    texts = codec.job_document_texts([new for _, new in pairs])
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    stored: list[Job] = []
    for (old, new), text in zip(pairs, texts, strict=True):
        values = changed_values(old, new)
        values["doc"] = text
        values["b_job_id"] = old.job_id
        values["version"] = old.version + 1
        values["needs_eval"] = flag
        by_columns.setdefault(tuple(values), []).append(values)
        stored.append(
            codec.replace_job(
                new,
                seq=old.seq,
                version=old.version + 1,
                array_status_summary=old.array_status_summary,
            )
        )
    for rows in by_columns.values():
        execute_many(connection, UPDATE_JOB, rows)
    changed = [(old, new) for old, new in pairs if old.wait_for != new.wait_for]
    if changed:
        ids = [old.job_id for old, _ in changed]
        for chunk in chunks(ids):
            connection.execute(
                job_dependencies.delete().where(job_dependencies.c.job_id.in_(chunk))
            )
        dependency_rows = [
            {"job_id": new.job_id, "depends_on": d}
            for _, new in changed
            for d in dict.fromkeys(new.wait_for)
        ]
        if dependency_rows:
            connection.execute(job_dependencies.insert(), dependency_rows)
    required = [
        (old, new) for old, new in pairs if old.consumable_resources != new.consumable_resources
    ]
    if required:
        ids = [old.job_id for old, _ in required]
        for chunk in chunks(ids):
            connection.execute(
                job_consumable_resources.delete().where(
                    job_consumable_resources.c.job_id.in_(chunk)
                )
            )
        consumable_rows = [row for old, new in required for row in requirement_rows(new, old.seq)]
        execute_many(connection, INSERT_JOB_CONSUMABLE, consumable_rows)
    return stored


def consequences(connection: Connection, pairs: list[tuple[Job, Job]]) -> None:
    """Write what status changes imply (apply_rules.status_consequences): parent counts, and
    the dependents of jobs that ended flagged."""
    deltas, ended = apply_rules.status_consequences(pairs)
    if deltas:
        bump_parents(connection, deltas)
    dependents: set[str] = set()
    for chunk in chunks(ended):
        dependents.update(
            row[0] for row in fetch(connection, SELECT_DEPENDENTS, ids=("ids", chunk))
        )
    if dependents:
        execute_many(connection, BUMP_JOB, [{"b_job_id": job_id} for job_id in dependents])


def bump_parents(connection: Connection, deltas: dict[str, dict[str, int]]) -> None:
    rows = []
    for parent_id, delta in deltas.items():
        row: dict[str, Any] = {"b_job_id": parent_id}
        for status in ALL_JOB_STATUSES:
            row[f"d_{COUNT_COLUMN[status]}"] = delta[status.value]
        rows.append(row)
    execute_many(connection, BUMP_PARENT, rows)


def add_shares(connection: Connection, shares: Mapping[tuple[str, str], int]) -> None:
    """A usage row (value 0 at the first job's created_at) for each share not seen yet."""
    rows = [
        {"job_queue": queue, "share_identifier": share, "value": 0.0, "at": at}
        for (queue, share), at in shares.items()
    ]
    statement = INSERT_SHARE_ROW_IF_MISSING.get(connection.dialect.name)
    if statement is not None:
        execute_many(connection, statement, rows)
        return
    for row in rows:
        found = fetch(
            connection,
            LOCK_SHARE_ROW,
            {"b_queue": row["job_queue"], "b_share": row["share_identifier"]},
        )
        if not found:
            execute_many(connection, INSERT_SHARE_ROW, [row])


class JobRecords(StorePart):
    def insert_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        if not jobs:
            return []
        ids = [job.job_id for job in jobs]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same job id is inserted twice")
        parents = {job.job_id for job in jobs if job.array_size is not None}
        try:
            with self._db.writing() as connection:
                [(first,)] = fetch(connection, LOCK_SEQ)
                fetch(connection, SET_SEQ, {"b_value": first + len(jobs)})
                # Counts of children stored before their parent arrive with the parent.
                stored_children: dict[str, dict[str, int]] = {}
                for chunk in chunks(list(parents)):
                    counted = fetch(connection, COUNT_CHILDREN, ids=("ids", chunk))
                    for parent_id, status, count in counted:
                        stored_children.setdefault(parent_id, {})[status] = count
                initial, deltas = apply_rules.child_counts(jobs, stored_children)
                stored: list[Job] = []
                for offset, job in enumerate(jobs, start=1):
                    seq = first + offset
                    stored.append(
                        codec.replace_job(
                            job,
                            seq=seq,
                            run_order=seq,
                            version=1,
                            array_status_summary=initial.get(job.job_id),
                        )
                    )
                texts = codec.job_document_texts(stored)
                rows: list[tuple[Any, ...]] = []
                dependency_rows: list[dict[str, str]] = []
                consumable_rows: list[dict[str, Any]] = []
                new_shares: dict[tuple[str, str], int] = {}
                for new, text in zip(stored, texts, strict=True):
                    rows.append(insert_row(new, text))
                    for depends_on in dict.fromkeys(new.wait_for):
                        dependency_rows.append({"job_id": new.job_id, "depends_on": depends_on})
                    if new.consumable_resources:
                        consumable_rows.extend(requirement_rows(new, new.seq))
                    if new.share_identifier is not None:
                        share = (new.job_queue, new.share_identifier)
                        if share not in self._caches.known_shares:
                            new_shares.setdefault(share, new.created_at)
                execute_rows(connection, INSERT_JOB, INSERT_COLUMNS, rows)
                if dependency_rows:
                    execute_many(connection, INSERT_DEPENDENCY, dependency_rows)
                if consumable_rows:
                    execute_many(connection, INSERT_JOB_CONSUMABLE, consumable_rows)
                    account_pairs(connection, self._caches, [(None, new) for new in stored])
                if new_shares:
                    add_shares(connection, new_shares)
                if deltas:
                    # Parents stored earlier: their counts change, so they need a decision.
                    bump_parents(connection, deltas)
                fetch(connection, BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError("a job with this id already exists") from exc
        self._caches.known_shares.update(new_shares)
        self._caches.remember(stored)
        self._notify()
        return stored

    def get_job(self, job_id: str) -> Job | None:
        with self._db.reading() as connection:
            rows = fetch(connection, SELECT_JOB, {"b_job_id": job_id})
        return self._caches.job(rows[0]) if rows else None

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job]:
        ids = list(job_ids)
        found: dict[str, Job] = {}
        with self._db.reading() as connection:
            for chunk in chunks(list(dict.fromkeys(ids))):
                for job in self._caches.jobs(connection, KEYS_BY_ID, ids=("ids", chunk)):
                    found[job.job_id] = job
        return [found[i] for i in ids if i in found]

    def mutate_job(self, job_id: str, mutation: JobMutation) -> Job | None:
        # mutation runs inside the write transaction: it may read the store, never write.
        with self._db.writing() as connection:
            old = load_for_update(connection, self._caches, [job_id]).get(job_id)
            if old is None:
                return None
            new = mutation(old)
            if new is None:
                return old
            [stored] = self._write_mutated(connection, [(old, new)])
            [row] = fetch(connection, SELECT_JOB, {"b_job_id": job_id})
        if row[VERSION] == stored.version:
            self._caches.remember([stored])
        else:
            stored = self._caches.job(row)
        self._notify()
        return stored

    def _write_mutated(self, connection: Connection, pairs: list[tuple[Job, Job]]) -> list[Job]:
        """Store mutated jobs (flagged for evaluation) and what follows from them: consumable
        counts, dependents and parents, the change counter. Returns the stored versions."""
        stored = store_pairs(connection, pairs, flag=True)
        if pairs:
            account_pairs(connection, self._caches, pairs)
            consequences(connection, pairs)
            fetch(connection, BUMP_CHANGES)
        return stored

    def mutate_jobs(self, mutations: Sequence[tuple[str, JobMutation]]) -> int:
        if not mutations:
            return 0
        # Each mutation runs inside the write transaction: it may read the store, never write.
        with self._db.writing() as connection:
            ids = list(dict.fromkeys(job_id for job_id, _ in mutations))
            current = load_for_update(connection, self._caches, ids)
            pairs = apply_rules.fold_mutations(mutations, current)
            stored = self._write_mutated(connection, pairs)
        if pairs:
            self._caches.remember(stored)
            self._notify()
        return len(pairs)

    def mutate_array_children(self, parent_id: str, mutation: JobMutation) -> int:
        with self._db.writing() as connection:
            query = (
                SELECT_JOBS.where(jobs_table.c.array_parent_id == parent_id)
                .order_by(jobs_table.c.array_index, jobs_table.c.seq)
                .with_for_update()
            )
            pairs: list[tuple[Job, Job]] = []
            for row in connection.execute(query).all():
                old = self._caches.job(row)
                new = mutation(old)
                if new is not None:
                    pairs.append((old, new))
            stored = self._write_mutated(connection, pairs)
        if pairs:
            self._caches.remember(stored)
            self._notify()
        return len(pairs)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit <= 0 or query.multi_node_job_id is not None:
            # Multi-node parallel jobs have no node jobs in the model yet.
            return []
        if query.job_queue is not None:
            select = SELECT_JOBS.where(
                jobs_table.c.job_queue == query.job_queue, jobs_table.c.array_parent_id.is_(None)
            )
            if query.after is not None:
                select = select.where(jobs_table.c.seq < query.after)
            select = select.order_by(jobs_table.c.seq.desc())
        else:
            select = SELECT_JOBS.where(jobs_table.c.array_parent_id == query.array_job_id)
            if query.after is not None:
                select = select.where(jobs_table.c.array_index > query.after)
            select = select.order_by(jobs_table.c.array_index, jobs_table.c.seq)
        select = filtered(select, query).limit(query.limit)
        with self._db.reading() as connection:
            return [self._caches.job(row) for row in connection.execute(select).all()]

    def delete_jobs_finished_before(self, cutoff_ms: int) -> list[Job]:
        query = (
            SELECT_JOBS.where(
                jobs_table.c.status.in_(TERMINAL_STATUSES), jobs_table.c.stopped_at < cutoff_ms
            )
            .order_by(jobs_table.c.stopped_at, jobs_table.c.seq)
            .with_for_update()
        )
        with self._db.writing() as connection:
            removed = [self._caches.job(row) for row in connection.execute(query).all()]
            ids = [job.job_id for job in removed]
            for chunk in chunks(ids):
                connection.execute(
                    job_dependencies.delete().where(job_dependencies.c.job_id.in_(chunk))
                )
                connection.execute(
                    job_consumable_resources.delete().where(
                        job_consumable_resources.c.job_id.in_(chunk)
                    )
                )
                connection.execute(jobs_table.delete().where(jobs_table.c.job_id.in_(chunk)))
            if removed:
                fetch(connection, BUMP_CHANGES)
        self._caches.forget(ids)
        if removed:
            self._notify()
        return removed


def filtered(select: sa.Select[Any], query: JobQuery) -> sa.Select[Any]:
    """The JobQuery filters in SQL (JobQuery.matches is the same in Python)."""
    if query.status is not None:
        select = select.where(jobs_table.c.status == query.status.value)
    if query.job_name is not None:
        select = select.where(jobs_table.c.job_name_lc == query.job_name.lower())
    if query.job_name_prefix is not None:
        prefix = query.job_name_prefix.lower()
        select = select.where(sa.func.substr(jobs_table.c.job_name_lc, 1, len(prefix)) == prefix)
    if query.job_definition_name is not None:
        select = select.where(jobs_table.c.job_definition_name == query.job_definition_name)
    if query.job_definition_name_prefix is not None:
        prefix = query.job_definition_name_prefix
        select = select.where(
            sa.func.substr(jobs_table.c.job_definition_name, 1, len(prefix)) == prefix
        )
    if query.job_definition_arn is not None:
        select = select.where(jobs_table.c.job_definition_arn == query.job_definition_arn)
    if query.created_before is not None:
        select = select.where(jobs_table.c.created_at < query.created_before)
    if query.created_after is not None:
        select = select.where(jobs_table.c.created_at > query.created_after)
    if query.share_identifier is not None:
        select = select.where(jobs_table.c.share_identifier == query.share_identifier)
    return select
