"""A job row and a Job, both ways: which columns a read selects and where each sits in the
row (by name, never a bare `row[14]`), the row an insert writes, and the columns a write sets.

Also the rows of job_consumable_resources a job owns and the document a consumable resource is
stored as. A column added to the jobs table is added here (read, insert, write) and in
schema.py; tests/unit/store/test_schema.py and the store contract suite fail until they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from batchyard.domain.model import ALL_JOB_STATUSES, ConsumableResource, Job
from batchyard.store import codec, quarantine
from batchyard.store.sql.schema import COUNT_COLUMNS, jobs

STATUS_NAMES = tuple(status.value for status in ALL_JOB_STATUSES)
"""The statuses in the order of the count columns (n_submitted, n_pending, ...)."""

# The columns a read selects, in row order: the job's identity and place, its version, an array
# parent's counts, and the document holding every other field.
_READ_COLUMNS = (
    "job_id",
    "job_name",
    "job_queue",
    "job_definition_arn",
    "job_definition_name",
    "status",
    "created_at",
    "seq",
    "stopped_at",
    "array_size",
    "array_index",
    "array_parent_id",
    "share_identifier",
    "run_order",
    "version",
    *COUNT_COLUMNS,
    "doc",
)
JOB_COLUMNS = tuple(jobs.c[name] for name in _READ_COLUMNS)
_POSITION = {name: position for position, name in enumerate(_READ_COLUMNS)}

# Where each column sits in a row of JOB_COLUMNS.
JOB_ID = _POSITION["job_id"]
_JOB_NAME = _POSITION["job_name"]
_JOB_QUEUE = _POSITION["job_queue"]
_JOB_DEFINITION_ARN = _POSITION["job_definition_arn"]
_JOB_DEFINITION_NAME = _POSITION["job_definition_name"]
STATUS = _POSITION["status"]
_CREATED_AT = _POSITION["created_at"]
SEQ = _POSITION["seq"]
_STOPPED_AT = _POSITION["stopped_at"]
_ARRAY_SIZE = _POSITION["array_size"]
_ARRAY_INDEX = _POSITION["array_index"]
_ARRAY_PARENT_ID = _POSITION["array_parent_id"]
_SHARE_IDENTIFIER = _POSITION["share_identifier"]
_RUN_ORDER = _POSITION["run_order"]
VERSION = _POSITION["version"]
_COUNTS = slice(_POSITION[COUNT_COLUMNS[0]], _POSITION[COUNT_COLUMNS[-1]] + 1)
_DOC = _POSITION["doc"]


def job_from_row(row: Sequence[Any]) -> Job:
    """The job a row holds; raises if it does not hold a valid one (see quarantine.py)."""
    counts = row[_COUNTS]
    summary = None if counts[0] is None else dict(zip(STATUS_NAMES, counts, strict=True))
    job = codec.job_from_document(
        codec.loads(row[_DOC]),
        job_id=row[JOB_ID],
        job_name=row[_JOB_NAME],
        job_queue=row[_JOB_QUEUE],
        job_definition_arn=row[_JOB_DEFINITION_ARN],
        job_definition_name=row[_JOB_DEFINITION_NAME],
        status=codec.job_status(row[STATUS]),
        created_at=row[_CREATED_AT],
        seq=row[SEQ],
        stopped_at=row[_STOPPED_AT],
        array_size=row[_ARRAY_SIZE],
        array_index=row[_ARRAY_INDEX],
        array_parent_id=row[_ARRAY_PARENT_ID],
        share_identifier=row[_SHARE_IDENTIFIER],
        run_order=row[_RUN_ORDER],
        version=row[VERSION],
        array_status_summary=summary,
    )
    return codec.check_job(job)


def stand_in(row: Sequence[Any], reason: str) -> Job:
    """What can be read of a row whose job cannot be (quarantine.stand_in)."""
    counts = row[_COUNTS]
    summary = (
        dict(zip(STATUS_NAMES, counts, strict=True))
        if all(type(count) is int for count in counts)
        else None
    )
    return quarantine.stand_in(
        job_id=row[JOB_ID],
        job_name=row[_JOB_NAME],
        job_queue=row[_JOB_QUEUE],
        job_definition_arn=row[_JOB_DEFINITION_ARN],
        job_definition_name=row[_JOB_DEFINITION_NAME],
        status=row[STATUS],
        created_at=row[_CREATED_AT],
        seq=row[SEQ],
        stopped_at=row[_STOPPED_AT],
        array_size=row[_ARRAY_SIZE],
        array_index=row[_ARRAY_INDEX],
        array_parent_id=row[_ARRAY_PARENT_ID],
        share_identifier=row[_SHARE_IDENTIFIER],
        run_order=row[_RUN_ORDER],
        version=row[VERSION],
        array_status_summary=summary,
        reason=reason,
    )


def row_record(row: Sequence[Any]) -> dict[str, Any]:
    """A job row as it is stored, kept in the job's document when the row is quarantined."""
    return dict(zip(_READ_COLUMNS, row, strict=True))


