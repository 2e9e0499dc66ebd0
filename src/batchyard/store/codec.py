"""Jobs and resources to JSON-able documents and back, for stores that keep documents.

Conversion only: no I/O and no bookkeeping. A job's document leaves out the fields a store keeps
in its own columns (identity, status, ordering, versions); the store passes those back in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any

import orjson

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    ConsumableRequirement,
    ConsumableResource,
    Dependency,
    EvaluateOnExit,
    Job,
    JobDefinition,
    JobQueue,
    JobStateTimeLimitAction,
    JobStatus,
    Resources,
    ResourceState,
    ResourceStatus,
    RetryStrategy,
    SchedulingPolicy,
    StopCause,
)

_DEFAULT_RESOURCES = Resources()
_DEFAULT_RETRY = RetryStrategy()
_STATUS_BY_NAME = {status.value: status for status in JobStatus}


def dumps(document: Mapping[str, Any]) -> str:
    return orjson.dumps(document).decode()


def loads(text: str) -> Any:
    return orjson.loads(text)


def job_status(name: str) -> JobStatus:
    return _STATUS_BY_NAME[name]


# -- jobs -----------------------------------------------------------------------------------


def _attempt_document(attempt: Attempt) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "task_id": attempt.task_id,
        "compute_environment": attempt.compute_environment,
        "placed_at": attempt.placed_at,
    }
    for name in (
        "started_at",
        "stopped_at",
        "exit_code",
        "reason",
        "status_reason",
        "log_stream_name",
        "runtime_handle",
    ):
        value = getattr(attempt, name)
        if value is not None:
            doc[name] = value
    return doc


def _attempt_from_document(doc: Mapping[str, Any]) -> Attempt:
    return Attempt(
        task_id=doc["task_id"],
        compute_environment=doc["compute_environment"],
        placed_at=doc["placed_at"],
        started_at=doc.get("started_at"),
        stopped_at=doc.get("stopped_at"),
        exit_code=doc.get("exit_code"),
        reason=doc.get("reason"),
        status_reason=doc.get("status_reason"),
        log_stream_name=doc.get("log_stream_name"),
        runtime_handle=doc.get("runtime_handle"),
    )


def job_document(job: Job) -> dict[str, Any]:
    """The fields of a job that a store does not keep in columns; defaults are left out."""
    doc: dict[str, Any] = {}
    if job.status_reason is not None:
        doc["status_reason"] = job.status_reason
    if job.started_at is not None:
        doc["started_at"] = job.started_at
    if job.depends_on:
        doc["depends_on"] = [[d.job_id, d.type] for d in job.depends_on]
    if job.wait_for:
        doc["wait_for"] = list(job.wait_for)
    if job.parameters:
        doc["parameters"] = dict(job.parameters)
    if job.container:
        doc["container"] = dict(job.container)
    if job.resources != _DEFAULT_RESOURCES:
        r = job.resources
        doc["resources"] = [r.vcpus, r.memory_mib, r.gpus]
    if job.retry_strategy != _DEFAULT_RETRY:
        rs = job.retry_strategy
        on_exit = [
            [e.action, e.on_status_reason, e.on_reason, e.on_exit_code] for e in rs.evaluate_on_exit
        ]
        doc["retry_strategy"] = [rs.attempts, on_exit]
    if job.timeout_seconds is not None:
        doc["timeout_seconds"] = job.timeout_seconds
    if job.tags:
        doc["tags"] = dict(job.tags)
    if job.propagate_tags:
        doc["propagate_tags"] = True
    if job.platform_capabilities:
        doc["platform_capabilities"] = list(job.platform_capabilities)
    if job.scheduling_priority is not None:
        doc["scheduling_priority"] = job.scheduling_priority
    if job.consumable_resources:
        doc["consumable_resources"] = [[r.resource, r.quantity] for r in job.consumable_resources]
    if job.extra:
        doc["extra"] = dict(job.extra)
    if job.attempts:
        doc["attempts"] = [_attempt_document(a) for a in job.attempts]
    if job.compute_environment is not None:
        doc["compute_environment"] = job.compute_environment
    if job.cancel_reason is not None:
        doc["cancel_reason"] = job.cancel_reason
    if job.terminate_reason is not None:
        doc["terminate_reason"] = job.terminate_reason
    if job.stop_cause is not None:
        doc["stop_cause"] = job.stop_cause.value
    if job.is_cancelled:
        doc["is_cancelled"] = True
    if job.is_terminated:
        doc["is_terminated"] = True
    if job.blocked_since is not None:
        doc["blocked_since"] = job.blocked_since
    return doc


def job_from_document(
    doc: Mapping[str, Any],
    *,
    job_id: str,
    job_name: str,
    job_queue: str,
    job_definition_arn: str,
    job_definition_name: str,
    status: JobStatus,
    created_at: int,
    seq: int,
    stopped_at: int | None,
    array_size: int | None,
    array_index: int | None,
    array_parent_id: str | None,
    share_identifier: str | None,
    run_order: int,
    version: int,
    array_status_summary: Mapping[str, int] | None,
) -> Job:
    """Build a Job from its stored document and its column values.

    Long because it is flat: one line per Job field, written out in one call so that a decode
    (every job a store reads) costs one constructor call and no helper frames.
    """
    # Hot path (every job a store reads): absent keys cost one dict lookup each.
    get = doc.get
    depends_on = get("depends_on")
    resources = get("resources")
    retry = get("retry_strategy")
    attempts = get("attempts")
    stop_cause = get("stop_cause")
    consumable = get("consumable_resources")
    return Job(
        job_id=job_id,
        job_name=job_name,
        job_queue=job_queue,
        job_definition_arn=job_definition_arn,
        job_definition_name=job_definition_name,
        status=status,
        created_at=created_at,
        seq=seq,
        status_reason=get("status_reason"),
        started_at=get("started_at"),
        stopped_at=stopped_at,
        array_size=array_size,
        array_index=array_index,
        array_parent_id=array_parent_id,
        depends_on=() if depends_on is None else tuple(Dependency(d[0], d[1]) for d in depends_on),
        wait_for=tuple(get("wait_for", ())),
        parameters=get("parameters", {}),
        container=get("container", {}),
        resources=(
            _DEFAULT_RESOURCES
            if resources is None
            else Resources(float(resources[0]), resources[1], resources[2])
        ),
        retry_strategy=(
            _DEFAULT_RETRY
            if retry is None
            else RetryStrategy(
                retry[0], tuple(EvaluateOnExit(e[0], e[1], e[2], e[3]) for e in retry[1])
            )
        ),
        timeout_seconds=get("timeout_seconds"),
        tags=get("tags", {}),
        propagate_tags=get("propagate_tags", False),
        platform_capabilities=tuple(get("platform_capabilities", ())),
        scheduling_priority=get("scheduling_priority"),
        share_identifier=share_identifier,
        consumable_resources=(
            ()
            if consumable is None
            else tuple(ConsumableRequirement(r[0], r[1]) for r in consumable)
        ),
        extra=get("extra", {}),
        attempts=() if attempts is None else tuple(_attempt_from_document(a) for a in attempts),
        compute_environment=get("compute_environment"),
        run_order=run_order,
        cancel_reason=get("cancel_reason"),
        terminate_reason=get("terminate_reason"),
        stop_cause=None if stop_cause is None else StopCause(stop_cause),
        is_cancelled=get("is_cancelled", False),
        is_terminated=get("is_terminated", False),
        blocked_since=get("blocked_since"),
        array_status_summary=array_status_summary,
        version=version,
    )


class UnreadableRecord(ValueError):
    """A stored document that does not make a valid object (a value of the wrong type, out of
    range, or missing): stores isolate the record instead of handing it on."""


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


_time_fields = attrgetter(
    "timeout_seconds", "started_at", "stopped_at", "blocked_since", "scheduling_priority"
)
_order_fields = attrgetter("created_at", "seq", "run_order", "version")
_attempt_times = attrgetter("started_at", "stopped_at", "exit_code")


def check_job(job: Job) -> Job:
    """`job` if every field the planner and the lifecycle compute with has its type and range;
    raises UnreadableRecord naming the first that does not. JSON has no NaN or infinity: a
    vCPU count stored from one reads back as null, and is refused here. (Every job a store
    decodes passes here: a check is a type lookup, not a call.)"""
    resources = job.resources
    if resources is not _DEFAULT_RESOURCES:
        vcpus, memory, gpus = resources.vcpus, resources.memory_mib, resources.gpus
        if not (
            type(vcpus) is float
            and 0 <= vcpus < math.inf
            and type(memory) is int
            and memory >= 0
            and type(gpus) is int
            and gpus >= 0
        ):
            raise UnreadableRecord(f"resources must be finite non-negative numbers: {resources}")
    for value in _order_fields(job):
        if type(value) is not int:
            raise UnreadableRecord(
                f"createdAt, seq, runOrder and version must be integers, not {value!r}"
            )
    for value in _time_fields(job):
        if value is not None and type(value) is not int:
            raise UnreadableRecord(
                "timeoutSeconds, startedAt, stoppedAt, blockedSince and schedulingPriority "
                f"must be integers, not {value!r}"
            )
    if job.retry_strategy is not _DEFAULT_RETRY and type(job.retry_strategy.attempts) is not int:
        raise UnreadableRecord(f"retry attempts must be an integer: {job.retry_strategy}")
    for attempt in job.attempts:
        if type(attempt.task_id) is not str or type(attempt.placed_at) is not int:
            raise UnreadableRecord(f"attempt is not valid: {attempt}")
        for value in _attempt_times(attempt):
            if value is not None and type(value) is not int:
                raise UnreadableRecord(f"attempt is not valid: {attempt}")
    for requirement in job.consumable_resources:
        if type(requirement.resource) is not str or not _is_count(requirement.quantity):
            raise UnreadableRecord(f"consumable resource requirement is not valid: {requirement}")
    for job_id in job.wait_for:
        if type(job_id) is not str:
            raise UnreadableRecord(f"dependencies must be job ids: {job.wait_for}")
    for document in (job.container, job.parameters):
        if type(document) is not dict and not isinstance(document, Mapping):
            raise UnreadableRecord("container and parameters must be objects")
    return job


# The fields job_document reads. Mappings among them are compared by identity: jobs built
# together (an array's children, a plan's updates) share them, and comparing by content would
# cost as much as encoding.
_DOCUMENT_FIELDS = (
    "status_reason",
    "started_at",
    "depends_on",
    "wait_for",
    "resources",
    "retry_strategy",
    "timeout_seconds",
    "propagate_tags",
    "platform_capabilities",
    "scheduling_priority",
    "consumable_resources",
    "attempts",
    "compute_environment",
    "cancel_reason",
    "terminate_reason",
    "stop_cause",
    "is_cancelled",
    "is_terminated",
    "blocked_since",
)
_document_values = attrgetter(*_DOCUMENT_FIELDS)
_document_mappings = attrgetter("parameters", "container", "tags", "extra")


def job_document_texts(jobs: Sequence[Job]) -> list[str]:
    """dumps(job_document(job)) of each job, encoding once per group of jobs whose document
    fields are equal (mappings: the same objects), as an array's children usually are."""
    texts: list[str] = []
    memo: dict[tuple[Any, ...], str] = {}
    for job in jobs:
        key = (*_document_values(job), *map(id, _document_mappings(job)))
        try:
            text = memo.get(key)
        except TypeError:  # a field built with a list instead of a tuple
            texts.append(dumps(job_document(job)))
            continue
        if text is None:
            text = memo[key] = dumps(job_document(job))
        texts.append(text)
    return texts


