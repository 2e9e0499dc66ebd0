"""DescribeJobs, ListJobs and ListJobsByConsumableResource: reading jobs back, with their
filters and paging tokens (docs/aws-behaviour.md#describejobs-and-listjobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ALL_JOB_STATUSES, ConsumableResource, Document, Job, JobStatus
from batchyard.domain.numerals import NumeralError, parse_integer
from batchyard.service import references
from batchyard.service.consumable_resources import find_consumable_resource
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import invalid
from batchyard.service.pagination import decode_token, encode_token
from batchyard.store.base import ConsumableJobQuery, JobQuery

MAX_DESCRIBE_JOBS = 100
LIST_JOBS_DEFAULT_RESULTS = 100
LIST_JOBS_MAX_RESULTS = 1000
LIST_JOBS_MAX_FILTERED_RESULTS = 100
LIST_JOBS_BY_CONSUMABLE_RESOURCE_MAX_RESULTS = 100
LIST_JOBS_FILTERS = frozenset(
    {"JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER"}
)

LIST_JOBS_BY_CONSUMABLE_RESOURCE_FILTERS = frozenset({"JOB_STATUS", "JOB_NAME"})


def describe_jobs(ctx: ServiceContext, *, jobs: Sequence[str]) -> list[Job]:
    """Known jobs in the order asked; unknown ids are left out, as AWS does."""
    if len(jobs) > MAX_DESCRIBE_JOBS:
        raise invalid(f"Maximum number of jobs supported is  {MAX_DESCRIBE_JOBS}")
    return ctx.store.get_jobs([references.job_id(reference) for reference in jobs])


def list_jobs(
    ctx: ServiceContext,
    *,
    job_queue: str | None = None,
    array_job_id: str | None = None,
    multi_node_job_id: str | None = None,
    job_status: str | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
    filters: Sequence[Document] | None = None,
) -> tuple[list[Job], str | None]:
    """One page of jobs, newest first (array children by index), and the next page's token."""
    given = [x for x in (job_queue, array_job_id, multi_node_job_id) if x is not None]
    if len(given) != 1:
        raise invalid("Exactly one of jobQueue, arrayJobId or multiNodeJobId must be specified.")
    status = _job_status(job_status) if job_status is not None else None
    criteria: dict[str, Any] = {}
    if filters:
        if len(filters) > 1:
            raise invalid("Only one filter can be used at a time.")
        criteria = _filter_criteria(ctx, filters[0])
        # A filter lists every status; only SHARE_IDENTIFIER combines with jobStatus.
        if "share_identifier" not in criteria:
            status = None
        limit_cap = LIST_JOBS_MAX_FILTERED_RESULTS
    else:
        status = status or JobStatus.RUNNING
        limit_cap = LIST_JOBS_MAX_RESULTS
    if max_results is not None and max_results < 1:
        raise invalid(f"maxResults must be at least 1, got {max_results}.")
    limit = min(max_results or LIST_JOBS_DEFAULT_RESULTS, limit_cap)
    after = decode_token(next_token)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise ClientException(f"Invalid nextToken: {next_token!r}")

    query = JobQuery(
        job_queue=references.job_queue(ctx, job_queue).name if job_queue is not None else None,
        array_job_id=references.job_id(array_job_id) if array_job_id is not None else None,
        multi_node_job_id=references.job_id(multi_node_job_id)
        if multi_node_job_id is not None
        else None,
        status=status,
        limit=limit + 1,
        after=after,
        **criteria,
    )
    found = ctx.store.list_jobs(query)
    page = found[:limit]
    if len(found) <= limit or not page:
        return page, None
    last = page[-1]
    position = last.array_index if query.array_job_id is not None else last.seq
    return page, encode_token(position)


@dataclass(frozen=True, slots=True)
class ConsumableResourceJobs:
    """A page of ListJobsByConsumableResource: the resource and the jobs that require it."""

    resource: ConsumableResource
    jobs: tuple[Job, ...]
    next_token: str | None


