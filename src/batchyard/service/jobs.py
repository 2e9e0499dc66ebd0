"""Job operations: SubmitJob (validation, overrides, substitution, arrays, dependencies,
consumable resources), DescribeJobs, ListJobs, ListJobsByConsumableResource, CancelJob/TerminateJob
and their bulk variants.

Validates and builds jobs, then hands them to the store; never schedules, runs or renders them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchyard.domain import lifecycle
from batchyard.domain.errors import BatchError, ClientException
from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    ConsumableResource,
    Dependency,
    Document,
    EvaluateOnExit,
    Job,
    JobDefinition,
    JobQueue,
    JobStatus,
    Resources,
    RetryStrategy,
)
from batchyard.domain.numerals import NumeralError, parse_integer
from batchyard.service import references
from batchyard.service.consumable_resources import consumable_requirements, find_consumable_resource
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import (
    check_command,
    check_environment,
    check_retry_strategy,
    check_tags,
    check_timeout,
    invalid,
    node_range,
)
from batchyard.service.pagination import decode_token, encode_token
from batchyard.service.resource_requirements import (
    EC2,
    Requested,
    check_eks_pod,
    check_platform,
    combined,
    container_requested,
    platform_of,
    requested,
    requirement_values,
)
from batchyard.store.base import ConsumableJobQuery, JobMutation, JobQuery

JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MIN_ARRAY_SIZE = 2
MAX_ARRAY_SIZE = 10_000
MAX_DEPENDENCIES = 20
MAX_SCHEDULING_PRIORITY = 9999
MAX_SHARE_IDENTIFIER = 255
MAX_ACTIVE_SHARES = 500  # share identifiers with unfinished jobs, per fair-share queue
MAX_REASON = 1024
MAX_DESCRIBE_JOBS = 100
MAX_BULK_JOBS = 50
LIST_JOBS_DEFAULT_RESULTS = 100
LIST_JOBS_MAX_RESULTS = 1000
LIST_JOBS_MAX_FILTERED_RESULTS = 100
LIST_JOBS_BY_CONSUMABLE_RESOURCE_MAX_RESULTS = 100
MAX_NUM_NODES = 1000


_REF_PREFIX = "Ref::"

LIST_JOBS_FILTERS = frozenset(
    {"JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER"}
)
LIST_JOBS_BY_CONSUMABLE_RESOURCE_FILTERS = frozenset({"JOB_STATUS", "JOB_NAME"})


# -- SubmitJob ----------------------------------------------------------------------------------


def submit_job(ctx: ServiceContext, **request: Any) -> Job:
    """Validate a submission, build the job (and its array children) and store them.

    Returns the stored job; for an array job, the parent. Takes build_submission's arguments.
    """
    return ctx.store.insert_jobs(build_submission(ctx, **request))[0]


def build_submission(
    ctx: ServiceContext,
    *,
    job_name: str,
    job_queue: str,
    job_definition: str,
    array_properties: Document | None = None,
    depends_on: Sequence[Document] | None = None,
    parameters: Mapping[str, str] | None = None,
    container_overrides: Document | None = None,
    retry_strategy: Document | None = None,
    timeout: Document | None = None,
    tags: Mapping[str, str] | None = None,
    propagate_tags: bool | None = None,
    scheduling_priority_override: int | None = None,
    share_identifier: str | None = None,
    node_overrides: Document | None = None,
    ecs_properties_override: Document | None = None,
    eks_properties_override: Document | None = None,
    consumable_resource_properties_override: Document | None = None,
) -> list[Job]:
    """Validate a submission and build the jobs to store: the job, or an array parent first
    and then its children. Stores nothing (the API groups the writes of several SubmitJobs)."""
    if not JOB_NAME_PATTERN.fullmatch(job_name):
        raise invalid("Job name should match valid pattern")
    queue = references.job_queue(ctx, job_queue)
    if not queue.accepts_jobs:
        raise invalid(
            f"Job queue {queue.name} is DISABLED: a DISABLED job queue does not accept new jobs."
        )
    definition = references.job_definition(ctx, job_definition)
    array_size = _array_size(array_properties)
    _check_fair_share(queue, share_identifier, scheduling_priority_override)
    if share_identifier is not None:
        _check_active_shares(ctx, queue, share_identifier)
    if tags is not None:
        check_tags(tags)

    # The override replaces the definition's list whole (BM:SubmitJobRequest).
    consumable = (
        consumable_resource_properties_override
        if consumable_resource_properties_override is not None
        else definition.consumable_resource_properties
    )
    required = consumable_requirements(
        ctx,
        consumable,
        "consumableResourcePropertiesOverride"
        if consumable_resource_properties_override is not None
        else "consumableResourceProperties",
    )
    _check_node_consumable_overrides(ctx, node_overrides)
    _check_node_property_overrides(node_overrides)

    values = {**definition.parameters, **(parameters or {})}
    container, resources, extra = _resolve_workload(
        definition,
        values,
        platform=platform_of(definition.platform_capabilities),
        container_overrides=container_overrides,
        node_overrides=node_overrides,
        ecs_properties_override=ecs_properties_override,
        eks_properties_override=eks_properties_override,
        consumable_resource_properties_override=consumable_resource_properties_override,
    )
    retry = check_retry_strategy(retry_strategy)
    if retry is None:
        retry = _stored_retry_strategy(definition.retry_strategy)
    timeout_seconds = _timeout_seconds(timeout, definition.timeout)
    propagate = propagate_tags if propagate_tags is not None else bool(definition.propagate_tags)
    job_tags: dict[str, str] = dict(tags or {})
    if propagate:
        job_tags = {**definition.tags, **job_tags}

    job_id = str(uuid.uuid4())
    dependencies = _dependencies(ctx, depends_on, array_size)
    now = ctx.clock.now_ms()
    scheduling_priority = (
        scheduling_priority_override
        if scheduling_priority_override is not None
        else definition.scheduling_priority
    )
    # Shared by the parent and every child: nothing downstream mutates these mappings, and
    # copying them per child would dominate the cost of a 10,000-child array.
    common: dict[str, Any] = {
        "job_name": job_name,
        "job_queue": queue.name,
        "job_definition_arn": definition.arn,
        "job_definition_name": definition.name,
        "created_at": now,
        "seq": 0,
        "depends_on": dependencies.entries,
        "parameters": dict(parameters or {}),
        "container": container,
        "resources": resources,
        "retry_strategy": retry,
        "timeout_seconds": timeout_seconds,
        "tags": job_tags,
        "propagate_tags": propagate,
        "platform_capabilities": definition.platform_capabilities,
        "scheduling_priority": scheduling_priority,
        "share_identifier": share_identifier,
        "consumable_resources": required,
        "extra": extra,
    }
    if array_size is None:
        return [
            Job(job_id=job_id, status=JobStatus.SUBMITTED, wait_for=dependencies.plain, **common)
        ]

    parent = Job(job_id=job_id, status=JobStatus.SUBMITTED, array_size=array_size, **common)
    jobs = [parent]
    jobs.extend(
        Job(
            job_id=f"{job_id}:{index}",
            status=JobStatus.PENDING,
            array_index=index,
            array_parent_id=job_id,
            wait_for=dependencies.for_child(job_id, index),
            **common,
        )
        for index in range(array_size)
    )
    return jobs


def _array_size(array_properties: Document | None) -> int | None:
    if array_properties is None or array_properties.get("size") is None:
        return None
    size = array_properties["size"]
    if not isinstance(size, int) or not MIN_ARRAY_SIZE <= size <= MAX_ARRAY_SIZE:
        raise invalid(
            f"Array job size must be between {MIN_ARRAY_SIZE} and {MAX_ARRAY_SIZE}, got {size}."
        )
    return size


def _check_active_shares(ctx: ServiceContext, queue: JobQueue, share_identifier: str) -> None:
    """A queue has at most MAX_ACTIVE_SHARES share identifiers with unfinished jobs; a
    submission that would add one more is refused (docs/aws-behaviour.md#fair-share)."""
    # Every active share has a usage row: a queue that has seen fewer cannot be at the limit.
    if ctx.store.seen_share_count(queue.name) < MAX_ACTIVE_SHARES:
        return
    active = ctx.store.active_share_identifiers(queue.name)
    if share_identifier not in active and len(active) >= MAX_ACTIVE_SHARES:
        raise ClientException(
            f"Job queue {queue.name} already has {MAX_ACTIVE_SHARES} active share identifiers; "
            f"a job with a new shareIdentifier ({share_identifier}) cannot be submitted until "
            "the jobs of another share finish."
        )


def _check_fair_share(
    queue: JobQueue, share_identifier: str | None, scheduling_priority_override: int | None
) -> None:
    if queue.scheduling_policy_arn is None:
        if share_identifier is not None or scheduling_priority_override is not None:
            raise ClientException(
                "Job with shareIdentifier or schedulingPriority can onlybe submitted to job "
                "queue with fair share scheduling policy."
            )
        return
    if share_identifier is None:
        raise invalid(
            f"Job queue {queue.name} has a fair share scheduling policy: "
            "a shareIdentifier is required."
        )
    if not 0 < len(share_identifier) <= MAX_SHARE_IDENTIFIER:
        raise invalid(f"shareIdentifier must be 1 to {MAX_SHARE_IDENTIFIER} characters long.")
    if scheduling_priority_override is not None and not (
        0 <= scheduling_priority_override <= MAX_SCHEDULING_PRIORITY
    ):
        raise invalid(
            f"schedulingPriorityOverride must be between 0 and {MAX_SCHEDULING_PRIORITY}, "
            f"got {scheduling_priority_override}."
        )


def _check_node_consumable_overrides(ctx: ServiceContext, node_overrides: Document | None) -> None:
    """Node-range overrides of consumable resources must name real resources too.

    Only the job-level list is taken at STARTING: a multi-node job runs as its main node here.
    """
    for position, override in enumerate((node_overrides or {}).get("nodePropertyOverrides") or ()):
        consumable_requirements(
            ctx,
            override.get("consumableResourcePropertiesOverride"),
            f"nodeOverrides.nodePropertyOverrides[{position}].consumableResourcePropertiesOverride",
        )


def _check_node_property_overrides(node_overrides: Document | None) -> None:
    """Node-range container overrides are kept with the job (a multi-node job runs as its main
    node here), so they are checked as they would be applied: strict node ranges and
    resource values, on EC2 (multi-node jobs do not run on Fargate)."""
    for position, override in enumerate((node_overrides or {}).get("nodePropertyOverrides") or ()):
        where = f"nodeOverrides.nodePropertyOverrides[{position}]"
        target_nodes = override.get("targetNodes")
        # The job's node count is settled later; any index a job may have is allowed here.
        node_range(str(target_nodes), MAX_NUM_NODES)
        container = override.get("containerOverrides")
        if container is not None:
            container_requested(container, EC2, f"{where}.containerOverrides")


# -- dependencies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Dependencies:
    entries: tuple[Dependency, ...]
    plain: tuple[str, ...]  # whole jobs every (child) job waits for
    n_to_n: tuple[str, ...]  # array parents whose child i the child i waits for
    sequential: bool

    def for_child(self, parent_id: str, index: int) -> tuple[str, ...]:
        if not self.n_to_n and not self.sequential:
            return self.plain
        waits = [*self.plain, *(f"{array}:{index}" for array in self.n_to_n)]
        if self.sequential and index > 0:
            waits.append(f"{parent_id}:{index - 1}")
        return tuple(waits)


def _job_id(reference: str) -> str:
    return references.name_from_reference(reference, "job")


def _dependencies(
    ctx: ServiceContext,
    depends_on: Sequence[Document] | None,
    array_size: int | None,
) -> _Dependencies:
    if not depends_on:
        return _Dependencies((), (), (), False)
    if len(depends_on) > MAX_DEPENDENCIES:
        raise invalid(f"Job cannot have more than {MAX_DEPENDENCIES} dependencies")
    entries = tuple(Dependency(job_id=d.get("jobId"), type=d.get("type")) for d in depends_on)
    named = [_job_id(e.job_id) for e in entries if e.job_id is not None]
    known = {job.job_id: job for job in ctx.store.get_jobs(dict.fromkeys(named))}
    plain: list[str] = []
    n_to_n: list[str] = []
    sequential = False
    for entry in entries:
        if entry.type not in (None, "N_TO_N", "SEQUENTIAL"):
            raise invalid(f"Dependency type {entry.type} is not one of N_TO_N, SEQUENTIAL.")
        if entry.type == "SEQUENTIAL":
            if entry.job_id is not None:
                raise invalid("A SEQUENTIAL dependency must not name a jobId.")
            if array_size is None:
                raise invalid("A SEQUENTIAL dependency is only allowed on an array job.")
            sequential = True
            continue
        if entry.job_id is None:
            raise invalid("Each dependency other than SEQUENTIAL must name a jobId.")
        dependency_id = _job_id(entry.job_id)
        target = known.get(dependency_id)
        if target is None:
            raise invalid(f"Dependent job {entry.job_id} does not exist.")
        if entry.type == "N_TO_N":
            if array_size is None:
                raise invalid("An N_TO_N dependency is only allowed on an array job.")
            if target.array_size != array_size:
                raise invalid(
                    f"N_TO_N dependency {entry.job_id} must be an array job of the same size "
                    f"({array_size}); it has size {target.array_size}."
                )
            n_to_n.append(dependency_id)
        else:
            plain.append(dependency_id)
    return _Dependencies(
        entries,
        tuple(dict.fromkeys(plain)),
        tuple(dict.fromkeys(n_to_n)),
        sequential,
    )


# -- retry strategy and timeout -----------------------------------------------------------------


def _stored_retry_strategy(document: Document | None) -> RetryStrategy:
    """A definition's retryStrategy, validated when it was registered."""
    if document is None:
        return RetryStrategy()
    return RetryStrategy(
        attempts=int(document.get("attempts") or 1),
        evaluate_on_exit=tuple(
            EvaluateOnExit(
                action=str(c["action"]).upper(),
                on_status_reason=c.get("onStatusReason"),
                on_reason=c.get("onReason"),
                on_exit_code=c.get("onExitCode"),
            )
            for c in document.get("evaluateOnExit") or ()
        ),
    )


def _timeout_seconds(submitted: Document | None, defined: Document | None) -> int | None:
    seconds = check_timeout(submitted)
    if seconds is not None:
        return seconds
    if defined is not None and defined.get("attemptDurationSeconds") is not None:
        return int(defined["attemptDurationSeconds"])
    return None


# -- container resolution -----------------------------------------------------------------------


def substitute(command: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Replace each whole-argument `Ref::name` with its value
    (docs/aws-behaviour.md#parameter-substitution)."""
    resolved: list[str] = []
    for argument in command:
        if argument.startswith(_REF_PREFIX):
            name = argument[len(_REF_PREFIX) :]
            if name not in values:
                raise ClientException(
                    f"Unable to substitute value. No parameter found for reference {name}"
                )
            resolved.append(values[name])
        else:
            resolved.append(argument)
    return resolved


def _merge_by(
    base: Iterable[Document], overrides: Iterable[Document], key: str
) -> list[dict[str, Any]]:
    """Merge two lists of documents keyed by `key`; overrides win, base order first."""
    merged: dict[Any, dict[str, Any]] = {item.get(key): dict(item) for item in base}
    for item in overrides:
        merged[item.get(key)] = dict(item)
    return list(merged.values())


def _override_container(
    base: Document, overrides: Document | None, values: Mapping[str, str], where: str
) -> dict[str, Any]:
    """A container document with overrides applied and its command substituted."""
    container = dict(base)
    overrides = overrides or {}
    check_environment(base.get("environment") or ())
    check_environment(overrides.get("environment") or ())
    if overrides.get("command") is not None:
        check_command(overrides["command"], where)
        container["command"] = list(overrides["command"])
    container["command"] = substitute(container.get("command") or (), values)
    if overrides.get("environment") is not None:
        container["environment"] = _merge_by(
            base.get("environment") or (), overrides["environment"], "name"
        )
    if overrides.get("resourceRequirements") is not None:
        # Parsed before the merge, which would hide a type listed twice.
        requirement_values(overrides["resourceRequirements"], where)
        container["resourceRequirements"] = _merge_by(
            base.get("resourceRequirements") or (), overrides["resourceRequirements"], "type"
        )
    # Legacy vcpus/memory overrides never beat a resourceRequirements entry (BM:ContainerOverrides).
    required = {r.get("type") for r in container.get("resourceRequirements") or ()}
    if overrides.get("vcpus") is not None and "VCPU" not in required:
        container["vcpus"] = overrides["vcpus"]
    if overrides.get("memory") is not None and "MEMORY" not in required:
        container["memory"] = overrides["memory"]
    return container


def _covers(target_nodes: str, index: int, num_nodes: int) -> bool:
    try:
        low, high = node_range(target_nodes, num_nodes)
    except ClientException:
        return False
    return low <= index <= high


def _resolve_workload(
    definition: JobDefinition,
    values: Mapping[str, str],
    *,
    platform: str,
    container_overrides: Document | None,
    node_overrides: Document | None,
    ecs_properties_override: Document | None,
    eks_properties_override: Document | None,
    consumable_resource_properties_override: Document | None,
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    """(container, resources, extra) of a job of this definition with these overrides."""
    extra: dict[str, Any] = {}
    consumable = (
        consumable_resource_properties_override
        if consumable_resource_properties_override is not None
        else definition.consumable_resource_properties
    )
    if consumable is not None:
        extra["consumableResourceProperties"] = consumable
    if definition.container_properties is not None:
        container = _override_container(
            definition.container_properties, container_overrides, values, "containerOverrides"
        )
        needs = container_requested(container, platform, "containerOverrides")
        return container, needs.resources(), extra
    if definition.node_properties is not None:
        return _resolve_multinode(definition.node_properties, node_overrides, values, extra)
    if definition.ecs_properties is not None:
        return _resolve_ecs(
            definition.ecs_properties, ecs_properties_override, values, extra, platform
        )
    if definition.eks_properties is not None:
        # EKS pods do not run here yet; kept whole so DescribeJobs shows what was asked.
        extra["eksProperties"] = definition.eks_properties
        if eks_properties_override is not None:
            check_eks_pod(
                eks_properties_override.get("podProperties"),
                "eksPropertiesOverride.podProperties",
            )
            extra["eksPropertiesOverride"] = eks_properties_override
    return {}, Resources(), extra


def _resolve_multinode(
    node_properties: Document,
    node_overrides: Document | None,
    values: Mapping[str, str],
    extra: dict[str, Any],
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    num_nodes = int(node_properties.get("numNodes") or 1)
    if node_overrides is not None:
        extra["nodeOverrides"] = node_overrides
        if node_overrides.get("numNodes") is not None:
            num_nodes = node_overrides["numNodes"]
    main_node = int(node_properties.get("mainNode") or 0)
    if not main_node < num_nodes <= MAX_NUM_NODES:
        raise invalid(
            f"nodeOverrides.numNodes must be greater than the main node index ({main_node}) "
            f"and at most {MAX_NUM_NODES}; got {num_nodes}."
        )
    ranges = []
    container: dict[str, Any] = {}
    for range_properties in node_properties.get("nodeRangeProperties") or ():
        resolved = dict(range_properties)
        if range_properties.get("container") is not None:
            resolved["container"] = _override_container(
                range_properties["container"], None, values, "nodeRangeProperties.container"
            )
            if not container and _covers(
                str(range_properties.get("targetNodes", "")), main_node, num_nodes
            ):
                container = resolved["container"]
        ranges.append(resolved)
    extra["nodeProperties"] = {
        **node_properties,
        "numNodes": num_nodes,
        "nodeRangeProperties": ranges,
    }
    resources = (
        container_requested(container, EC2, "nodeRangeProperties.container").resources()
        if container
        else Resources()
    )
    return container, resources, extra


def _resolve_ecs(
    ecs_properties: Document,
    override: Document | None,
    values: Mapping[str, str],
    extra: dict[str, Any],
    platform: str,
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    if override is not None:
        extra["ecsPropertiesOverride"] = override
    task_overrides = (override or {}).get("taskProperties") or ()
    tasks = []
    vcpus, memory, gpus = 0.0, 0, 0
    stated: list[Requested] = []
    for position, task in enumerate(ecs_properties.get("taskProperties") or ()):
        by_name: dict[Any, Document] = {}
        if position < len(task_overrides):
            by_name = {c.get("name"): c for c in task_overrides[position].get("containers") or ()}
        containers = []
        for container in task.get("containers") or ():
            resolved = _override_container(
                container,
                by_name.get(container.get("name")),
                values,
                "ecsPropertiesOverride.taskProperties.containers",
            )
            container_needs = requested(resolved, f"container {container.get('name')}")
            stated.append(container_needs)
            needs = container_needs.resources()
            vcpus, memory, gpus = vcpus + needs.vcpus, memory + needs.memory_mib, gpus + needs.gpus
            containers.append(resolved)
        tasks.append({**task, "containers": containers})
    check_platform(combined(stated), platform, "ecsProperties.taskProperties")
    extra["ecsProperties"] = {**ecs_properties, "taskProperties": tasks}
    resources = Resources(vcpus=vcpus, memory_mib=memory, gpus=gpus) if tasks else Resources()
    # A multi-container job's top-level container is empty (BM:JobDetail.container).
    return {}, resources, extra


# -- DescribeJobs, ListJobs ---------------------------------------------------------------------


def describe_jobs(ctx: ServiceContext, *, jobs: Sequence[str]) -> list[Job]:
    """Known jobs in the order asked; unknown ids are left out, as AWS does."""
    if len(jobs) > MAX_DESCRIBE_JOBS:
        raise invalid(f"Maximum number of jobs supported is  {MAX_DESCRIBE_JOBS}")
    return ctx.store.get_jobs([_job_id(reference) for reference in jobs])


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
        array_job_id=_job_id(array_job_id) if array_job_id is not None else None,
        multi_node_job_id=_job_id(multi_node_job_id) if multi_node_job_id is not None else None,
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


# -- CancelJob, TerminateJob and bulk variants --------------------------------------------------


@dataclass(frozen=True, slots=True)
class BulkError:
    job_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    successful: tuple[str, ...]
    errors: tuple[BulkError, ...]


def _check_reason(reason: str) -> None:
    if len(reason) > MAX_REASON:
        raise invalid(f"reason must be at most {MAX_REASON} characters, got {len(reason)}.")


def _request(ctx: ServiceContext, job_id: str, mutation: JobMutation) -> Job | None:
    """Record a cancel/terminate request on a job and, for an array parent, its children."""
    job = ctx.store.mutate_job(job_id, mutation)
    if job is not None and job.is_array_parent:
        ctx.store.mutate_array_children(job.job_id, mutation)
    return job


def cancel_job(ctx: ServiceContext, *, job_id: str, reason: str) -> Job:
    """Ask for a job to be cancelled; placed or ended jobs are left alone (BM:CancelJob)."""
    _check_reason(reason)
    job = _request(ctx, _job_id(job_id), lambda j: lifecycle.request_cancel(j, reason))
    if job is None:
        raise ClientException(f"Job {job_id} not found.")
    return job


def terminate_job(ctx: ServiceContext, *, job_id: str, reason: str) -> Job:
    """Ask for a job to be terminated: cancelled if not placed yet, stopped if it runs."""
    _check_reason(reason)
    job = _request(ctx, _job_id(job_id), lambda j: lifecycle.request_terminate(j, reason))
    if job is None:
        raise ClientException(f"Job {job_id} not found.")
    return job


def _bulk(ctx: ServiceContext, job_ids: Sequence[str], mutation: JobMutation) -> BulkResult:
    if len(job_ids) > MAX_BULK_JOBS:
        raise invalid(f"At most {MAX_BULK_JOBS} jobs can be given, got {len(job_ids)}.")
    successful: list[str] = []
    errors: list[BulkError] = []
    for job_id in job_ids:
        try:
            # Unknown ids count as successful (BM:CancelJobs).
            _request(ctx, _job_id(job_id), mutation)
        except BatchError as error:
            errors.append(BulkError(job_id, error.code, error.message))
        else:
            successful.append(job_id)
    return BulkResult(tuple(successful), tuple(errors))


def cancel_jobs(ctx: ServiceContext, *, job_ids: Sequence[str], reason: str) -> BulkResult:
    _check_reason(reason)
    return _bulk(ctx, job_ids, lambda j: lifecycle.request_cancel(j, reason))


def terminate_jobs(ctx: ServiceContext, *, job_ids: Sequence[str], reason: str) -> BulkResult:
    _check_reason(reason)
    return _bulk(ctx, job_ids, lambda j: lifecycle.request_terminate(j, reason))
