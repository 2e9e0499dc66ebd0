"""SQL Store on SQLAlchemy Core: SQLite (WAL). PostgreSQL is planned: the dialect branches
here are written, but no test runs them yet.

Saves and applies only: versions, evaluation flags, array child counts and dependents,
consumable resources' in-use counts and share usage; no business rules. The schema comes from
the Alembic migrations in migrations/, applied on open; a file that is not a Batchyard database
is refused and never written to.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.compiler import SQLCompiler

from batchyard import disk_full, health
from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    ComputeEnvironment,
    ConsumableRequirement,
    ConsumableResource,
    Job,
    JobDefinition,
    JobQueue,
    JobStatus,
    SchedulingPolicy,
    ShareUsage,
)
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual
from batchyard.store import accounting, codec, quarantine
from batchyard.store.base import (
    ConflictError,
    ConsumableJobQuery,
    ConsumableResourceMutation,
    JobMutation,
    JobQuery,
    SnapshotLimits,
    StoreError,
)

_log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_MARKER = "batchyard"
_CHUNK = 500  # ids per IN (...) list
_DEFAULT_LIMITS = SnapshotLimits()
_WRITE_OPTION = "batchyard_write"

# -- tables (mirror migrations/versions; the migrations are the source of truth) -------------
# tests/unit/test_schema.py checks that these tables equal what the migrations build. Nothing
# here creates the indexes (the migrations do): they are declared so that the check covers them,
# and so that a reader sees which indexes the queries below rely on.

_metadata = sa.MetaData()
_meta = sa.Table(
    "batchyard_meta",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)
_counters = sa.Table(
    "counters",
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)


def _named_document_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        _metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("doc", sa.Text(), nullable=False),
    )


_ces = _named_document_table("compute_environments")
_queues = _named_document_table("job_queues")
_policies = _named_document_table("scheduling_policies")
_definitions = sa.Table(
    "job_definitions",
    _metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("revision", sa.Integer(), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("doc", sa.Text(), nullable=False),
)
_TOP_LEVEL = sa.text("array_parent_id IS NULL")  # array children are left out of the listings
_HAS_SHARE = sa.text("share_identifier IS NOT NULL")  # FIFO queues' jobs are left out
_COUNT_COLUMNS = tuple(f"n_{status.value.lower()}" for status in ALL_JOB_STATUSES)
_COUNT_COLUMN = {status: f"n_{status.value.lower()}" for status in ALL_JOB_STATUSES}
_jobs = sa.Table(
    "jobs",
    _metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("needs_eval", sa.Boolean(), nullable=False),
    sa.Column("job_queue", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_order", sa.BigInteger(), nullable=False),
    sa.Column("job_name", sa.String(255), nullable=False),
    sa.Column("job_name_lc", sa.String(255), nullable=False),
    sa.Column("job_definition_name", sa.String(255), nullable=False),
    sa.Column("job_definition_arn", sa.String(1024), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Column("stopped_at", sa.BigInteger(), nullable=True),
    sa.Column("share_identifier", sa.String(255), nullable=True),
    sa.Column("array_size", sa.Integer(), nullable=True),
    sa.Column("array_index", sa.Integer(), nullable=True),
    sa.Column("array_parent_id", sa.String(64), nullable=True),
    *(sa.Column(name, sa.Integer(), nullable=True) for name in _COUNT_COLUMNS),
    sa.Column("doc", sa.Text(), nullable=False),
    # Also in doc (where None stays apart from 0): the column orders a share's heads.
    sa.Column("scheduling_priority", sa.Integer(), nullable=False),
    sa.Index("ix_jobs_runnable", "job_queue", "status", "run_order", "seq"),
    sa.Index("ix_jobs_needs_eval", "needs_eval", "seq"),
    sa.Index("ix_jobs_status_stopped", "status", "stopped_at"),
    sa.Index("ix_jobs_children", "array_parent_id", "array_index", "seq"),
    *(
        sa.Index(name, *columns, sqlite_where=_TOP_LEVEL, postgresql_where=_TOP_LEVEL)
        for name, columns in (
            ("ix_jobs_list", ("job_queue", "seq")),
            ("ix_jobs_list_status", ("job_queue", "status", "seq")),
            ("ix_jobs_list_name", ("job_queue", "job_name_lc", "seq")),
            ("ix_jobs_list_definition", ("job_queue", "job_definition_name", "seq")),
            ("ix_jobs_list_share", ("job_queue", "share_identifier", "seq")),
            ("ix_jobs_list_created", ("job_queue", "created_at")),
        )
    ),
)
# Apart from the table: a descending column needs the table's column object.
sa.Index(
    "ix_jobs_runnable_share",
    _jobs.c.job_queue,
    _jobs.c.status,
    _jobs.c.share_identifier,
    _jobs.c.scheduling_priority.desc(),
    _jobs.c.run_order,
    _jobs.c.seq,
    sqlite_where=_HAS_SHARE,
    postgresql_where=_HAS_SHARE,
)
_deps = sa.Table(
    "job_dependencies",
    _metadata,
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("depends_on", sa.String(64), primary_key=True),
    sa.Index("ix_job_dependencies_depends_on", "depends_on"),
)
_consumables = sa.Table(
    "consumable_resources",
    _metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("total_quantity", sa.BigInteger(), nullable=False),
    sa.Column("in_use_quantity", sa.BigInteger(), nullable=False),
    sa.Column("doc", sa.Text(), nullable=False),  # every other field
)
_job_consumables = sa.Table(
    "job_consumable_resources",
    _metadata,
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("resource", sa.String(255), primary_key=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("quantity", sa.BigInteger(), nullable=False),
    sa.Index("ix_job_consumable_resources_resource", "resource", "seq"),
)
_share_usage = sa.Table(
    "share_usage",
    _metadata,
    sa.Column("job_queue", sa.String(255), primary_key=True),
    sa.Column("share_identifier", sa.String(255), primary_key=True),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("at", sa.BigInteger(), nullable=False),
)

_j = _jobs.c
_JOB_COLUMNS = (
    _j.job_id,
    _j.job_name,
    _j.job_queue,
    _j.job_definition_arn,
    _j.job_definition_name,
    _j.status,
    _j.created_at,
    _j.seq,
    _j.stopped_at,
    _j.array_size,
    _j.array_index,
    _j.array_parent_id,
    _j.share_identifier,
    _j.run_order,
    _j.version,
    *(_j[name] for name in _COUNT_COLUMNS),
    _j.doc,
)
_STATUS_NAMES = tuple(status.value for status in ALL_JOB_STATUSES)
_ACTIVE = (JobStatus.STARTING.value, JobStatus.RUNNING.value)
_TERMINAL = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value)

_SELECT_JOBS = sa.select(*_JOB_COLUMNS)
_SELECT_JOBS_BY_ID = _SELECT_JOBS.where(_j.job_id.in_(sa.bindparam("ids", expanding=True)))
# A plan's or mutation's new job: every stored field but seq and the counts (store-owned).
_UPDATE_JOB = _jobs.update().where(_j.job_id == sa.bindparam("b_job_id"))
_BUMP_JOB = (
    _jobs.update()
    .where(_j.job_id == sa.bindparam("b_job_id"))
    .values(version=_j.version + 1, needs_eval=sa.true())
)
_BUMP_PARENT = (
    _jobs.update()
    .where(_j.job_id == sa.bindparam("b_job_id"))
    .values(
        version=_j.version + 1,
        needs_eval=sa.true(),
        **{name: _j[name] + sa.bindparam(f"d_{name}") for name in _COUNT_COLUMNS},
    )
)
_SET_PARENT_COUNTS = (
    _jobs.update()
    .where(_j.job_id == sa.bindparam("b_job_id"))
    .values(
        version=_j.version + 1,
        needs_eval=sa.true(),
        **{name: sa.bindparam(f"c_{name}") for name in _COUNT_COLUMNS},
    )
)
_CLEAR_FLAG = (
    _jobs.update()
    .where(_j.job_id == sa.bindparam("b_job_id"), _j.version == sa.bindparam("b_version"))
    .values(needs_eval=sa.false())
)
_BUMP_CHANGES = (
    _counters.update().where(_counters.c.name == "changes").values(value=_counters.c.value + 1)
)
_INSERT_JOB = _jobs.insert()
_INSERT_KEYS = tuple(column.name for column in _jobs.columns)  # the order of insert rows
_INSERT_DEPENDENCY = _deps.insert()
_SELECT_JOB = _SELECT_JOBS.where(_j.job_id == sa.bindparam("b_job_id"))
_LOCK_JOBS_BY_ID = _SELECT_JOBS_BY_ID.with_for_update()
_SELECT_ACTIVE = _SELECT_JOBS.where(_j.status.in_(_ACTIVE)).order_by(_j.seq)
_SELECT_RUNNABLE_HEADS = (
    _SELECT_JOBS.where(
        _j.job_queue == sa.bindparam("b_queue"), _j.status == JobStatus.RUNNABLE.value
    )
    .order_by(_j.run_order, _j.seq)
    .limit(sa.bindparam("b_limit"))
)
_SELECT_FLAGGED = (
    _SELECT_JOBS.where(_j.needs_eval == sa.true()).order_by(_j.seq).limit(sa.bindparam("b_limit"))
)
# The same selections, keys only: a job decoded at its current version needs no whole row.
_KEYS = (_j.job_id, _j.seq, _j.version)
_KEYS_BY_ID = _SELECT_JOBS_BY_ID.with_only_columns(*_KEYS)
_LOCK_KEYS_BY_ID = _LOCK_JOBS_BY_ID.with_only_columns(*_KEYS)
_ACTIVE_KEYS = _SELECT_ACTIVE.with_only_columns(*_KEYS)
_RUNNABLE_HEAD_KEYS = _SELECT_RUNNABLE_HEADS.with_only_columns(*_KEYS)
_FLAGGED_KEYS = _SELECT_FLAGGED.with_only_columns(*_KEYS)
_SELECT_STATUS_BY_ID = sa.select(_j.job_id, _j.status).where(
    _j.job_id.in_(sa.bindparam("ids", expanding=True))
)
_RESOURCE_TABLES = (_ces, _queues, _policies)
_SELECT_RESOURCES = sa.union_all(
    *(
        sa.select(sa.literal_column(str(kind)).label("kind"), table.c.name, table.c.doc)
        for kind, table in enumerate(_RESOURCE_TABLES)
    )
)
_SELECT_NAMED = {
    table.name: sa.select(table.c.doc).where(table.c.name == sa.bindparam("b_name"))
    for table in _RESOURCE_TABLES
}
_d = _definitions.c
_SELECT_DEFINITION = sa.select(_d.doc).where(
    _d.name == sa.bindparam("b_name"), _d.revision == sa.bindparam("b_revision")
)
_SELECT_LATEST_DEFINITION = {
    active_only: sa.select(_d.doc)
    .where(_d.name == sa.bindparam("b_name"), *([_d.status == "ACTIVE"] if active_only else []))
    .order_by(_d.revision.desc())
    .limit(1)
    for active_only in (False, True)
}
_LOCK_SEQ = sa.select(_counters.c.value).where(_counters.c.name == "seq").with_for_update()
_SET_SEQ = _counters.update().where(_counters.c.name == "seq").values(value=sa.bindparam("b_value"))
_COUNT_CHILDREN = (
    sa.select(_j.array_parent_id, _j.status, sa.func.count())
    .where(_j.array_parent_id.in_(sa.bindparam("ids", expanding=True)))
    .group_by(_j.array_parent_id, _j.status)
)
_SELECT_DEPENDENTS = sa.select(_deps.c.job_id).where(
    _deps.c.depends_on.in_(sa.bindparam("ids", expanding=True))
)
_c = _consumables.c
_CONSUMABLE_COLUMNS = (_c.name, _c.total_quantity, _c.in_use_quantity, _c.doc)
_SELECT_CONSUMABLES = sa.select(*_CONSUMABLE_COLUMNS).order_by(_c.name)
_LOCK_CONSUMABLE = (
    sa.select(*_CONSUMABLE_COLUMNS).where(_c.name == sa.bindparam("b_name")).with_for_update()
)
_SELECT_CONSUMABLE = sa.select(*_CONSUMABLE_COLUMNS).where(_c.name == sa.bindparam("b_name"))
_LOCK_CONSUMABLES_BY_NAME = (
    sa.select(*_CONSUMABLE_COLUMNS)
    .where(_c.name.in_(sa.bindparam("names", expanding=True)))
    .with_for_update()
)
_SET_CONSUMABLE_COUNTS = (
    _consumables.update()
    .where(_c.name == sa.bindparam("b_name"))
    .values(total_quantity=sa.bindparam("b_total"), in_use_quantity=sa.bindparam("b_in_use"))
)
_jc = _job_consumables.c
_INSERT_JOB_CONSUMABLE = _job_consumables.insert()
# What jobs holding a resource take of it: the in-use count of a resource created now.
_SUM_HELD = (
    sa.select(sa.func.coalesce(sa.func.sum(_jc.quantity), 0))
    .select_from(_job_consumables.join(_jobs, _j.job_id == _jc.job_id))
    .where(_jc.resource == sa.bindparam("b_name"), _j.status.in_(_ACTIVE))
)
_s = _share_usage.c
_SELECT_SHARE_USAGE = sa.select(_s.job_queue, _s.share_identifier, _s.value, _s.at).order_by(
    _s.job_queue, _s.share_identifier
)
_COUNT_QUEUE_SHARES = (
    sa.select(sa.func.count())
    .select_from(_share_usage)
    .where(_s.job_queue == sa.bindparam("b_queue"))
)
# The heads of every share of one fair-share queue in one statement (a round must not cost a
# statement per share): for each share_usage row of b_queue, the first b_limit RUNNABLE jobs of
# that share in share order, read along ix_jobs_runnable_share, so the work is bounded by
# shares x b_limit and never by the queue's length (a window function would read every
# RUNNABLE job of the queue). Rows come share by share, each share's heads in share order.
_h = _jobs.alias("heads")
_share_heads = (
    sa.select(_h.c.job_id, _h.c.seq, _h.c.version, _h.c.scheduling_priority, _h.c.run_order)
    .where(
        _h.c.job_queue == _s.job_queue,
        _h.c.status == JobStatus.RUNNABLE.value,
        _h.c.share_identifier == _s.share_identifier,
    )
    .order_by(_h.c.scheduling_priority.desc(), _h.c.run_order, _h.c.seq)
    .limit(sa.bindparam("b_limit"))
)
_head = _share_heads.lateral("head")
_SHARE_HEAD_KEYS_LATERAL = (
    sa.select(_head.c.job_id, _head.c.seq, _head.c.version)
    .select_from(_share_usage.join(_head, sa.true()))
    .where(_s.job_queue == sa.bindparam("b_queue"))
    .order_by(
        _s.share_identifier, _head.c.scheduling_priority.desc(), _head.c.run_order, _head.c.seq
    )
)
# SQLite has no LATERAL: a correlated subquery, run once per share row, picks the same heads by
# rowid; only those heads are sorted, one share at a time.
_SHARE_HEAD_KEYS_SQLITE = (
    sa.select(*_KEYS)
    .select_from(
        _share_usage.join(
            _jobs,
            sa.literal_column(f"{_jobs.name}.rowid").in_(
                _share_heads.with_only_columns(sa.literal_column(f"{_h.name}.rowid"))
            ),
        )
    )
    .where(_s.job_queue == sa.bindparam("b_queue"))
    .order_by(_s.share_identifier, _j.scheduling_priority.desc(), _j.run_order, _j.seq)
)
_SELECT_ACTIVE_SHARES = (
    sa.select(_j.share_identifier)
    .where(
        _j.job_queue == sa.bindparam("b_queue"),
        _j.status.in_([s.value for s in ALL_JOB_STATUSES if not s.is_terminal]),
        _j.share_identifier.is_not(None),
    )
    .distinct()
)
_LOCK_SHARE_ROW = (
    sa.select(_s.value, _s.at)
    .where(_s.job_queue == sa.bindparam("b_queue"), _s.share_identifier == sa.bindparam("b_share"))
    .with_for_update()
)
_SET_SHARE_ROW = (
    _share_usage.update()
    .where(_s.job_queue == sa.bindparam("b_queue"), _s.share_identifier == sa.bindparam("b_share"))
    .values(value=sa.bindparam("b_value"), at=sa.bindparam("b_at"))
)
_INSERT_SHARE_ROW = _share_usage.insert()
# A share's first row: two writers may add it at once (other processes, PostgreSQL).
_INSERT_SHARE_ROW_IF_MISSING: dict[str, sa.ClauseElement] = {
    "sqlite": sqlite.insert(_share_usage).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(_share_usage).on_conflict_do_nothing(),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    _ces.name: codec.compute_environment_from_document,
    _queues.name: codec.job_queue_from_document,
    _policies.name: codec.scheduling_policy_from_document,
    _definitions.name: codec.job_definition_from_document,
}
_SEEN_JOBS = 32_768  # decoded jobs kept by (job_id, version), about 1 KiB each


def _job_from_row(row: Sequence[Any]) -> Job:
    """The job a row holds; raises if it does not hold a valid one (see quarantine.py)."""
    summary = None if row[15] is None else dict(zip(_STATUS_NAMES, row[15:22], strict=True))
    job = codec.job_from_document(
        codec.loads(row[22]),
        job_id=row[0],
        job_name=row[1],
        job_queue=row[2],
        job_definition_arn=row[3],
        job_definition_name=row[4],
        status=codec.job_status(row[5]),
        created_at=row[6],
        seq=row[7],
        stopped_at=row[8],
        array_size=row[9],
        array_index=row[10],
        array_parent_id=row[11],
        share_identifier=row[12],
        run_order=row[13],
        version=row[14],
        array_status_summary=summary,
    )
    return codec.check_job(job)


def _stand_in(row: Sequence[Any], reason: str) -> Job:
    """What can be read of a row whose job cannot be (quarantine.stand_in)."""
    counts = row[15:22]
    summary = (
        dict(zip(_STATUS_NAMES, counts, strict=True))
        if all(type(count) is int for count in counts)
        else None
    )
    return quarantine.stand_in(
        job_id=row[0],
        job_name=row[1],
        job_queue=row[2],
        job_definition_arn=row[3],
        job_definition_name=row[4],
        status=row[5],
        created_at=row[6],
        seq=row[7],
        stopped_at=row[8],
        array_size=row[9],
        array_index=row[10],
        array_parent_id=row[11],
        share_identifier=row[12],
        run_order=row[13],
        version=row[14],
        array_status_summary=summary,
        reason=reason,
    )


def _row_record(row: Sequence[Any]) -> dict[str, Any]:
    """A job row as it is stored, kept in the job's document when the row is quarantined."""
    return {str(column.key): value for column, value in zip(_JOB_COLUMNS, row, strict=True)}


