"""DescribeJobs and ListJobs in the service layer: lookups, filters, paging, created-at ranges."""

from __future__ import annotations

from batchyard.domain.model import (
    JobStatus,
)
from batchyard.service import job_queries
from batchyard.service.context import ServiceContext
from tests.builders import FixedClock
from tests.unit.service.context import IDENTITY, NOW, define, rejected, set_status, submit

S = JobStatus


# -- DescribeJobs -------------------------------------------------------------------------------


def test_describe_jobs(ctx: ServiceContext) -> None:
    a, b = submit(ctx), submit(ctx)
    found = job_queries.describe_jobs(ctx, jobs=[b.job_id, "unknown", a.job_id])
    assert [j.job_id for j in found] == [b.job_id, a.job_id]
    rejected(
        lambda: job_queries.describe_jobs(ctx, jobs=[a.job_id] * 101),
        "Error executing request, Exception : Maximum number of jobs supported is  100",
    )
    assert len(job_queries.describe_jobs(ctx, jobs=[a.job_id] * 100)) == 100


# -- ListJobs -----------------------------------------------------------------------------------


def test_list_jobs_needs_exactly_one_selector(ctx: ServiceContext) -> None:
    rejected(lambda: job_queries.list_jobs(ctx), "jobQueue")
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="q", array_job_id="x"), "Exactly one")
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="nope"), "JobQueue nope not found.")


def test_list_jobs_defaults_to_running(ctx: ServiceContext) -> None:
    waiting = submit(ctx)
    running = set_status(ctx, submit(ctx).job_id, S.RUNNING)
    page, token = job_queries.list_jobs(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert [j.job_id for j in page] == [running.job_id]
    assert token is None
    page, _ = job_queries.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert [j.job_id for j in page] == [waiting.job_id]
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="q", job_status="DONE"), "DONE")


def test_list_jobs_pagination(ctx: ServiceContext) -> None:
    submitted = [submit(ctx, job_name=f"j{i}").job_id for i in range(5)]
    seen: list[str] = []
    tokens: list[str] = []
    token: str | None = None
    while True:
        page, token = job_queries.list_jobs(
            ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=token
        )
        seen.extend(j.job_id for j in page)
        if token is None:
            break
        tokens.append(token)
    assert seen == list(reversed(submitted))  # newest first, no overlap, nothing missed
    assert len(tokens) == 2
    again, again_token = job_queries.list_jobs(
        ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=tokens[0]
    )
    assert [j.job_id for j in again] == seen[2:4]
    assert again_token == tokens[1]
    # A job submitted meanwhile does not shift later pages.
    submit(ctx, job_name="late")
    later, _ = job_queries.list_jobs(
        ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=tokens[0]
    )
    assert [j.job_id for j in later] == seen[2:4]
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="q", max_results=0), "maxResults")
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="q", next_token="garbage!"), "nextToken")


def test_list_array_children_pages_by_index(ctx: ServiceContext) -> None:
    parent = submit(ctx, array_properties={"size": 5})
    first, token = job_queries.list_jobs(
        ctx, array_job_id=parent.job_id, job_status="PENDING", max_results=3
    )
    assert [j.array_index for j in first] == [0, 1, 2]
    assert token is not None
    rest, token = job_queries.list_jobs(
        ctx, array_job_id=parent.job_id, job_status="PENDING", max_results=3, next_token=token
    )
    assert [j.array_index for j in rest] == [3, 4]
    assert token is None
    # Queue listings show the parent, not its children.
    top, _ = job_queries.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert [j.job_id for j in top] == [parent.job_id]


def test_list_jobs_max_results_caps(ctx: ServiceContext) -> None:
    for i in range(120):
        submit(ctx, job_name=f"n{i}")
    page, token = job_queries.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert (len(page), token is not None) == (100, True)
    page, token = job_queries.list_jobs(
        ctx, job_queue="q", job_status="SUBMITTED", max_results=5000
    )
    assert (len(page), token) == (120, None)
    filtered = [{"name": "JOB_NAME", "values": ["n*"]}]
    page, token = job_queries.list_jobs(ctx, job_queue="q", filters=filtered, max_results=1000)
    assert (len(page), token is not None) == (100, True)