replace_job = lifecycle.replace_job
"""dataclasses.replace for Job, several times faster (stores copy jobs in bulk)."""


# -- resources ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Tuples and mappings of a resource field as JSON-able lists and dicts (shallow)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _flat_document(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _known(cls: type, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys the dataclass still has, so a removed field does not break old rows."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


def compute_environment_document(ce: ComputeEnvironment) -> dict[str, Any]:
    return _flat_document(ce)


def compute_environment_from_document(doc: Mapping[str, Any]) -> ComputeEnvironment:
    values = _known(ComputeEnvironment, doc)
    values["state"] = ResourceState(values["state"])
    values["status"] = ResourceStatus(values["status"])
    ce = ComputeEnvironment(**values)
    cap = ce.max_vcpus
    if type(ce.name) is not str or not (cap is None or 0 <= cap < math.inf):
        raise UnreadableRecord(f"compute environment {ce.name!r}: maxvCpus {cap} is not valid")
    return ce


def job_queue_document(queue: JobQueue) -> dict[str, Any]:
    doc = _flat_document(queue)
    doc["compute_environment_order"] = [
        [o.order, o.compute_environment] for o in queue.compute_environment_order
    ]
    doc["job_state_time_limit_actions"] = [
        [a.reason, a.state, a.max_time_seconds, a.action]
        for a in queue.job_state_time_limit_actions
    ]
    doc["service_environment_order"] = [dict(d) for d in queue.service_environment_order]
    return doc


