"""Fair share and consumable resources: per-share RUNNABLE heads, share usage, resource counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 1000
_HAS_SHARE = sa.text("share_identifier IS NOT NULL")


def upgrade() -> None:
    # The job document keeps None apart from 0; the column orders heads (absent = 0).
    op.add_column(
        "jobs",
        sa.Column("scheduling_priority", sa.Integer(), nullable=False, server_default="0"),
    )
    _backfill_scheduling_priority()
    # Heads of each share of a fair-share queue, in share order (snapshot). Jobs of FIFO
    # queues (no share) are left out, so their writes do not maintain it.
    op.create_index(
        "ix_jobs_runnable_share",
        "jobs",
        [
            "job_queue",
            "status",
            "share_identifier",
            sa.text("scheduling_priority DESC"),
            "run_order",
            "seq",
        ],
        sqlite_where=_HAS_SHARE,
        postgresql_where=_HAS_SHARE,
    )

    # Counts in their own columns: every placement and every end of a job updates them.
    op.create_table(
        "consumable_resources",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("total_quantity", sa.BigInteger(), nullable=False),
        sa.Column("in_use_quantity", sa.BigInteger(), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_table(
        "job_consumable_resources",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("resource", sa.String(255), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),  # the job's, for newest-first paging
        sa.Column("quantity", sa.BigInteger(), nullable=False),
    )
    # ListJobsByConsumableResource, newest first.
    op.create_index(
        "ix_job_consumable_resources_resource", "job_consumable_resources", ["resource", "seq"]
    )

    share_usage = op.create_table(
        "share_usage",
        sa.Column("job_queue", sa.String(255), primary_key=True),
        sa.Column("share_identifier", sa.String(255), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    # Every share already seen gets its row, so the snapshot finds its RUNNABLE jobs.
    jobs = sa.table(
        "jobs", sa.column("job_queue"), sa.column("share_identifier"), sa.column("created_at")
    )
    seen = (
        sa.select(
            jobs.c.job_queue,
            jobs.c.share_identifier,
            sa.literal(0.0, sa.Float()),
            sa.func.min(jobs.c.created_at),
        )
        .where(jobs.c.share_identifier.is_not(None))
        .group_by(jobs.c.job_queue, jobs.c.share_identifier)
    )
    op.execute(
        share_usage.insert().from_select(["job_queue", "share_identifier", "value", "at"], seen)
    )


def _backfill_scheduling_priority() -> None:
    jobs = sa.table("jobs", sa.column("job_id"), sa.column("doc"), sa.column("scheduling_priority"))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(jobs.c.job_id, jobs.c.doc).where(jobs.c.doc.like('%"scheduling_priority"%'))
    )
    update = (
        jobs.update()
        .where(jobs.c.job_id == sa.bindparam("b_job_id"))
        .values(scheduling_priority=sa.bindparam("b_priority"))
    )
    pending: list[dict[str, object]] = []
    for job_id, doc in rows.all():
        priority = json.loads(doc).get("scheduling_priority")
        if priority:
            pending.append({"b_job_id": job_id, "b_priority": priority})
        if len(pending) >= _BACKFILL_BATCH:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)


def downgrade() -> None:
    op.drop_table("share_usage")
    op.drop_index("ix_job_consumable_resources_resource", "job_consumable_resources")
    op.drop_table("job_consumable_resources")
    op.drop_table("consumable_resources")
    op.drop_index("ix_jobs_runnable_share", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("scheduling_priority")