# The columns of a job a write may set, and how to read each from a Job. A write sets only
# those that changed (and doc): SQLite rewrites every index on a column named in SET, and most
# writes change the status or the document alone.
_WRITABLE: tuple[tuple[str, Callable[[Job], Any]], ...] = (
    ("job_queue", attrgetter("job_queue")),
    ("status", lambda job: job.status.value),
    ("run_order", attrgetter("run_order")),
    ("job_name", attrgetter("job_name")),
    ("job_name_lc", lambda job: job.job_name.lower()),
    ("job_definition_name", attrgetter("job_definition_name")),
    ("job_definition_arn", attrgetter("job_definition_arn")),
    ("created_at", attrgetter("created_at")),
    ("stopped_at", attrgetter("stopped_at")),
    ("share_identifier", attrgetter("share_identifier")),
    ("array_size", attrgetter("array_size")),
    ("array_index", attrgetter("array_index")),
    ("array_parent_id", attrgetter("array_parent_id")),
    ("scheduling_priority", lambda job: job.scheduling_priority or 0),
)


# The fields behind the columns that only a rare mutation changes (a job's identity and
# place), compared together before looking at them one by one.
_SETTLED_FIELDS = attrgetter(
    "job_queue",
    "job_name",
    "job_definition_name",
    "job_definition_arn",
    "created_at",
    "share_identifier",
    "array_size",
    "array_index",
    "array_parent_id",
    "scheduling_priority",
)