def job_queue_from_document(doc: Mapping[str, Any]) -> JobQueue:
    values = _known(JobQueue, doc)
    values["state"] = ResourceState(values["state"])
    values["status"] = ResourceStatus(values["status"])
    values["compute_environment_order"] = tuple(
        ComputeEnvironmentOrder(o[0], o[1]) for o in values.get("compute_environment_order", ())
    )
    values["job_state_time_limit_actions"] = tuple(
        JobStateTimeLimitAction(a[0], a[1], a[2], a[3])
        for a in values.get("job_state_time_limit_actions", ())
    )
    values["service_environment_order"] = tuple(values.get("service_environment_order", ()))
    queue = JobQueue(**values)
    if (
        type(queue.name) is not str
        or type(queue.priority) is not int
        or not all(
            type(o.order) is int and type(o.compute_environment) is str
            for o in queue.compute_environment_order
        )
        or not all(type(a.max_time_seconds) is int for a in queue.job_state_time_limit_actions)
    ):
        raise UnreadableRecord(f"job queue {queue.name!r}: a priority or an order is not valid")
    return queue


def job_definition_document(definition: JobDefinition) -> dict[str, Any]:
    return _flat_document(definition)


def job_definition_from_document(doc: Mapping[str, Any]) -> JobDefinition:
    values = _known(JobDefinition, doc)
    values["platform_capabilities"] = tuple(values.get("platform_capabilities", ()))
    return JobDefinition(**values)


def scheduling_policy_document(policy: SchedulingPolicy) -> dict[str, Any]:
    return _flat_document(policy)


def scheduling_policy_from_document(doc: Mapping[str, Any]) -> SchedulingPolicy:
    policy = SchedulingPolicy(**_known(SchedulingPolicy, doc))
    if policy.fairshare_policy is not None and not isinstance(policy.fairshare_policy, Mapping):
        raise UnreadableRecord(f"scheduling policy {policy.name!r}: fairsharePolicy not valid")
    return policy


def consumable_resource_document(resource: ConsumableResource) -> dict[str, Any]:
    return _flat_document(resource)


def consumable_resource_from_document(doc: Mapping[str, Any]) -> ConsumableResource:
    resource = ConsumableResource(**_known(ConsumableResource, doc))
    if not (_is_count(resource.total_quantity) and _is_count(resource.in_use_quantity)):
        raise UnreadableRecord(f"consumable resource {resource.name!r}: quantities not valid")
    return resource
