"""The statements a SqlStore runs often, built once at import and named by what they select
or write; fastpath.py compiles each once per dialect and runs it on the DBAPI cursor.

Jobs are mostly selected keys only (JOB_KEYS: id, seq, version), then whole rows for the jobs
the decode cache does not hold at that version (caches.py). Statements built per call (listings
with filters, resource writes) stay where they are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from batchyard.domain.model import ALL_JOB_STATUSES, JobStatus
from batchyard.store.sql.rows import JOB_COLUMNS
from batchyard.store.sql.schema import (
    COUNT_COLUMNS,
    compute_environments,
    consumable_resources,
    counters,
    job_consumable_resources,
    job_definitions,
    job_dependencies,
    job_queues,
    jobs,
    scheduling_policies,
    share_usage,
)

CHUNK = 500  # ids per IN (...) list
ACTIVE_STATUSES = (JobStatus.STARTING.value, JobStatus.RUNNING.value)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


SELECT_JOBS = sa.select(*JOB_COLUMNS)
SELECT_JOBS_BY_ID = SELECT_JOBS.where(jobs.c.job_id.in_(sa.bindparam("ids", expanding=True)))
# A plan's or mutation's new job: every stored field but seq and the counts (store-owned).
UPDATE_JOB = jobs.update().where(jobs.c.job_id == sa.bindparam("b_job_id"))
BUMP_JOB = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("b_job_id"))
    .values(version=jobs.c.version + 1, needs_eval=sa.true())
)
BUMP_PARENT = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("b_job_id"))
    .values(
        version=jobs.c.version + 1,
        needs_eval=sa.true(),
        **{name: jobs.c[name] + sa.bindparam(f"d_{name}") for name in COUNT_COLUMNS},
    )
)
SET_PARENT_COUNTS = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("b_job_id"))
    .values(
        version=jobs.c.version + 1,
        needs_eval=sa.true(),
        **{name: sa.bindparam(f"c_{name}") for name in COUNT_COLUMNS},
    )
)
CLEAR_FLAG = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("b_job_id"), jobs.c.version == sa.bindparam("b_version"))
    .values(needs_eval=sa.false())
)
BUMP_CHANGES = (
    counters.update().where(counters.c.name == "changes").values(value=counters.c.value + 1)
)
INSERT_JOB = jobs.insert()
INSERT_DEPENDENCY = job_dependencies.insert()
SELECT_JOB = SELECT_JOBS.where(jobs.c.job_id == sa.bindparam("b_job_id"))
LOCK_JOBS_BY_ID = SELECT_JOBS_BY_ID.with_for_update()
SELECT_ACTIVE = SELECT_JOBS.where(jobs.c.status.in_(ACTIVE_STATUSES)).order_by(jobs.c.seq)
SELECT_RUNNABLE_HEADS = (
    SELECT_JOBS.where(
        jobs.c.job_queue == sa.bindparam("b_queue"), jobs.c.status == JobStatus.RUNNABLE.value
    )
    .order_by(jobs.c.run_order, jobs.c.seq)
    .limit(sa.bindparam("b_limit"))
)
SELECT_FLAGGED = (
    SELECT_JOBS.where(jobs.c.needs_eval == sa.true())
    .order_by(jobs.c.seq)
    .limit(sa.bindparam("b_limit"))
)
# The same selections, keys only: a job decoded at its current version needs no whole row.
JOB_KEYS = (jobs.c.job_id, jobs.c.seq, jobs.c.version)
KEYS_BY_ID = SELECT_JOBS_BY_ID.with_only_columns(*JOB_KEYS)
LOCK_KEYS_BY_ID = LOCK_JOBS_BY_ID.with_only_columns(*JOB_KEYS)
ACTIVE_KEYS = SELECT_ACTIVE.with_only_columns(*JOB_KEYS)
RUNNABLE_HEAD_KEYS = SELECT_RUNNABLE_HEADS.with_only_columns(*JOB_KEYS)
FLAGGED_KEYS = SELECT_FLAGGED.with_only_columns(*JOB_KEYS)
SELECT_STATUS_BY_ID = sa.select(jobs.c.job_id, jobs.c.status).where(
    jobs.c.job_id.in_(sa.bindparam("ids", expanding=True))
)
RESOURCE_TABLES = (compute_environments, job_queues, scheduling_policies)
SELECT_RESOURCES = sa.union_all(
    *(
        sa.select(sa.literal_column(str(kind)).label("kind"), table.c.name, table.c.doc)
        for kind, table in enumerate(RESOURCE_TABLES)
    )
)
SELECT_NAMED = {
    table.name: sa.select(table.c.doc).where(table.c.name == sa.bindparam("b_name"))
    for table in RESOURCE_TABLES
}
SELECT_DEFINITION = sa.select(job_definitions.c.doc).where(
    job_definitions.c.name == sa.bindparam("b_name"),
    job_definitions.c.revision == sa.bindparam("b_revision"),
)
SELECT_LATEST_DEFINITION = {
    active_only: sa.select(job_definitions.c.doc)
    .where(
        job_definitions.c.name == sa.bindparam("b_name"),
        *([job_definitions.c.status == "ACTIVE"] if active_only else []),
    )
    .order_by(job_definitions.c.revision.desc())
    .limit(1)
    for active_only in (False, True)
}
LOCK_SEQ = sa.select(counters.c.value).where(counters.c.name == "seq").with_for_update()
SET_SEQ = counters.update().where(counters.c.name == "seq").values(value=sa.bindparam("b_value"))
COUNT_CHILDREN = (
    sa.select(jobs.c.array_parent_id, jobs.c.status, sa.func.count())
    .where(jobs.c.array_parent_id.in_(sa.bindparam("ids", expanding=True)))
    .group_by(jobs.c.array_parent_id, jobs.c.status)
)
SELECT_DEPENDENTS = sa.select(job_dependencies.c.job_id).where(
    job_dependencies.c.depends_on.in_(sa.bindparam("ids", expanding=True))
)
CONSUMABLE_COLUMNS = (
    consumable_resources.c.name,
    consumable_resources.c.total_quantity,
    consumable_resources.c.in_use_quantity,
    consumable_resources.c.doc,
)
SELECT_CONSUMABLES = sa.select(*CONSUMABLE_COLUMNS).order_by(consumable_resources.c.name)
LOCK_CONSUMABLE = (
    sa.select(*CONSUMABLE_COLUMNS)
    .where(consumable_resources.c.name == sa.bindparam("b_name"))
    .with_for_update()
)
SELECT_CONSUMABLE = sa.select(*CONSUMABLE_COLUMNS).where(
    consumable_resources.c.name == sa.bindparam("b_name")
)
LOCK_CONSUMABLES_BY_NAME = (
    sa.select(*CONSUMABLE_COLUMNS)
    .where(consumable_resources.c.name.in_(sa.bindparam("names", expanding=True)))
    .with_for_update()
)
SET_CONSUMABLE_COUNTS = (
    consumable_resources.update()
    .where(consumable_resources.c.name == sa.bindparam("b_name"))
    .values(total_quantity=sa.bindparam("b_total"), in_use_quantity=sa.bindparam("b_in_use"))
)
INSERT_JOB_CONSUMABLE = job_consumable_resources.insert()
# What jobs holding a resource take of it: the in-use count of a resource created now.
SUM_HELD = (
    sa.select(sa.func.coalesce(sa.func.sum(job_consumable_resources.c.quantity), 0))
    .select_from(
        job_consumable_resources.join(jobs, jobs.c.job_id == job_consumable_resources.c.job_id)
    )
    .where(
        job_consumable_resources.c.resource == sa.bindparam("b_name"),
        jobs.c.status.in_(ACTIVE_STATUSES),
    )
)
SELECT_SHARE_USAGE = sa.select(
    share_usage.c.job_queue, share_usage.c.share_identifier, share_usage.c.value, share_usage.c.at
).order_by(share_usage.c.job_queue, share_usage.c.share_identifier)
COUNT_QUEUE_SHARES = (
    sa.select(sa.func.count())
    .select_from(share_usage)
    .where(share_usage.c.job_queue == sa.bindparam("b_queue"))
)
# The heads of every share of one fair-share queue in one statement (a round must not cost a
# statement per share): for each share_usage row of b_queue, the first b_limit RUNNABLE jobs of
# that share in share order, read along ix_jobs_runnable_share, so the work is bounded by
# shares x b_limit and never by the queue's length (a window function would read every
# RUNNABLE job of the queue). Rows come share by share, each share's heads in share order.
_heads = jobs.alias("heads")
_share_heads = (
    sa.select(
        _heads.c.job_id,
        _heads.c.seq,
        _heads.c.version,
        _heads.c.scheduling_priority,
        _heads.c.run_order,
    )
    .where(
        _heads.c.job_queue == share_usage.c.job_queue,
        _heads.c.status == JobStatus.RUNNABLE.value,
        _heads.c.share_identifier == share_usage.c.share_identifier,
    )
    .order_by(_heads.c.scheduling_priority.desc(), _heads.c.run_order, _heads.c.seq)
    .limit(sa.bindparam("b_limit"))
)
_head = _share_heads.lateral("head")
SHARE_HEAD_KEYS_LATERAL = (
    sa.select(_head.c.job_id, _head.c.seq, _head.c.version)
    .select_from(share_usage.join(_head, sa.true()))
    .where(share_usage.c.job_queue == sa.bindparam("b_queue"))
    .order_by(
        share_usage.c.share_identifier,
        _head.c.scheduling_priority.desc(),
        _head.c.run_order,
        _head.c.seq,
    )
)
# SQLite has no LATERAL: a correlated subquery, run once per share row, picks the same heads by
# rowid; only those heads are sorted, one share at a time.
SHARE_HEAD_KEYS_SQLITE = (
    sa.select(*JOB_KEYS)
    .select_from(
        share_usage.join(
            jobs,
            sa.literal_column(f"{jobs.name}.rowid").in_(
                _share_heads.with_only_columns(sa.literal_column(f"{_heads.name}.rowid"))
            ),
        )
    )
    .where(share_usage.c.job_queue == sa.bindparam("b_queue"))
    .order_by(
        share_usage.c.share_identifier,
        jobs.c.scheduling_priority.desc(),
        jobs.c.run_order,
        jobs.c.seq,
    )
)
SELECT_ACTIVE_SHARES = (
    sa.select(jobs.c.share_identifier)
    .where(
        jobs.c.job_queue == sa.bindparam("b_queue"),
        jobs.c.status.in_([s.value for s in ALL_JOB_STATUSES if not s.is_terminal]),
        jobs.c.share_identifier.is_not(None),
    )
    .distinct()
)
LOCK_SHARE_ROW = (
    sa.select(share_usage.c.value, share_usage.c.at)
    .where(
        share_usage.c.job_queue == sa.bindparam("b_queue"),
        share_usage.c.share_identifier == sa.bindparam("b_share"),
    )
    .with_for_update()
)
SET_SHARE_ROW = (
    share_usage.update()
    .where(
        share_usage.c.job_queue == sa.bindparam("b_queue"),
        share_usage.c.share_identifier == sa.bindparam("b_share"),
    )
    .values(value=sa.bindparam("b_value"), at=sa.bindparam("b_at"))
)
INSERT_SHARE_ROW = share_usage.insert()
# A share's first row: two writers may add it at once (other processes, PostgreSQL).
INSERT_SHARE_ROW_IF_MISSING: dict[str, sa.ClauseElement] = {
    "sqlite": sqlite.insert(share_usage).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(share_usage).on_conflict_do_nothing(),
}
