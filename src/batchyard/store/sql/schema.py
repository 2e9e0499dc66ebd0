"""The tables of Batchyard's database, declared for the queries (and nothing else).

The Alembic migrations in store/migrations are the source of truth and run on every start;
these `sa.Table` objects mirror them by hand. tests/unit/store/test_schema.py checks that they equal
what the migrations build. Nothing here creates the indexes (the migrations do): they are
declared so that the check covers them, and so that a reader sees which indexes the statements
of statements.py rely on.
"""

from __future__ import annotations

import sqlalchemy as sa

from batchyard.domain.model import ALL_JOB_STATUSES

SCHEMA_MARKER = "batchyard"
"""The value of batchyard_meta's `schema` row: what tells a Batchyard database from others."""

metadata = sa.MetaData()
meta = sa.Table(
    "batchyard_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)


def _named_document_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("doc", sa.Text(), nullable=False),
    )


compute_environments = _named_document_table("compute_environments")
job_queues = _named_document_table("job_queues")
scheduling_policies = _named_document_table("scheduling_policies")
job_definitions = sa.Table(
    "job_definitions",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("revision", sa.Integer(), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("doc", sa.Text(), nullable=False),
)
_TOP_LEVEL = sa.text("array_parent_id IS NULL")  # array children are left out of the listings
_HAS_SHARE = sa.text("share_identifier IS NOT NULL")  # FIFO queues' jobs are left out
COUNT_COLUMNS = tuple(f"n_{status.value.lower()}" for status in ALL_JOB_STATUSES)
COUNT_COLUMN = {status: f"n_{status.value.lower()}" for status in ALL_JOB_STATUSES}
jobs = sa.Table(
    "jobs",
    metadata,
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
    *(sa.Column(name, sa.Integer(), nullable=True) for name in COUNT_COLUMNS),
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
    jobs.c.job_queue,
    jobs.c.status,
    jobs.c.share_identifier,
    jobs.c.scheduling_priority.desc(),
    jobs.c.run_order,
    jobs.c.seq,
    sqlite_where=_HAS_SHARE,
    postgresql_where=_HAS_SHARE,
)
job_dependencies = sa.Table(
    "job_dependencies",
    metadata,
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("depends_on", sa.String(64), primary_key=True),
    sa.Index("ix_job_dependencies_depends_on", "depends_on"),
)
consumable_resources = sa.Table(
    "consumable_resources",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("total_quantity", sa.BigInteger(), nullable=False),
    sa.Column("in_use_quantity", sa.BigInteger(), nullable=False),
    sa.Column("doc", sa.Text(), nullable=False),  # every other field
)
job_consumable_resources = sa.Table(
    "job_consumable_resources",
    metadata,
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
share_usage = sa.Table(
    "share_usage",
    metadata,
    sa.Column("job_queue", sa.String(255), primary_key=True),
    sa.Column("share_identifier", sa.String(255), primary_key=True),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("at", sa.BigInteger(), nullable=False),
)