def _changed_values(old: Job, new: Job) -> dict[str, Any]:
    """The columns of _WRITABLE that differ between two versions of a job."""
    values: dict[str, Any] = {}
    if old.status is not new.status:
        values["status"] = new.status.value
    if old.run_order != new.run_order:
        values["run_order"] = new.run_order
    if old.stopped_at != new.stopped_at:
        values["stopped_at"] = new.stopped_at
    if _SETTLED_FIELDS(old) != _SETTLED_FIELDS(new):
        for name, read in _WRITABLE:
            value = read(new)
            if value != read(old):
                values[name] = value
    return values


def _required_names(pairs: Iterable[tuple[Job | None, Job]]) -> list[str]:
    names: dict[str, None] = {}
    for old, new in pairs:
        for requirement in (*(old.consumable_resources if old else ()), *new.consumable_resources):
            names[requirement.resource] = None
    return sorted(names)


def _consumable_rows(job: Job, seq: int) -> list[dict[str, Any]]:
    """A job's job_consumable_resources rows (a name listed twice takes both quantities)."""
    quantities: dict[str, int] = {}
    for requirement in job.consumable_resources:
        quantities[requirement.resource] = (
            quantities.get(requirement.resource, 0) + requirement.quantity
        )
    return [
        {"job_id": job.job_id, "resource": name, "seq": seq, "quantity": quantity}
        for name, quantity in quantities.items()
    ]


def _consumable_document(resource: ConsumableResource) -> str:
    """The fields of a resource but its counts, which have columns of their own."""
    doc = codec.consumable_resource_document(resource)
    del doc["total_quantity"], doc["in_use_quantity"]
    return codec.dumps(doc)


@dataclass(frozen=True, slots=True)
class _Form:
    """A statement compiled for one dialect (and key set, and IN-list length)."""

    sql: str
    names: tuple[str, ...] | None  # the order of positional parameters; None: named ones
    defaults: dict[str, Any]  # values the statement binds itself (literals, OFFSET)

    def bind(self, params: Mapping[str, Any]) -> Any:
        values = {**self.defaults, **params} if self.defaults else params
        if self.names is None:
            return values
        return tuple([values[name] for name in self.names])


_forms: dict[tuple[str, Any, tuple[str, ...], int], _Form] = {}


