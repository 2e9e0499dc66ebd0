"""SubmitJob: validating a submission (queue, definition, fair share, arrays, dependencies,
consumable resources, retry strategy, timeout, tags) and building the job, or an array
parent and its children, for the store.

What the job runs (overrides, `Ref::` substitution, resources) is worked out by
service/job_resolution.py. Never schedules, runs or renders jobs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import (
    ConsumableRequirement,
    Dependency,
    Document,
    EvaluateOnExit,
    Job,
    JobDefinition,
    JobQueue,
    JobStatus,
    RetryStrategy,
)
from batchyard.service import references
from batchyard.service.consumable_resources import consumable_requirements
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import (
    MAX_NUM_NODES,
    check_retry_strategy,
    check_tags,
    check_timeout,
    invalid,
    node_range,
)
from batchyard.service.job_resolution import resolve_workload
from batchyard.service.resource_requirements import EC2, container_requested, platform_of

JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MIN_ARRAY_SIZE = 2
MAX_ARRAY_SIZE = 10_000
MAX_DEPENDENCIES = 20
MAX_SCHEDULING_PRIORITY = 9999
MAX_SHARE_IDENTIFIER = 255
MAX_ACTIVE_SHARES = 500  # share identifiers with unfinished jobs, per fair-share queue


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
    and then its children. Stores nothing (the API groups the writes of several SubmitJobs).

    Long but flat: one step per member of SubmitJobRequest, in the order the checks run
    (which decides the error a request with several mistakes gets), then the fields every
    job of the submission shares."""
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

    required = _required_consumables(ctx, definition, consumable_resource_properties_override)
    _check_node_consumable_overrides(ctx, node_overrides)
    _check_node_property_overrides(node_overrides)

    values = {**definition.parameters, **(parameters or {})}
    container, resources, extra = resolve_workload(
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
    return _expand(job_id, array_size, dependencies, common)


def _required_consumables(
    ctx: ServiceContext, definition: JobDefinition, override: Document | None
) -> tuple[ConsumableRequirement, ...]:
    """The consumable resources the job requires: the override's list, else the definition's."""
    # The override replaces the definition's list whole (BM:SubmitJobRequest).
    return consumable_requirements(
        ctx,
        override if override is not None else definition.consumable_resource_properties,
        "consumableResourcePropertiesOverride"
        if override is not None
        else "consumableResourceProperties",
    )


def _expand(
    job_id: str, array_size: int | None, dependencies: _Dependencies, common: dict[str, Any]
) -> list[Job]:
    """The job; or an array parent first, then its children, each waiting for what its index
    depends on. All of them share `common`'s values."""
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
    named = [references.job_id(e.job_id) for e in entries if e.job_id is not None]
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
        dependency_id = references.job_id(entry.job_id)
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
