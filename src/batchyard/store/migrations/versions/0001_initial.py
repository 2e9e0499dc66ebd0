"""Initial Batchyard schema: resources, job definitions, jobs and their dependencies.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TOP_LEVEL = sa.text("array_parent_id IS NULL")


def upgrade() -> None:
    """Create every table of the first schema; long because it is one statement per table."""
    meta = op.create_table(
        "batchyard_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema", "value": "batchyard"}])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counters, [{"name": "seq", "value": 0}, {"name": "changes", "value": 0}])

    for table in ("compute_environments", "job_queues", "scheduling_policies"):
        op.create_table(
            table,
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("doc", sa.Text(), nullable=False),
        )
    op.create_table(
        "job_definitions",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("revision", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )

    op.create_table(
        "jobs",
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
        # Per-status child counts of an array parent (NULL for every other job).
        sa.Column("n_submitted", sa.Integer(), nullable=True),
        sa.Column("n_pending", sa.Integer(), nullable=True),
        sa.Column("n_runnable", sa.Integer(), nullable=True),
        sa.Column("n_starting", sa.Integer(), nullable=True),
        sa.Column("n_running", sa.Integer(), nullable=True),
        sa.Column("n_succeeded", sa.Integer(), nullable=True),
        sa.Column("n_failed", sa.Integer(), nullable=True),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    # Heads of the RUNNABLE queues, in run order (snapshot).
    op.create_index("ix_jobs_runnable", "jobs", ["job_queue", "status", "run_order", "seq"])
    # Jobs the planner must look at, oldest first (snapshot).
    op.create_index("ix_jobs_needs_eval", "jobs", ["needs_eval", "seq"])
    # Active jobs, and terminal jobs by stop time (snapshot, clean-up).
    op.create_index("ix_jobs_status_stopped", "jobs", ["status", "stopped_at"])
    # Children of an array parent by index (ListJobs arrayJobId, parent bookkeeping).
    op.create_index("ix_jobs_children", "jobs", ["array_parent_id", "array_index", "seq"])
    # ListJobs over the top-level jobs of a queue, newest first; children are left out of
    # these indexes so a large array does not slow a queue's listing.
    for name, columns in (
        ("ix_jobs_list", ["job_queue", "seq"]),
        ("ix_jobs_list_status", ["job_queue", "status", "seq"]),
        ("ix_jobs_list_name", ["job_queue", "job_name_lc", "seq"]),
        ("ix_jobs_list_definition", ["job_queue", "job_definition_name", "seq"]),
        ("ix_jobs_list_share", ["job_queue", "share_identifier", "seq"]),
        ("ix_jobs_list_created", ["job_queue", "created_at"]),
    ):
        op.create_index(name, "jobs", columns, sqlite_where=_TOP_LEVEL, postgresql_where=_TOP_LEVEL)

    op.create_table(
        "job_dependencies",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("depends_on", sa.String(64), primary_key=True),
    )
    op.create_index("ix_job_dependencies_depends_on", "job_dependencies", ["depends_on"])


def downgrade() -> None:
    for table in (
        "job_dependencies",
        "jobs",
        "job_definitions",
        "scheduling_policies",
        "job_queues",
        "compute_environments",
        "counters",
        "batchyard_meta",
    ):
        op.drop_table(table)