def _form(
    connection: Connection,
    statement: sa.ClauseElement,
    keys: tuple[str, ...] = (),
    expanding: tuple[str, int] | None = None,
) -> _Form:
    """The compiled form of a module-level statement (the cache holds them by identity)."""
    dialect = connection.dialect
    cache_key = (dialect.name, statement, keys, -1 if expanding is None else expanding[1])
    found = _forms.get(cache_key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    assert isinstance(compiled, SQLCompiler)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    defaults = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    sql = str(compiled)
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    if any(bind.expanding for bind in binds.values()):
        # IN lists: the statement's own (literal) ones and the one `expanding` names.
        values = dict(defaults)
        if expanding is not None:
            values[expanding[0]] = [None] * expanding[1]
        state = compiled.construct_expanded_state(values, escape_names=False)
        sql = state.statement
        names = tuple(state.positiontup or ()) if compiled.positional else None
        prefix = "" if expanding is None else f"{expanding[0]}_"
        defaults = {
            key: value
            for key, value in state.parameters.items()
            if not (prefix and key.startswith(prefix))
        }
    if len(_forms) >= 4096:  # IN lists of many lengths
        _forms.clear()
    found = _forms[cache_key] = _Form(sql, names, defaults)
    return found


def _cursor(connection: Connection, form: _Form, args: Any, *, many: bool) -> Any:
    """Run a compiled form on the DBAPI cursor, telling cursor-execute listeners as SQLAlchemy
    would, and raising SQLAlchemy's exceptions."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    sql = form.sql
    for listener in connection.dispatch.before_cursor_execute:
        sql, args = listener(connection, cursor, sql, args, None, many)
    dbapi = connection.dialect.loaded_dbapi
    try:
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
    except dbapi.Error as exc:
        cursor.close()
        raise sa.exc.DBAPIError.instance(sql, args, exc, dbapi.Error) from exc
    for listener in connection.dispatch.after_cursor_execute:
        listener(connection, cursor, sql, args, None, many)
    return cursor


def _fetch(
    connection: Connection,
    statement: sa.ClauseElement,
    params: Mapping[str, Any] | None = None,
    *,
    ids: tuple[str, Sequence[str]] | None = None,
) -> list[Any]:
    """Rows of a hot statement, as plain tuples.

    A dispatch round runs small statements; SQLAlchemy's per-execution work (cache keys,
    execution contexts, result metadata) costs more than the database's, so these are
    compiled once and run on the DBAPI cursor. ids fills an expanding IN parameter. What it
    buys and the SQLAlchemy internals it relies on: docs/performance.md#ledger-of-optimisations.
    """
    values = dict(params or {})
    expanding = None
    if ids is not None:
        name, items = ids
        expanding = (name, len(items))
        for index, item in enumerate(items, start=1):
            values[f"{name}_{index}"] = item
    form = _form(connection, statement, expanding=expanding)
    cursor = _cursor(connection, form, form.bind(values), many=False)
    try:
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        cursor.close()


def _execute_rows(
    connection: Connection,
    statement: sa.ClauseElement,
    keys: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """_execute_many with each row a tuple of the values of `keys`, in that order: a bulk
    insert need not build a dict per row."""
    if not rows:
        return
    form = _form(connection, statement, keys=keys)
    if form.names != keys or form.defaults:
        _execute_many(connection, statement, [dict(zip(keys, row, strict=True)) for row in rows])
        return
    _cursor(connection, form, rows, many=True).close()


def _execute_many(
    connection: Connection, statement: sa.ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """executemany of a hot statement without SQLAlchemy's per-row parameter processing.

    Every value is already a plain str/int/bool/None, so nothing needs processing. The rows
    must all have the same keys; they pick the columns an INSERT or UPDATE sets.
    """
    if not rows:
        return
    form = _form(connection, statement, keys=tuple(rows[0]))
    _cursor(connection, form, [form.bind(row) for row in rows], many=True).close()


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _share_blocks(heads: Sequence[Job], limit: int) -> dict[str | None, tuple[Job, ...]]:
    """Each share's heads, from heads that come share by share and at most `limit` of each.

    A share's block ends within `limit` heads of its start, so bisection finds its end without
    looking at each head: a round may read thousands.
    """
    blocks: dict[str | None, tuple[Job, ...]] = {}
    start, count = 0, len(heads)
    while start < count:
        share = heads[start].share_identifier
        stop = count if limit <= 0 else min(start + limit, count)  # SQLite: LIMIT -1 is none
        # heads[start:low] are of the share, heads[high:stop] of shares after it.
        low, high = start + 1, stop
        while low < high:
            middle = (low + high) // 2
            if heads[middle].share_identifier == share:
                low = middle + 1
            else:
                high = middle
        blocks[share] = tuple(heads[start:low])
        start = low
    return blocks


def _zero_summary() -> dict[str, int]:
    return dict.fromkeys(_STATUS_NAMES, 0)


# -- opening -----------------------------------------------------------------------------------


def _check_sqlite_file(path: Path) -> None:
    """Refuse, without writing a byte, a file that is not an empty or Batchyard SQLite database."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a Batchyard database")
    if not path.exists():
        if not path.parent.is_dir():
            raise StoreError(f"{path}: directory {path.parent} does not exist")
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the database file: {exc}") from exc
    if not header:
        return
    if header != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database; refusing to open it as Batchyard's")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
                if not name.startswith("sqlite_")
            }
            if not tables:
                return
            marker = None
            if "batchyard_meta" in tables:
                marker = connection.execute(
                    "SELECT value FROM batchyard_meta WHERE key = 'schema'"
                ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read it as a SQLite database: {exc}") from exc
    if marker is None or marker[0] != _SCHEMA_MARKER:
        raise StoreError(
            f"{path} is a SQLite database of another application (tables: "
            f"{', '.join(sorted(tables))}); refusing to open it as Batchyard's"
        )


def _sqlite_engine(url: sa.URL) -> Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly (see _on_begin) so reads see one state and
        # writes take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First, so that even switching to WAL waits for another process's lock.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL loses nothing when the process dies, only on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        # On the DBAPI connection: a dispatch round begins several transactions, and
        # SQLAlchemy's statement machinery costs more than the BEGIN itself.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class SqlStore:
    def __init__(self, url: str) -> None:
        try:
            parsed = sa.make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {url!r}: {exc}") from exc
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        if self._is_sqlite:
            if parsed.database in (None, "", ":memory:"):
                raise StoreError("SqlStore needs a database file; use MemoryStore in memory")
            path = Path(parsed.database)
            self.where = str(path)
            self._directory = os.path.dirname(os.path.abspath(path))
            _check_sqlite_file(path)
            self.engine = _sqlite_engine(parsed)
        else:
            self.where = parsed.render_as_string(hide_password=True)
            self._directory = ""
            self.engine = sa.create_engine(parsed)
        self._write_lock = threading.Lock()
        # Other processes writing the same SQLite file (`--api-processes`) queue on this lock
        # file: flock wakes a waiter the moment the lock is free, where SQLite's busy handler
        # sleeps 1, 2, 5... ms between tries while a write takes a fraction of one.
        self._write_lock_fd: int | None = None
        self._owner = threading.get_ident()
        self._held: dict[bool, Connection] = {}  # write -> the owner thread's connection
        self._listeners: list[Callable[[], None]] = []
        # Decoded jobs by id; an entry serves a row only at the same version and seq (every
        # write of a job's content bumps its version), so the cache is never stale, only missed.
        self._seen: dict[str, Job] = {}
        self._seen_lock = threading.Lock()
        # Stand-ins handed out for rows that do not decode, and resources that do not.
        self._unreadable = quarantine.Unreadable()
        self._unreadable_resources = quarantine.UnreadableResources()
        # Decoded resource documents by (table, text): every snapshot and SubmitJob reads some.
        self._resource_docs: dict[tuple[str, str], Any] = {}
        # Decoded consumable resources by row (the snapshot reads them all every round).
        self._consumable_rows: dict[tuple[Any, ...], ConsumableResource] = {}
        # (queue, share) pairs known to have a share_usage row (rows are never deleted).
        self._known_shares: set[tuple[str, str]] = set()
        try:
            self._migrate()
        except StoreError:
            self.close()
            raise
        except (SQLAlchemyError, CommandError) as exc:
            # CommandError: the database is at a revision this Batchyard does not know.
            self.close()
            raise StoreError(f"{self.where}: cannot open the Batchyard database: {exc}") from exc
        self._release_held()  # not the connection Alembic used: start from fresh ones
        if self._is_sqlite:
            self._write_lock_fd = os.open(
                f"{self.where}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a SQLite file (`where` is then its path)."""
        return self._is_sqlite

    def _migrate(self) -> None:
        with self._writing() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            if tables:
                marker = None
                if "batchyard_meta" in tables:
                    marker = connection.execute(
                        sa.select(_meta.c.value).where(_meta.c.key == "schema")
                    ).scalar()
                if marker != _SCHEMA_MARKER:
                    raise StoreError(
                        f"{self.where} holds tables of another application; refusing to use it"
                    )
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _reading(self, *, consistent: bool = False) -> Iterator[Connection]:
        with self._connection(write=False) as connection:
            if consistent and not self._is_sqlite:
                # SQLite reads in one transaction see one state already; elsewhere ask for it.
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        # One writer at a time in this process; SQLite allows only one anyway and BEGIN
        # IMMEDIATE makes other processes wait (busy_timeout) instead of failing mid-way.
        try:
            with (
                self._write_lock,
                self._across_processes(),
                self._connection(write=True) as connection,
            ):
                connection.execution_options(**{_WRITE_OPTION: True})
                with connection.begin():
                    yield connection
        except IntegrityError:
            raise  # a lost race or a duplicate: the store itself is fine
        except (SQLAlchemyError, OSError) as error:
            health.current().store_write_failed(error)
            if self._is_sqlite:  # one warning per episode; the dispatcher waits for room
                disk_full.episodes.noticed(error, self._directory, disk_full.STORE)
            raise
        health.current().store_write_succeeded()

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        fd = self._write_lock_fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        """A connection for one transaction.

        The thread that opened a SQLite store (the server's event loop, where the API and the
        dispatcher run) keeps one connection for reads and one for writes between
        transactions: a pool checkout costs several times an empty transaction, and a
        dispatch round runs three. Other threads, and a read nested in a transaction of the
        same kind, check one out of the pool.
        """
        held = None
        if self._is_sqlite and threading.get_ident() == self._owner:
            held = self._held.get(write)
            if held is None or held.closed or held.invalidated:
                held = self._held[write] = self.engine.connect()
            elif held.in_transaction():
                held = None
        if held is not None:
            yield held
        else:
            with self.engine.connect() as connection:
                yield connection

    # -- lifecycle and change notification --------------------------------------------------

    def close(self) -> None:
        self._release_held()
        self.engine.dispose()
        if self._write_lock_fd is not None:
            os.close(self._write_lock_fd)
            self._write_lock_fd = None

    def _release_held(self) -> None:
        held, self._held = self._held, {}
        for connection in held.values():
            connection.close()

    def probe_write(self) -> None:
        """A write transaction that changes nothing stored, to learn whether writes succeed
        (GET /health, after a write failed). Raises what a write would."""
        with self._writing() as connection:
            connection.execute(
                _meta.update().where(_meta.c.key == "schema").values(value=_meta.c.value)
            )

    def change_counter(self) -> int:
        with self._reading() as connection:
            value = connection.execute(
                sa.select(_counters.c.value).where(_counters.c.name == "changes")
            ).scalar_one()
        return int(value)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call listener (outside any lock or transaction) after every committed write.

        A write stores a job version or a resource; clearing evaluation flags alone is not one.
        Only writes made through this SqlStore object are seen; other processes' writes show
        in change_counter().
        """
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                _log.exception("store change listener failed")

    # -- compute environments, job queues, scheduling policies -------------------------------

    def _put_named(self, table: sa.Table, name: str, doc: dict[str, Any], create: bool) -> None:
        text = codec.dumps(doc)
        try:
            with self._writing() as connection:
                updated = 0
                if not create:
                    updated = connection.execute(
                        table.update().where(table.c.name == name).values(doc=text)
                    ).rowcount
                if updated == 0:
                    connection.execute(table.insert().values(name=name, doc=text))
                _fetch(connection, _BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError(f"{name} already exists") from exc
        self._notify()

    def _get_named(self, table: sa.Table, name: str) -> Any:
        """The decoded resource named `name` (SubmitJob looks up a queue and a definition)."""
        with self._reading() as connection:
            rows = _fetch(connection, _SELECT_NAMED[table.name], {"b_name": name})
        return self._decoded(table.name, rows[0][0]) if rows else None

    def _decoded(self, kind: str, text: str) -> Any:
        """A resource document decoded once per distinct text (resources change rarely);
        None for one that does not decode (left out, and logged once)."""
        docs = self._resource_docs
        value = docs.get((kind, text))
        if value is None:
            value = self._unreadable_resources.decode(
                kind, text, lambda found: _DECODERS[kind](codec.loads(found))
            )
            if value is None:
                return None
            if len(docs) >= 1024:
                docs.clear()
            docs[(kind, text)] = value
        return value

    def _list_named(self, table: sa.Table) -> list[Any]:
        """Every readable resource of a table, by name."""
        with self._reading() as connection:
            texts = connection.execute(sa.select(table.c.doc).order_by(table.c.name)).scalars()
            found = [self._decoded(table.name, text) for text in texts]
        return [value for value in found if value is not None]

    def _delete_named(self, table: sa.Table, name: str) -> None:
        with self._writing() as connection:
            removed = connection.execute(table.delete().where(table.c.name == name)).rowcount
            if removed:
                _fetch(connection, _BUMP_CHANGES)
        if removed:
            self._notify()

    def put_compute_environment(self, ce: ComputeEnvironment, *, create: bool) -> None:
        self._put_named(_ces, ce.name, codec.compute_environment_document(ce), create)

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None:
        found: ComputeEnvironment | None = self._get_named(_ces, name)
        return found

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        found: list[ComputeEnvironment] = self._list_named(_ces)
        return found

    def delete_compute_environment(self, name: str) -> None:
        self._delete_named(_ces, name)

    def put_job_queue(self, queue: JobQueue, *, create: bool) -> None:
        self._put_named(_queues, queue.name, codec.job_queue_document(queue), create)

    def get_job_queue(self, name: str) -> JobQueue | None:
        found: JobQueue | None = self._get_named(_queues, name)
        return found

    def list_job_queues(self) -> list[JobQueue]:
        found: list[JobQueue] = self._list_named(_queues)
        return found

    def delete_job_queue(self, name: str) -> None:
        self._delete_named(_queues, name)

    def put_scheduling_policy(self, policy: SchedulingPolicy, *, create: bool) -> None:
        self._put_named(_policies, policy.name, codec.scheduling_policy_document(policy), create)

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None:
        found: SchedulingPolicy | None = self._get_named(_policies, name)
        return found

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        found: list[SchedulingPolicy] = self._list_named(_policies)
        return found

    def delete_scheduling_policy(self, name: str) -> None:
        self._delete_named(_policies, name)

    # -- consumable resources -------------------------------------------------------------------

    def _consumable(self, row: Sequence[Any]) -> ConsumableResource | None:
        """The resource a row holds; None for one that does not decode (left out, logged)."""
        key = tuple(row)
        found = self._consumable_rows.get(key)
        if found is None:
            _, total, in_use, text = key

            def decode(text: str) -> ConsumableResource:
                doc = {**codec.loads(text), "total_quantity": total, "in_use_quantity": in_use}
                return codec.consumable_resource_from_document(doc)

            found = self._unreadable_resources.decode(_consumables.name, text, decode)
            if found is None:
                return None
            if len(self._consumable_rows) >= 4096:
                self._consumable_rows.clear()
            self._consumable_rows[key] = found
        return found

    def _consumables_of(self, rows: Iterable[Sequence[Any]]) -> list[ConsumableResource]:
        return [found for row in rows if (found := self._consumable(row)) is not None]

    def put_consumable_resource(self, resource: ConsumableResource, *, create: bool) -> None:
        """Insert or replace; in_use_quantity is the store's either way: a replace keeps it,
        an insert counts what jobs in STARTING/RUNNING already require of that name."""
        text = _consumable_document(resource)
        try:
            with self._writing() as connection:
                found = _fetch(connection, _LOCK_CONSUMABLE, {"b_name": resource.name})
                if found and create:
                    raise ConflictError(f"{resource.name} already exists")
                if found:
                    connection.execute(
                        _consumables.update()
                        .where(_c.name == resource.name)
                        .values(total_quantity=resource.total_quantity, doc=text)
                    )
                else:
                    # Not _fetch: a statement with a literal IN list and a parameter.
                    in_use = connection.execute(_SUM_HELD, {"b_name": resource.name}).scalar_one()
                    connection.execute(
                        _consumables.insert().values(
                            name=resource.name,
                            total_quantity=resource.total_quantity,
                            in_use_quantity=int(in_use),
                            doc=text,
                        )
                    )
                _fetch(connection, _BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError(f"{resource.name} already exists") from exc
        self._notify()

    def get_consumable_resource(self, name: str) -> ConsumableResource | None:
        with self._reading() as connection:
            rows = _fetch(connection, _SELECT_CONSUMABLE, {"b_name": name})
        return self._consumable(rows[0]) if rows else None

    def list_consumable_resources(self) -> list[ConsumableResource]:
        with self._reading() as connection:
            return self._consumables_of(_fetch(connection, _SELECT_CONSUMABLES))

    def delete_consumable_resource(self, name: str) -> None:
        self._delete_named(_consumables, name)

    def mutate_consumable_resource(
        self, name: str, mutation: ConsumableResourceMutation
    ) -> ConsumableResource | None:
        # mutation runs inside the write transaction: it may read the store, never write.
        with self._writing() as connection:
            found = _fetch(connection, _LOCK_CONSUMABLE, {"b_name": name})
            if not found:
                return None
            current = self._consumable(found[0])
            if current is None:
                return None
            new = mutation(current)
            if new.name != name:
                raise ValueError(f"a mutation may not rename consumable resource {name}")
            stored = dataclasses.replace(new, in_use_quantity=current.in_use_quantity)
            connection.execute(
                _consumables.update()
                .where(_c.name == name)
                .values(total_quantity=stored.total_quantity, doc=_consumable_document(stored))
            )
            _fetch(connection, _BUMP_CHANGES)
        self._notify()
        return stored

    def seen_share_count(self, job_queue: str) -> int:
        with self._reading() as connection:
            return int(_fetch(connection, _COUNT_QUEUE_SHARES, {"b_queue": job_queue})[0][0])

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        with self._reading() as connection:
            rows = connection.execute(_SELECT_ACTIVE_SHARES, {"b_queue": job_queue})
            return {row[0] for row in rows}

    def list_jobs_by_consumable_resource(self, query: ConsumableJobQuery) -> list[Job]:
        if query.limit <= 0:
            return []
        select = _SELECT_JOBS.select_from(
            _job_consumables.join(_jobs, _j.job_id == _jc.job_id)
        ).where(_jc.resource == query.resource)
        if query.after is not None:
            select = select.where(_jc.seq < query.after)
        if query.status is not None:
            select = select.where(_j.status == query.status.value)
        if query.job_name is not None:
            select = select.where(_j.job_name_lc == query.job_name.lower())
        if query.job_name_prefix is not None:
            prefix = query.job_name_prefix.lower()
            select = select.where(sa.func.substr(_j.job_name_lc, 1, len(prefix)) == prefix)
        select = select.order_by(_jc.seq.desc()).limit(query.limit)
        with self._reading() as connection:
            return [self._job(row) for row in connection.execute(select).all()]

    def _lock_consumables(
        self, connection: Connection, names: Sequence[str]
    ) -> dict[str, ConsumableResource]:
        found: dict[str, ConsumableResource] = {}
        for chunk in _chunks(names):
            rows = _fetch(connection, _LOCK_CONSUMABLES_BY_NAME, ids=("names", chunk))
            for resource in self._consumables_of(rows):
                found[resource.name] = resource
        return found

    @staticmethod
    def _write_consumables(
        connection: Connection,
        before: Mapping[str, ConsumableResource],
        after: Mapping[str, ConsumableResource],
    ) -> None:
        rows = [
            {"b_name": name, "b_total": r.total_quantity, "b_in_use": r.in_use_quantity}
            for name, r in after.items()
            if before.get(name) != r
        ]
        _execute_many(connection, _SET_CONSUMABLE_COUNTS, rows)

    def _account_pairs(
        self, connection: Connection, pairs: Sequence[tuple[Job | None, Job]]
    ) -> None:
        """In-use counts follow jobs in and out of STARTING/RUNNING (no guard: a runtime's
        report or an API call records what happened)."""
        moving = [(old, new) for old, new in pairs if accounting.holds_resources(old, new)]
        if not moving:
            return
        before = self._lock_consumables(connection, _required_names(moving))
        after = dict(before)
        for old, new in moving:
            accounting.account(after, old, new)
        self._write_consumables(connection, before, after)

    # -- job definitions ----------------------------------------------------------------------

    def add_job_definition(self, build: Callable[[int], JobDefinition]) -> JobDefinition:
        # build is pure: calling it once more just to learn the name is harmless.
        name = build(0).name
        for _ in range(5):
            try:
                with self._writing() as connection:
                    highest = connection.execute(
                        sa.select(sa.func.max(_definitions.c.revision)).where(
                            _definitions.c.name == name
                        )
                    ).scalar()
                    revision = (highest or 0) + 1
                    definition = build(revision)
                    if definition.name != name or definition.revision != revision:
                        raise ValueError("build must return the given revision of one name")
                    connection.execute(
                        _definitions.insert().values(
                            name=name,
                            revision=revision,
                            status=definition.status,
                            doc=codec.dumps(codec.job_definition_document(definition)),
                        )
                    )
                    _fetch(connection, _BUMP_CHANGES)
                self._notify()
                return definition
            except IntegrityError:
                # Another process took this revision between our read and insert.
                continue
        raise ConflictError(f"could not allocate a revision of job definition {name}")

    def put_job_definition(self, definition: JobDefinition) -> None:
        with self._writing() as connection:
            updated = connection.execute(
                _definitions.update()
                .where(
                    _definitions.c.name == definition.name,
                    _definitions.c.revision == definition.revision,
                )
                .values(
                    status=definition.status,
                    doc=codec.dumps(codec.job_definition_document(definition)),
                )
            )
            if updated.rowcount == 0:
                raise ConflictError(
                    f"JobDefinition {definition.name}:{definition.revision} does not exist"
                )
            _fetch(connection, _BUMP_CHANGES)
        self._notify()

    def get_job_definition(self, name: str, revision: int) -> JobDefinition | None:
        with self._reading() as connection:
            rows = _fetch(connection, _SELECT_DEFINITION, {"b_name": name, "b_revision": revision})
        found: JobDefinition | None = self._decoded(_definitions.name, rows[0][0]) if rows else None
        return found

    def latest_job_definition(self, name: str, *, active_only: bool) -> JobDefinition | None:
        with self._reading() as connection:
            rows = _fetch(connection, _SELECT_LATEST_DEFINITION[active_only], {"b_name": name})
        found: JobDefinition | None = self._decoded(_definitions.name, rows[0][0]) if rows else None
        return found

    def list_job_definitions(self) -> list[JobDefinition]:
        query = sa.select(_definitions.c.doc).order_by(_definitions.c.name, _definitions.c.revision)
        with self._reading() as connection:
            texts = connection.execute(query).scalars()
            found = [self._decoded(_definitions.name, text) for text in texts]
        return [definition for definition in found if definition is not None]

    # -- jobs: decoding -------------------------------------------------------------------------

    def _job(self, row: Sequence[Any]) -> Job:
        seen = self._seen.get(row[0])
        if seen is not None and seen.version == row[14] and seen.seq == row[7]:
            return seen
        try:
            job = _job_from_row(row)
        except Exception as error:
            # Never a half-decoded job, never an exception that stops every read of a list.
            job = _stand_in(row, quarantine.unreadable_reason(error))
            self._unreadable.add(job)
            return job
        self._remember([job])
        return job

    def _jobs(
        self,
        connection: Connection,
        keys_statement: sa.ClauseElement,
        params: Mapping[str, Any] | None = None,
        *,
        ids: tuple[str, Sequence[str]] | None = None,
    ) -> list[Job]:
        """The jobs a keys-only statement selects, in its order.

        Whole rows are read (in the same transaction) only for the jobs not already decoded at
        their current version: most jobs a round reads were just written by this store, and a
        row's document is most of the cost of reading it.
        """
        keys = _fetch(connection, keys_statement, params, ids=ids)
        seen = self._seen
        found: list[Job | None] = []
        missing: list[str] = []
        for job_id, seq, version in keys:
            job = seen.get(job_id)
            if job is None or job.version != version or job.seq != seq:
                missing.append(job_id)
                job = None
            found.append(job)
        decoded: dict[str, Job] = {}
        for chunk in _chunks(missing):
            for row in _fetch(connection, _SELECT_JOBS_BY_ID, ids=("ids", chunk)):
                decoded[row[0]] = self._job(row)
        return [job or decoded[key[0]] for job, key in zip(found, keys, strict=True)]

    def _remember(self, jobs: Iterable[Job]) -> None:
        """Keep decoded or just-written jobs (call after their transaction committed), those
        that have not ended: they are what the dispatcher reads every round and clients poll.
        A finished job is read rarely, and reads of many (DescribeJobs of old ids) would only
        churn the cache: each decoded job kept is a few dozen objects the collector walks
        until they reach its oldest generation, and those passes were DescribeJobs' p99."""
        seen = self._seen
        with self._seen_lock:
            for job in jobs:
                seen.pop(job.job_id, None)  # re-inserted at the end: oldest first out
                if not job.status.is_terminal:
                    seen[job.job_id] = job
            while len(seen) > _SEEN_JOBS:
                del seen[next(iter(seen))]

    def _forget(self, job_ids: Iterable[str]) -> None:
        with self._seen_lock:
            for job_id in job_ids:
                self._seen.pop(job_id, None)

    # -- jobs: writing ---------------------------------------------------------------------------

    def _load_for_update(self, connection: Connection, job_ids: Sequence[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        for chunk in _chunks(job_ids):
            for job in self._jobs(connection, _LOCK_KEYS_BY_ID, ids=("ids", chunk)):
                found[job.job_id] = job
        return found

    def _store_pairs(
        self, connection: Connection, pairs: list[tuple[Job, Job]], *, flag: bool
    ) -> list[Job]:
        """Store each (old, new) pair: new fields, old seq and counts, version + 1.

        Returns the stored versions as a read right after this write sees them, unless the
        same transaction bumps them again (which bumps their version too).
        """
        if not pairs:
            return []
        for old, new in pairs:
            if new.job_id != old.job_id:
                raise ValueError(f"a mutation may not change job_id {old.job_id}")
        texts = codec.job_document_texts([new for _, new in pairs])
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        stored: list[Job] = []
        for (old, new), text in zip(pairs, texts, strict=True):
            values = _changed_values(old, new)
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
            _execute_many(connection, _UPDATE_JOB, rows)
        changed = [(old, new) for old, new in pairs if old.wait_for != new.wait_for]
        if changed:
            ids = [old.job_id for old, _ in changed]
            for chunk in _chunks(ids):
                connection.execute(_deps.delete().where(_deps.c.job_id.in_(chunk)))
            dependency_rows = [
                {"job_id": new.job_id, "depends_on": d}
                for _, new in changed
                for d in dict.fromkeys(new.wait_for)
            ]
            if dependency_rows:
                connection.execute(_deps.insert(), dependency_rows)
        required = [
            (old, new) for old, new in pairs if old.consumable_resources != new.consumable_resources
        ]
        if required:
            ids = [old.job_id for old, _ in required]
            for chunk in _chunks(ids):
                connection.execute(_job_consumables.delete().where(_jc.job_id.in_(chunk)))
            consumable_rows = [
                row for old, new in required for row in _consumable_rows(new, old.seq)
            ]
            _execute_many(connection, _INSERT_JOB_CONSUMABLE, consumable_rows)
        return stored

    def _consequences(self, connection: Connection, pairs: list[tuple[Job, Job]]) -> None:
        """What status changes imply mechanically: parent counts, dependents to look at."""
        deltas: dict[str, dict[str, int]] = {}
        ended: list[str] = []
        for old, new in pairs:
            if old.status is new.status:
                continue
            if old.array_parent_id is not None:
                delta = deltas.setdefault(old.array_parent_id, _zero_summary())
                delta[old.status.value] -= 1
            if new.array_parent_id is not None:
                delta = deltas.setdefault(new.array_parent_id, _zero_summary())
                delta[new.status.value] += 1
            if new.status.is_terminal:
                ended.append(new.job_id)
        if deltas:
            self._bump_parents(connection, deltas)
        dependents: set[str] = set()
        for chunk in _chunks(ended):
            dependents.update(
                row[0] for row in _fetch(connection, _SELECT_DEPENDENTS, ids=("ids", chunk))
            )
        if dependents:
            _execute_many(connection, _BUMP_JOB, [{"b_job_id": job_id} for job_id in dependents])

    @staticmethod
    def _bump_parents(connection: Connection, deltas: dict[str, dict[str, int]]) -> None:
        rows = []
        for parent_id, delta in deltas.items():
            row: dict[str, Any] = {"b_job_id": parent_id}
            for status in ALL_JOB_STATUSES:
                row[f"d_{_COUNT_COLUMN[status]}"] = delta[status.value]
            rows.append(row)
        _execute_many(connection, _BUMP_PARENT, rows)

    # -- jobs ---------------------------------------------------------------------------------

    def insert_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        if not jobs:
            return []
        ids = [job.job_id for job in jobs]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same job id is inserted twice")
        parents = {job.job_id for job in jobs if job.array_size is not None}
        try:
            with self._writing() as connection:
                [(first,)] = _fetch(connection, _LOCK_SEQ)
                _fetch(connection, _SET_SEQ, {"b_value": first + len(jobs)})
                # Counts of children stored before their parent arrive with the parent.
                initial = {parent_id: _zero_summary() for parent_id in parents}
                for chunk in _chunks(list(parents)):
                    counted = _fetch(connection, _COUNT_CHILDREN, ids=("ids", chunk))
                    for parent_id, status, count in counted:
                        initial[parent_id][status] += count
                deltas: dict[str, dict[str, int]] = {}
                for job in jobs:
                    parent_id = job.array_parent_id
                    if parent_id is None:
                        continue
                    if parent_id in initial:
                        initial[parent_id][job.status.value] += 1
                    else:
                        deltas.setdefault(parent_id, _zero_summary())[job.status.value] += 1
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
                no_counts = (None,) * len(_COUNT_COLUMNS)
                for new, text in zip(stored, texts, strict=True):
                    summary = new.array_status_summary
                    rows.append(
                        (
                            new.job_id,
                            new.seq,
                            1,  # version
                            True,  # needs_eval
                            new.job_queue,
                            new.status.value,
                            new.run_order,
                            new.job_name,
                            new.job_name.lower(),
                            new.job_definition_name,
                            new.job_definition_arn,
                            new.created_at,
                            new.stopped_at,
                            new.share_identifier,
                            new.array_size,
                            new.array_index,
                            new.array_parent_id,
                            *(
                                no_counts
                                if summary is None
                                else (summary[status] for status in _STATUS_NAMES)
                            ),
                            text,
                            new.scheduling_priority or 0,
                        )
                    )
                    for depends_on in dict.fromkeys(new.wait_for):
                        dependency_rows.append({"job_id": new.job_id, "depends_on": depends_on})
                    if new.consumable_resources:
                        consumable_rows.extend(_consumable_rows(new, new.seq))
                    if new.share_identifier is not None:
                        share = (new.job_queue, new.share_identifier)
                        if share not in self._known_shares:
                            new_shares.setdefault(share, new.created_at)
                _execute_rows(connection, _INSERT_JOB, _INSERT_KEYS, rows)
                if dependency_rows:
                    _execute_many(connection, _INSERT_DEPENDENCY, dependency_rows)
                if consumable_rows:
                    _execute_many(connection, _INSERT_JOB_CONSUMABLE, consumable_rows)
                    self._account_pairs(connection, [(None, new) for new in stored])
                if new_shares:
                    self._add_shares(connection, new_shares)
                if deltas:
                    # Parents stored earlier: their counts change, so they need a decision.
                    self._bump_parents(connection, deltas)
                _fetch(connection, _BUMP_CHANGES)
        except IntegrityError as exc:
            raise ConflictError("a job with this id already exists") from exc
        self._known_shares.update(new_shares)
        self._remember(stored)
        self._notify()
        return stored

    @staticmethod
    def _add_shares(connection: Connection, shares: Mapping[tuple[str, str], int]) -> None:
        """A usage row (value 0 at the first job's created_at) for each share not seen yet."""
        rows = [
            {"job_queue": queue, "share_identifier": share, "value": 0.0, "at": at}
            for (queue, share), at in shares.items()
        ]
        statement = _INSERT_SHARE_ROW_IF_MISSING.get(connection.dialect.name)
        if statement is not None:
            _execute_many(connection, statement, rows)
            return
        for row in rows:
            found = _fetch(
                connection,
                _LOCK_SHARE_ROW,
                {"b_queue": row["job_queue"], "b_share": row["share_identifier"]},
            )
            if not found:
                _execute_many(connection, _INSERT_SHARE_ROW, [row])

    def get_job(self, job_id: str) -> Job | None:
        with self._reading() as connection:
            rows = _fetch(connection, _SELECT_JOB, {"b_job_id": job_id})
        return self._job(rows[0]) if rows else None

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job]:
        ids = list(job_ids)
        found: dict[str, Job] = {}
        with self._reading() as connection:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                for job in self._jobs(connection, _KEYS_BY_ID, ids=("ids", chunk)):
                    found[job.job_id] = job
        return [found[i] for i in ids if i in found]

    def mutate_job(self, job_id: str, mutation: JobMutation) -> Job | None:
        # mutation runs inside the write transaction: it may read the store, never write.
        with self._writing() as connection:
            old = self._load_for_update(connection, [job_id]).get(job_id)
            if old is None:
                return None
            new = mutation(old)
            if new is None:
                return old
            [stored] = self._write_mutated(connection, [(old, new)])
            [row] = _fetch(connection, _SELECT_JOB, {"b_job_id": job_id})
        if row[14] == stored.version:
            self._remember([stored])
        else:
            stored = self._job(row)
        self._notify()
        return stored

    def _write_mutated(self, connection: Connection, pairs: list[tuple[Job, Job]]) -> list[Job]:
        """Store mutated jobs (flagged for evaluation) and what follows from them: consumable
        counts, dependents and parents, the change counter. Returns the stored versions."""
        stored = self._store_pairs(connection, pairs, flag=True)
        if pairs:
            self._account_pairs(connection, pairs)
            self._consequences(connection, pairs)
            _fetch(connection, _BUMP_CHANGES)
        return stored

    def mutate_jobs(self, mutations: Sequence[tuple[str, JobMutation]]) -> int:
        if not mutations:
            return 0
        # Each mutation runs inside the write transaction: it may read the store, never write.
        with self._writing() as connection:
            ids = list(dict.fromkeys(job_id for job_id, _ in mutations))
            current = self._load_for_update(connection, ids)
            first: dict[str, Job] = {}
            for job_id, mutation in mutations:
                old = current.get(job_id)
                if old is None:
                    continue
                new = mutation(old)
                if new is not None:
                    first.setdefault(job_id, old)
                    current[job_id] = new
            pairs = [(old, current[job_id]) for job_id, old in first.items()]
            stored = self._write_mutated(connection, pairs)
        if pairs:
            self._remember(stored)
            self._notify()
        return len(pairs)

    def mutate_array_children(self, parent_id: str, mutation: JobMutation) -> int:
        with self._writing() as connection:
            query = (
                _SELECT_JOBS.where(_j.array_parent_id == parent_id)
                .order_by(_j.array_index, _j.seq)
                .with_for_update()
            )
            pairs: list[tuple[Job, Job]] = []
            for row in connection.execute(query).all():
                old = self._job(row)
                new = mutation(old)
                if new is not None:
                    pairs.append((old, new))
            stored = self._write_mutated(connection, pairs)
        if pairs:
            self._remember(stored)
            self._notify()
        return len(pairs)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit <= 0 or query.multi_node_job_id is not None:
            # Multi-node parallel jobs have no node jobs in the model yet.
            return []
        if query.job_queue is not None:
            select = _SELECT_JOBS.where(
                _j.job_queue == query.job_queue, _j.array_parent_id.is_(None)
            )
            if query.after is not None:
                select = select.where(_j.seq < query.after)
            select = select.order_by(_j.seq.desc())
        else:
            select = _SELECT_JOBS.where(_j.array_parent_id == query.array_job_id)
            if query.after is not None:
                select = select.where(_j.array_index > query.after)
            select = select.order_by(_j.array_index, _j.seq)
        select = _filtered(select, query).limit(query.limit)
        with self._reading() as connection:
            return [self._job(row) for row in connection.execute(select).all()]

    def delete_jobs_finished_before(self, cutoff_ms: int) -> list[Job]:
        query = (
            _SELECT_JOBS.where(_j.status.in_(_TERMINAL), _j.stopped_at < cutoff_ms)
            .order_by(_j.stopped_at, _j.seq)
            .with_for_update()
        )
        with self._writing() as connection:
            removed = [self._job(row) for row in connection.execute(query).all()]
            ids = [job.job_id for job in removed]
            for chunk in _chunks(ids):
                connection.execute(_deps.delete().where(_deps.c.job_id.in_(chunk)))
                connection.execute(_job_consumables.delete().where(_jc.job_id.in_(chunk)))
                connection.execute(_jobs.delete().where(_j.job_id.in_(chunk)))
            if removed:
                _fetch(connection, _BUMP_CHANGES)
        self._forget(ids)
        if removed:
            self._notify()
        return removed

    # -- scheduling ---------------------------------------------------------------------------

    def snapshot(self, limits: SnapshotLimits = _DEFAULT_LIMITS) -> Snapshot:
        with self._reading(consistent=True) as connection:
            ces: list[ComputeEnvironment] = []
            queues: list[JobQueue] = []
            policies: list[SchedulingPolicy] = []
            found = (ces, queues, policies)
            for kind, _, text in sorted(_fetch(connection, _SELECT_RESOURCES)):
                resource = self._decoded(_RESOURCE_TABLES[kind].name, text)
                if resource is not None:
                    found[kind].append(resource)
            active = tuple(self._active(connection))
            fair = {queue.name for queue in queues if queue.scheduling_policy_arn is not None}
            share_usage: dict[str, dict[str, ShareUsage]] = {name: {} for name in fair}
            if fair:
                for queue_name, share, value, at in _fetch(connection, _SELECT_SHARE_USAGE):
                    if queue_name in fair:
                        share_usage[queue_name][share] = ShareUsage(queue_name, share, value, at)
            runnable: dict[str, tuple[Job, ...]] = {}
            runnable_by_share: dict[str, dict[str, tuple[Job, ...]]] = {}
            share_heads = _SHARE_HEAD_KEYS_SQLITE if self._is_sqlite else _SHARE_HEAD_KEYS_LATERAL
            for queue in queues:
                if queue.name in fair:
                    limit = limits.heads_of(queue.name)
                    # A share with RUNNABLE jobs has its entry even when none is to be read
                    # (limit 0), as in MemoryStore: one head tells, then is left out.
                    read = limit or 1
                    params = {"b_queue": queue.name, "b_limit": read}
                    heads_of = (
                        _share_blocks(self._jobs(connection, share_heads, params), read)
                        if share_usage[queue.name]
                        else {}
                    )
                    # Shares in the order of their usage rows, those with no RUNNABLE job left out.
                    runnable_by_share[queue.name] = {
                        share: heads_of[share] if limit else ()
                        for share in share_usage[queue.name]
                        if share in heads_of
                    }
                    continue
                heads = self._jobs(
                    connection,
                    _RUNNABLE_HEAD_KEYS,
                    {"b_queue": queue.name, "b_limit": limits.heads_of(queue.name)},
                )
                runnable[queue.name] = tuple(heads)
            consumables = self._consumables_of(_fetch(connection, _SELECT_CONSUMABLES))
            to_evaluate = tuple(
                self._jobs(connection, _FLAGGED_KEYS, {"b_limit": limits.to_evaluate})
            )
            wanted = list(dict.fromkeys(d for job in to_evaluate for d in job.wait_for))
            dependency_status: dict[str, JobStatus] = {}
            for chunk in _chunks(wanted):
                for job_id, status in _fetch(connection, _SELECT_STATUS_BY_ID, ids=("ids", chunk)):
                    # A status Batchyard does not know is of a record it will fail.
                    dependency_status[job_id] = quarantine.stored_status(status) or JobStatus.FAILED
        unreadable: dict[str, str] = {}
        if self._unreadable:  # rows that did not decode: named, never handed to the planner
            separate = self._unreadable.separate
            active = separate(active, unreadable)
            runnable = {name: separate(heads, unreadable) for name, heads in runnable.items()}
            runnable_by_share = {
                name: {share: separate(heads, unreadable) for share, heads in shares.items()}
                for name, shares in runnable_by_share.items()
            }
            to_evaluate = separate(to_evaluate, unreadable)
        return Snapshot(
            compute_environments={ce.name: ce for ce in ces},
            job_queues=tuple(queues),
            scheduling_policies={policy.arn: policy for policy in policies},
            active=active,
            runnable=runnable,
            runnable_by_share=runnable_by_share,
            share_usage=share_usage,
            consumable_resources={r.name: r for r in consumables},
            to_evaluate=to_evaluate,
            dependency_status={d: dependency_status[d] for d in wanted if d in dependency_status},
            unreadable=unreadable,
        )

    def _active(self, connection: Connection) -> list[Job]:
        return self._jobs(connection, _ACTIVE_KEYS)

    def commit(self, plan: Plan) -> set[str]:
        applied: set[str] = set()
        with self._writing() as connection:
            ids = list(dict.fromkeys(job.job_id for job in plan.updates))
            current = self._load_for_update(connection, ids) if ids else {}
            moving = [
                (old, job)
                for job in plan.updates
                if (old := current.get(job.job_id)) is not None
                and old.version == job.version
                and accounting.holds_resources(old, job)
            ]
            before = self._lock_consumables(connection, _required_names(moving)) if moving else {}
            # The guard sees the takes (and releases) of the updates before it.
            resources = dict(before)
            pairs: list[tuple[Job, Job]] = []
            for job in plan.updates:
                old = current.get(job.job_id)
                if old is None or job.job_id in applied or old.version != job.version:
                    continue
                if accounting.holds_resources(old, job):
                    if not accounting.fits(resources, old, job):
                        continue
                    accounting.account(resources, old, job)
                applied.add(job.job_id)
                pairs.append((old, job))
            stored = self._store_pairs(connection, pairs, flag=False)
            if moving:
                self._write_consumables(connection, before, resources)
            accruals = [a for a in plan.accruals if a.job_id in applied]
            if accruals:
                self._accrue(connection, accruals)
            # Consequences come after the evaluated flags are cleared, so a job whose
            # dependency ended in this very plan stays flagged.
            if plan.evaluated:
                _execute_many(
                    connection,
                    _CLEAR_FLAG,
                    [{"b_job_id": job_id, "b_version": v} for job_id, v in plan.evaluated],
                )
            if pairs:
                self._consequences(connection, pairs)
                _fetch(connection, _BUMP_CHANGES)
        if applied:
            self._remember(stored)
            self._notify()
        return applied

    def active_jobs(self) -> list[Job]:
        with self._reading() as connection:
            return self._active(connection)

    def quarantine_jobs(self, reasons: Mapping[str, str], now: int) -> list[str]:
        ids = list(reasons)
        if not ids:
            return []
        stored: list[str] = []
        with self._writing() as connection:
            rows: list[Any] = []
            held: dict[str, list[ConsumableRequirement]] = {}
            for chunk in _chunks(ids):
                rows.extend(_fetch(connection, _LOCK_JOBS_BY_ID, ids=("ids", chunk)))
                for job_id, resource, quantity in connection.execute(
                    sa.select(_jc.job_id, _jc.resource, _jc.quantity).where(_jc.job_id.in_(chunk))
                ):
                    held.setdefault(job_id, []).append(ConsumableRequirement(resource, quantity))
            updates: list[dict[str, Any]] = []
            releasing: list[tuple[Job | None, Job]] = []
            parents: set[str] = set()
            for row in rows:
                job_id, reason = row[0], reasons[row[0]]
                original = None
                try:
                    job = _job_from_row(row)
                except Exception:
                    job, original = _stand_in(row, reason), _row_record(row)
                if original is None and job.status is JobStatus.FAILED:
                    continue  # ended already: nothing to isolate
                new = quarantine.failed(job, reason, now, original)
                try:
                    text = codec.dumps(codec.job_document(new))
                except Exception:  # a job that decoded but does not encode: keep what can be
                    new = quarantine.failed(_stand_in(row, reason), reason, now, _row_record(row))
                    text = codec.dumps(codec.job_document(new))
                updates.append(
                    {
                        "b_job_id": job_id,
                        "status": JobStatus.FAILED.value,
                        "stopped_at": new.stopped_at,
                        "doc": text,
                        "version": row[14] + 1,
                        "needs_eval": False,
                    }
                )
                status = quarantine.stored_status(row[5])
                if status is not None and status.is_active and job_id in held:
                    requirements = tuple(held[job_id])
                    releasing.append(
                        (
                            codec.replace_job(
                                new, status=status, consumable_resources=requirements
                            ),
                            codec.replace_job(new, consumable_resources=requirements),
                        )
                    )
                if new.array_parent_id is not None:
                    parents.add(new.array_parent_id)
                stored.append(job_id)
            if stored:
                _execute_many(connection, _UPDATE_JOB, updates)
                self._account_pairs(connection, releasing)
                self._recount_parents(connection, sorted(parents))
                dependents: set[str] = set()
                for chunk in _chunks(stored):
                    found = _fetch(connection, _SELECT_DEPENDENTS, ids=("ids", chunk))
                    dependents.update(row[0] for row in found)
                _execute_many(connection, _BUMP_JOB, [{"b_job_id": d} for d in dependents])
                _fetch(connection, _BUMP_CHANGES)
        self._forget(stored)
        self._unreadable.discard(stored)
        if stored:
            self._notify()
        return stored

    @staticmethod
    def _recount_parents(connection: Connection, parent_ids: Sequence[str]) -> None:
        """Set array parents' counts from their children's rows (a quarantined child's old
        status may be one no count holds) and flag the parents."""
        for chunk in _chunks(parent_ids):
            counts = {parent_id: _zero_summary() for parent_id in chunk}
            for parent_id, status, count in _fetch(connection, _COUNT_CHILDREN, ids=("ids", chunk)):
                if status in counts[parent_id]:
                    counts[parent_id][status] += count
            rows = [
                {
                    "b_job_id": parent_id,
                    **{f"c_{_COUNT_COLUMN[s]}": found[s.value] for s in ALL_JOB_STATUSES},
                }
                for parent_id, found in counts.items()
            ]
            _execute_many(connection, _SET_PARENT_COUNTS, rows)

    @staticmethod
    def _accrue(connection: Connection, accruals: Sequence[UsageAccrual]) -> None:
        """Add ended attempts' usage to their shares' rows (a missing row starts at 0)."""
        stored: dict[tuple[str, str], ShareUsage | None] = {}
        for accrual in accruals:
            key = (accrual.job_queue, accrual.share_identifier)
            if key not in stored:
                queue, share = key
                found = _fetch(connection, _LOCK_SHARE_ROW, {"b_queue": queue, "b_share": share})
                stored[key] = ShareUsage(queue, share, found[0][0], found[0][1]) if found else None
        written = dict(stored)
        for accrual in accruals:
            key = (accrual.job_queue, accrual.share_identifier)
            written[key] = accounting.accrue(written[key], accrual)
        updates = []
        inserts = []
        for key, row in written.items():
            assert row is not None
            queue, share = key
            if stored[key] is None:
                inserts.append(
                    {
                        "job_queue": queue,
                        "share_identifier": share,
                        "value": row.value,
                        "at": row.at,
                    }
                )
            else:
                updates.append(
                    {"b_queue": queue, "b_share": share, "b_value": row.value, "b_at": row.at}
                )
        _execute_many(connection, _SET_SHARE_ROW, updates)
        _execute_many(connection, _INSERT_SHARE_ROW, inserts)


def _filtered(select: sa.Select[Any], query: JobQuery) -> sa.Select[Any]:
    if query.status is not None:
        select = select.where(_j.status == query.status.value)
    if query.job_name is not None:
        select = select.where(_j.job_name_lc == query.job_name.lower())
    if query.job_name_prefix is not None:
        prefix = query.job_name_prefix.lower()
        select = select.where(sa.func.substr(_j.job_name_lc, 1, len(prefix)) == prefix)
    if query.job_definition_name is not None:
        select = select.where(_j.job_definition_name == query.job_definition_name)
    if query.job_definition_name_prefix is not None:
        prefix = query.job_definition_name_prefix
        select = select.where(sa.func.substr(_j.job_definition_name, 1, len(prefix)) == prefix)
    if query.job_definition_arn is not None:
        select = select.where(_j.job_definition_arn == query.job_definition_arn)
    if query.created_before is not None:
        select = select.where(_j.created_at < query.created_before)
    if query.created_after is not None:
        select = select.where(_j.created_at > query.created_after)
    if query.share_identifier is not None:
        select = select.where(_j.share_identifier == query.share_identifier)
    return select