def list_jobs_by_consumable_resource(
    ctx: ServiceContext,
    *,
    consumable_resource: str,
    filters: Sequence[Document] | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
) -> ConsumableResourceJobs:
    """Jobs that require a consumable resource, newest first (BM:ListJobsByConsumableResource)."""
    resource = find_consumable_resource(ctx, consumable_resource)
    criteria: dict[str, Any] = {}
    seen: set[str] = set()
    for document in filters or ():
        name = document.get("name")
        values = document.get("values") or []
        if name not in LIST_JOBS_BY_CONSUMABLE_RESOURCE_FILTERS:
            raise invalid(
                f"Filter name {name} is not one of "
                f"{', '.join(sorted(LIST_JOBS_BY_CONSUMABLE_RESOURCE_FILTERS))}."
            )
        if len(values) != 1:
            raise invalid(f"Filter {name} takes exactly one value.")
        if name in seen:
            raise invalid(f"Filter {name} can be given only once.")
        seen.add(name)
        value = str(values[0])
        if name == "JOB_STATUS":
            criteria["status"] = _job_status(value)
        elif value.endswith("*"):
            criteria["job_name_prefix"] = value[:-1]
        else:
            criteria["job_name"] = value
    if (
        max_results is not None
        and not 1 <= max_results <= LIST_JOBS_BY_CONSUMABLE_RESOURCE_MAX_RESULTS
    ):
        raise invalid(
            f"maxResults must be between 1 and {LIST_JOBS_BY_CONSUMABLE_RESOURCE_MAX_RESULTS}, "
            f"got {max_results}."
        )
    limit = max_results or LIST_JOBS_BY_CONSUMABLE_RESOURCE_MAX_RESULTS
    after = decode_token(next_token)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise ClientException(f"Invalid nextToken: {next_token!r}")
    found = ctx.store.list_jobs_by_consumable_resource(
        ConsumableJobQuery(resource=resource.name, limit=limit + 1, after=after, **criteria)
    )
    page = tuple(found[:limit])
    token = encode_token(page[-1].seq) if len(found) > limit and page else None
    return ConsumableResourceJobs(resource, page, token)


def _job_status(value: str) -> JobStatus:
    if value not in {s.value for s in ALL_JOB_STATUSES}:
        raise invalid(f"jobStatus {value} is not a valid job status.")
    return JobStatus(value)


def _filter_criteria(ctx: ServiceContext, document: Document) -> dict[str, Any]:
    """JobQuery fields for one ListJobs filter (BM:ListJobsRequest.filters)."""
    name = document.get("name")
    values = document.get("values") or []
    if name not in LIST_JOBS_FILTERS:
        raise invalid(f"Filter name {name} is not one of {', '.join(sorted(LIST_JOBS_FILTERS))}.")
    if len(values) != 1:
        raise invalid(f"Filter {name} takes exactly one value.")
    value = str(values[0])
    if name == "JOB_NAME":
        if value.endswith("*"):
            return {"job_name_prefix": value[:-1]}
        return {"job_name": value}
    if name == "JOB_DEFINITION":
        if value.startswith("arn:"):
            if "*" in value:
                raise invalid("An asterisk (*) is not supported in a job definition ARN filter.")
            definition_name, revision = references.split_job_definition(value)
            if revision is None:
                return {"job_definition_name": definition_name}
            arn = ctx.identity.arn("job-definition", f"{definition_name}:{revision}")
            return {"job_definition_arn": arn}
        if value.endswith("*"):
            return {"job_definition_name_prefix": value[:-1]}
        return {"job_definition_name": value}
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        try:
            moment = parse_integer(value)
        except NumeralError as exc:
            raise invalid(f"Filter {name} value {value} is not epoch milliseconds.") from exc
        key = "created_before" if name == "BEFORE_CREATED_AT" else "created_after"
        return {key: moment}
    return {"share_identifier": value}