def test_list_jobs_job_name_filter(ctx: ServiceContext) -> None:
    one = submit(ctx, job_name="Test1")
    ten = submit(ctx, job_name="test10")
    set_status(ctx, ten.job_id, S.SUCCEEDED)
    exact, _ = job_queries.list_jobs(
        ctx,
        job_queue="q",
        job_status="RUNNING",
        filters=[{"name": "JOB_NAME", "values": ["test1"]}],
    )
    assert [j.job_id for j in exact] == [one.job_id]  # jobStatus ignored with a filter
    prefix, _ = job_queries.list_jobs(
        ctx, job_queue="q", filters=[{"name": "JOB_NAME", "values": ["TEST1*"]}]
    )
    assert [j.job_id for j in prefix] == [ten.job_id, one.job_id]


def test_list_jobs_job_definition_filter(ctx: ServiceContext) -> None:
    first = submit(ctx, job_definition="render")
    define(ctx, "render")
    second = submit(ctx, job_definition="render")
    other = submit(ctx, job_definition="legacy")

    def listed(value: str) -> list[str]:
        page, _ = job_queries.list_jobs(
            ctx, job_queue="q", filters=[{"name": "JOB_DEFINITION", "values": [value]}]
        )
        return [j.job_id for j in page]

    assert listed("render") == [second.job_id, first.job_id]
    assert listed("ren*") == [second.job_id, first.job_id]
    assert listed("l*") == [other.job_id]
    assert listed(IDENTITY.arn("job-definition", "render:1")) == [first.job_id]
    assert listed("rend") == []
    rejected(lambda: listed(IDENTITY.arn("job-definition", "render*")), "*")


def test_list_jobs_created_at_filters(ctx: ServiceContext, clock: FixedClock) -> None:
    early = submit(ctx)
    clock.now += 1_000
    late = submit(ctx)

    def listed(name: str, value: str) -> list[str]:
        page, _ = job_queries.list_jobs(
            ctx, job_queue="q", filters=[{"name": name, "values": [value]}]
        )
        return [j.job_id for j in page]

    assert listed("BEFORE_CREATED_AT", str(NOW + 500)) == [early.job_id]
    assert listed("AFTER_CREATED_AT", str(NOW + 500)) == [late.job_id]
    rejected(lambda: listed("AFTER_CREATED_AT", "yesterday"), "yesterday")


def test_list_jobs_share_identifier_filter_combines_with_status(ctx: ServiceContext) -> None:
    blue = submit(ctx, job_queue="fair", share_identifier="blue")
    blue_running = set_status(
        ctx, submit(ctx, job_queue="fair", share_identifier="blue").job_id, S.RUNNING
    )
    submit(ctx, job_queue="fair", share_identifier="red")
    share = [{"name": "SHARE_IDENTIFIER", "values": ["blue"]}]
    page, _ = job_queries.list_jobs(ctx, job_queue="fair", filters=share, job_status="RUNNING")
    assert [j.job_id for j in page] == [blue_running.job_id]
    page, _ = job_queries.list_jobs(ctx, job_queue="fair", filters=share)
    assert [j.job_id for j in page] == [blue_running.job_id, blue.job_id]


def test_list_jobs_filter_rules(ctx: ServiceContext) -> None:
    two = [{"name": "JOB_NAME", "values": ["a"]}, {"name": "SHARE_IDENTIFIER", "values": ["b"]}]
    rejected(lambda: job_queries.list_jobs(ctx, job_queue="q", filters=two), "one filter")
    rejected(
        lambda: job_queries.list_jobs(
            ctx, job_queue="q", filters=[{"name": "COLOUR", "values": ["x"]}]
        ),
        "COLOUR",
    )
    rejected(
        lambda: job_queries.list_jobs(
            ctx, job_queue="q", filters=[{"name": "JOB_NAME", "values": []}]
        ),
        "JOB_NAME",
    )