# -- inserting ---------------------------------------------------------------------------------


def _count_of(status: str) -> Callable[[Job], int | None]:
    def count(job: Job) -> int | None:
        summary = job.array_status_summary
        return None if summary is None else summary[status]

    return count


# How each column of a new job's row is read from the job (the document aside: its text is
# encoded for many jobs at once). A new job is stored flagged for the planner.
_INSERTED: dict[str, Callable[[Job], Any]] = {
    "job_id": attrgetter("job_id"),
    "seq": attrgetter("seq"),
    "version": attrgetter("version"),
    "needs_eval": lambda _job: True,
    "job_queue": attrgetter("job_queue"),
    "status": lambda job: job.status.value,
    "run_order": attrgetter("run_order"),
    "job_name": attrgetter("job_name"),
    "job_name_lc": lambda job: job.job_name.lower(),
    "job_definition_name": attrgetter("job_definition_name"),
    "job_definition_arn": attrgetter("job_definition_arn"),
    "created_at": attrgetter("created_at"),
    "stopped_at": attrgetter("stopped_at"),
    "share_identifier": attrgetter("share_identifier"),
    "array_size": attrgetter("array_size"),
    "array_index": attrgetter("array_index"),
    "array_parent_id": attrgetter("array_parent_id"),
    **{
        column: _count_of(status)
        for column, status in zip(COUNT_COLUMNS, STATUS_NAMES, strict=True)
    },
    "scheduling_priority": lambda job: job.scheduling_priority or 0,
}
INSERT_COLUMNS = tuple(column.name for column in jobs.columns)
"""The columns of an insert row, in the table's order (the order its compiled INSERT takes)."""


def insert_row(job: Job, text: str) -> tuple[Any, ...]:
    """A new job's row, in INSERT_COLUMNS order, with `text` its encoded document.

    Spelled out rather than built from _INSERTED, which is five times slower and a 10,000-child
    array inserts 10,000 rows; tests/unit/store/test_sql_rows.py checks that each value is the one
    _INSERTED reads for the column at its place, so the order cannot drift from the table's.
    """
    summary = job.array_status_summary
    return (
        job.job_id,
        job.seq,
        job.version,
        True,  # needs_eval
        job.job_queue,
        job.status.value,
        job.run_order,
        job.job_name,
        job.job_name.lower(),
        job.job_definition_name,
        job.job_definition_arn,
        job.created_at,
        job.stopped_at,
        job.share_identifier,
        job.array_size,
        job.array_index,
        job.array_parent_id,
        *(_NO_COUNTS if summary is None else [summary[status] for status in STATUS_NAMES]),
        text,
        job.scheduling_priority or 0,
    )


_NO_COUNTS = (None,) * len(COUNT_COLUMNS)


def inserted_value(column: str, job: Job, text: str) -> Any:
    """What insert_row puts in `column`, read by name (for the test of insert_row's order)."""
    return text if column == "doc" else _INSERTED[column](job)


# -- updating ----------------------------------------------------------------------------------

# The columns of a job a write may set, and how to read each from a Job. A write sets only
# those that changed (and doc): SQLite rewrites every index on a column named in SET, and most
# writes change the status or the document alone.
_WRITABLE: tuple[tuple[str, Callable[[Job], Any]], ...] = tuple(
    (name, _INSERTED[name])
    for name in (
        "job_queue",
        "status",
        "run_order",
        "job_name",
        "job_name_lc",
        "job_definition_name",
        "job_definition_arn",
        "created_at",
        "stopped_at",
        "share_identifier",
        "array_size",
        "array_index",
        "array_parent_id",
        "scheduling_priority",
    )
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


def changed_values(old: Job, new: Job) -> dict[str, Any]:
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


# -- other tables ------------------------------------------------------------------------------


def requirement_rows(job: Job, seq: int) -> list[dict[str, Any]]:
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


def consumable_document(resource: ConsumableResource) -> str:
    """The fields of a resource but its counts, which have columns of their own."""
    doc = codec.consumable_resource_document(resource)
    del doc["total_quantity"], doc["in_use_quantity"]
    return codec.dumps(doc)
