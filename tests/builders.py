"""Builders of domain objects for every test tier: jobs, attempts, compute environments, job
queues, scheduling policies, consumable resources, job definitions, planner snapshots and clocks.

Each builder fills what a test does not care about with a fixed default and takes any field of
the object as a keyword, so a test names only what it is about. Builders build values; they do
not write to a store or a server, and they hold no expectations (a test works those out itself).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    ConsumableRequirement,
    ConsumableResource,
    Dependency,
    Document,
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
    ShareUsage,
    StopCause,
)
from batchyard.runtimes.base import AttemptSpec
from batchyard.scheduling.snapshot import Snapshot

S = JobStatus
ARN = "arn:aws:batch:us-east-1:000000000000"
# The planner tests' "now"; their attempts are placed at 10_000 and start at 11_000.
NOW = 1_000_000


def arn(kind: str, name: str) -> str:
    """The ARN a resource named `name` of `kind` gets in the default account and region."""
    return f"{ARN}:{kind}/{name}"


# -- clocks ------------------------------------------------------------------------------------


class FixedClock:
    """A clock that says `now` until a test moves it."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now


class WallClock:
    """The real time, for runtimes that run real processes and containers."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


# -- compute environments, job queues, policies, consumable resources, definitions ------------


def a_compute_environment(
    name: str = "ce-a",
    *,
    max_vcpus: int | None = 4,
    state: ResourceState = ResourceState.ENABLED,
    status: ResourceStatus = ResourceStatus.VALID,
    **fields: Any,
) -> ComputeEnvironment:
    """A VALID, ENABLED managed environment of the process runtime with `max_vcpus` vCPUs
    (None: no computeResources, so no limit)."""
    values: dict[str, Any] = {
        "arn": arn("compute-environment", name),
        "type": "MANAGED",
        "state": state,
        "status": status,
        "status_reason": "",
        "runtime": "process",
        "compute_resources": None if max_vcpus is None else {"maxvCpus": max_vcpus},
    }
    values.update(fields)
    return ComputeEnvironment(name=name, **values)


def a_time_limit(reason: str, max_time_seconds: int = 600) -> JobStateTimeLimitAction:
    """A jobStateTimeLimitAction cancelling RUNNABLE jobs blocked for `reason`."""
    return JobStateTimeLimitAction(
        reason=reason, state="RUNNABLE", max_time_seconds=max_time_seconds, action="CANCEL"
    )


def a_queue(
    name: str = "high",
    *,
    priority: int = 10,
    compute_environments: Iterable[str] = ("ce-a",),
    state: ResourceState = ResourceState.ENABLED,
    time_limits: Iterable[JobStateTimeLimitAction] = (),
    **fields: Any,
) -> JobQueue:
    """A VALID job queue over `compute_environments`, ordered as given."""
    values: dict[str, Any] = {
        "arn": arn("job-queue", name),
        "state": state,
        "status": ResourceStatus.VALID,
        "status_reason": "",
        "priority": priority,
        "compute_environment_order": tuple(
            ComputeEnvironmentOrder(order=i + 1, compute_environment=ce)
            for i, ce in enumerate(compute_environments)
        ),
        "job_state_time_limit_actions": tuple(time_limits),
    }
    values.update(fields)
    return JobQueue(name=name, **values)


def a_scheduling_policy(
    name: str = "fair", fairshare_policy: Document | None = None, **fields: Any
) -> SchedulingPolicy:
    """A fair-share policy; its fairsharePolicy document is `fairshare_policy` ({} if none)."""
    return SchedulingPolicy(
        name=name,
        arn=arn("scheduling-policy", name),
        fairshare_policy={} if fairshare_policy is None else fairshare_policy,
        **fields,
    )


def a_consumable_resource(
    name: str = "licence", total: int = 1, *, in_use: int = 0, **fields: Any
) -> ConsumableResource:
    """A REPLENISHABLE consumable resource of `total`, `in_use` of it held."""
    values: dict[str, Any] = {"arn": arn("consumable-resource", name)}
    values.update(resource_type="REPLENISHABLE", in_use_quantity=in_use)
    values.update(fields)
    return ConsumableResource(name=name, total_quantity=total, **values)


def requiring(quantity: int, name: str = "licence") -> tuple[ConsumableRequirement, ...]:
    """A job's consumableResourceProperties: `quantity` of resource `name`."""
    return (ConsumableRequirement(resource=name, quantity=quantity),)


_PROPERTIES = ("container_properties", "node_properties", "ecs_properties", "eks_properties")


def revisions_of(name: str = "render", **fields: Any) -> Callable[[int], JobDefinition]:
    """Revision n of an ACTIVE container job definition, as Store.add_job_definition asks for
    it; a busybox `true` container unless `fields` give properties of their own."""

    def revision(number: int) -> JobDefinition:
        values: dict[str, Any] = {
            "arn": arn("job-definition", f"{name}:{number}"),
            "status": "ACTIVE",
            "type": "container",
        }
        values.update(fields)
        if all(values.get(key) is None for key in _PROPERTIES):
            values["container_properties"] = {"image": "busybox", "command": ["true"]}
        return JobDefinition(name=name, revision=number, **values)

    return revision


# -- the same with every optional member set, for round trips through a store ---------------


def a_complete_compute_environment(name: str, **fields: Any) -> ComputeEnvironment:
    """a_compute_environment with a status reason, EC2 computeResources, tags and a creation
    time."""
    values: dict[str, Any] = {
        "status_reason": "ComputeEnvironment Healthy",
        "compute_resources": {"type": "EC2", "maxvCpus": 8, "subnets": ["s-1"]},
        "tags": {"team": "a"},
        "created_at": 5,
    }
    values.update(fields)
    return a_compute_environment(name, **values)


def a_complete_queue(name: str, **fields: Any) -> JobQueue:
    """A queue of priority 1 over ce-b (order 2) and ce-a (order 1), with a status reason, a
    time-limit action, a service environment order and tags."""
    values: dict[str, Any] = {
        "priority": 1,
        "status_reason": "JobQueue Healthy",
        "compute_environment_order": (
            ComputeEnvironmentOrder(2, "ce-b"),
            ComputeEnvironmentOrder(1, "ce-a"),
        ),
        "job_state_time_limit_actions": (JobStateTimeLimitAction("r", "RUNNABLE", 600, "CANCEL"),),
        "service_environment_order": ({"order": 1, "serviceEnvironment": "se"},),
        "tags": {"k": "v"},
    }
    values.update(fields)
    return a_queue(name, **values)


def a_complete_scheduling_policy(name: str, **fields: Any) -> SchedulingPolicy:
    """A fair-share policy with a decay time and an (empty) share distribution."""
    values: dict[str, Any] = {
        "fairshare_policy": {"shareDecaySeconds": 60, "shareDistribution": []},
    }
    values.update(fields)
    return a_scheduling_policy(name, **values)


def a_complete_consumable_resource(name: str, total: int, **fields: Any) -> ConsumableResource:
    """a_consumable_resource with tags and a creation time."""
    values: dict[str, Any] = {"tags": {"team": "a"}, "created_at": 7}
    values.update(fields)
    return a_consumable_resource(name, total, **values)


def complete_revisions_of(name: str, **fields: Any) -> Callable[[int], JobDefinition]:
    """revisions_of for the EC2 platform."""
    return revisions_of(name, **{"platform_capabilities": ("EC2",), **fields})


# -- jobs and attempts -------------------------------------------------------------------------


def needing(vcpus: float = 1, memory_mib: int = 1024, gpus: int = 0) -> Resources:
    return Resources(vcpus=vcpus, memory_mib=memory_mib, gpus=gpus)


def a_job(job_id: str = "job-1", status: JobStatus = S.RUNNABLE, **fields: Any) -> Job:
    """A job of queue "high" and definition render:1 needing 1 vCPU and 1 GiB, at version 5;
    its seq and run order are the digits of its id (1 if none)."""
    seq = fields.pop("seq", int("".join(c for c in job_id if c.isdigit()) or "1"))
    values: dict[str, Any] = {
        "job_name": f"name-{job_id}",
        "job_queue": "high",
        "job_definition_arn": arn("job-definition", "render:1"),
        "job_definition_name": "render",
        "status": status,
        "created_at": 1_000,
        "run_order": seq,
        "resources": needing(),
        "version": 5,
    }
    values.update(fields)
    return Job(job_id=job_id, seq=seq, **values)


def a_submitted_job(job_id: str, **fields: Any) -> Job:
    """A job as SubmitJob hands it to the store: SUBMITTED to queue "q1" with definition def:1,
    no seq, run order, resources or version of its own yet."""
    values: dict[str, Any] = {
        "job_queue": "q1",
        "job_definition_arn": arn("job-definition", "def:1"),
        "job_definition_name": "def",
        "seq": 0,
        "run_order": 0,
        "resources": Resources(),
        "version": 0,
    }
    values.update(fields)
    return a_job(job_id, values.pop("status", S.SUBMITTED), **values)


def a_submitted_array(parent_id: str, size: int, **fields: Any) -> list[Job]:
    """An array job as SubmitJob hands it to the store: the parent, then its children."""
    parent = a_submitted_job(parent_id, array_size=size, **fields)
    children = [
        a_submitted_job(f"{parent_id}:{i}", array_parent_id=parent_id, array_index=i, **fields)
        for i in range(size)
    ]
    return [parent, *children]


def an_attempt(**fields: Any) -> Attempt:
    """Attempt task-1 on ce-a, placed at 10_000 and started at 11_000."""
    values: dict[str, Any] = {
        "task_id": "task-1",
        "compute_environment": "ce-a",
        "placed_at": 10_000,
        "started_at": 11_000,
    }
    values.update(fields)
    return Attempt(**values)


def a_logged_attempt(task_id: str, *, stream: bool = True) -> Attempt:
    """An attempt that ran and ended, its output in stream render/default/<task_id> (or, with
    stream=False, one that never got a stream)."""
    return an_attempt(
        task_id=task_id,
        compute_environment="ce",
        placed_at=0,
        started_at=1,
        stopped_at=2,
        log_stream_name=f"render/default/{task_id}" if stream else None,
    )


def a_running_job(job_id: str = "run-1", **fields: Any) -> Job:
    """A RUNNING job on ce-a whose attempt (an_attempt()) started at 11_000."""
    values: dict[str, Any] = {
        "compute_environment": "ce-a",
        "attempts": (an_attempt(),),
        "started_at": 11_000,
    }
    values.update(fields)
    status = values.pop("status", S.RUNNING)
    return a_job(job_id, status, **values)


def an_ended_job(
    exit_code: int | None,
    *,
    status_reason: str = lifecycle.ESSENTIAL_CONTAINER_EXITED,
    reason: str | None = None,
    previous: Iterable[Attempt] = (),
    **fields: Any,
) -> Job:
    """A running job whose attempt has exited at 50_000 (reported, not yet settled)."""
    ended = an_attempt(
        task_id=f"task-{len(tuple(previous)) + 1}",
        stopped_at=50_000,
        exit_code=exit_code,
        reason=reason,
        status_reason=status_reason,
    )
    return a_running_job(attempts=(*previous, ended), **fields)


def a_finished_job(
    job_id: str, status: JobStatus, stopped_at: int | None, *attempts: Attempt
) -> Job:
    """A job that stopped at `stopped_at` after `attempts` (None and RUNNING: not yet)."""
    return a_job(job_id, status, stopped_at=stopped_at, attempts=attempts)


def a_complete_job(job_id: str = "rich") -> Job:
    """A job (as submitted, RUNNING) with every optional member set: dependencies, parameters,
    container, resources, retry strategy with evaluateOnExit, timeout, tags, share, two attempts
    (one ended), cancel and terminate requests and a stop cause."""
    return a_submitted_job(
        job_id,
        status=S.RUNNING,
        status_reason="Essential container in task exited",
        started_at=5,
        depends_on=(Dependency("dep-a", None), Dependency("dep-b", "SEQUENTIAL")),
        wait_for=("dep-a", "dep-b"),
        parameters={"p": "v"},
        container={"command": ["echo", "Ref::p"], "environment": [{"name": "X", "value": "1"}]},
        resources=Resources(vcpus=0.5, memory_mib=512, gpus=1),
        retry_strategy=RetryStrategy(
            3, (EvaluateOnExit("RETRY", on_exit_code="1*"), EvaluateOnExit("EXIT", on_reason="*"))
        ),
        timeout_seconds=60,
        tags={"k": "v"},
        propagate_tags=True,
        platform_capabilities=("EC2",),
        scheduling_priority=7,
        share_identifier="blue",
        extra={"nodeOverrides": {"numNodes": 2}},
        attempts=(
            Attempt(
                "t1",
                "ce1",
                placed_at=1,
                started_at=2,
                stopped_at=3,
                exit_code=1,
                reason="r",
                status_reason="sr",
                log_stream_name="def/default/t1",
                runtime_handle="pid:1",
            ),
            Attempt("t2", "ce1", placed_at=4),
        ),
        compute_environment="ce1",
        cancel_reason="c",
        terminate_reason="t",
        stop_cause=StopCause.TIMEOUT,
        is_cancelled=True,
        is_terminated=True,
        blocked_since=9,
    )


# -- attempt specs (what the dispatcher hands a runtime) -------------------------------------

TEST_IMAGE = "batchyard-test:busybox"  # built by scripts/provision; tests/containers.py needs it


def an_attempt_spec(
    command: tuple[str, ...],
    *,
    job_id: str = "job-1",
    compute_environment: str = "default",
    container: Document | None = None,
    resources: Resources | None = None,
    network_mode: str | None = "none",
    env: Mapping[str, str] | None = None,
) -> AttemptSpec:
    """Attempt 1 of `job_id` running `command` (a fresh task id each call) with AWS_BATCH_JOB_ID,
    AWS_BATCH_JOB_ATTEMPT and `env`, 1 vCPU and 512 MiB unless given, the test image (the docker
    runtime runs it, the others ignore it) and no network."""
    task_id = uuid.uuid4().hex
    return AttemptSpec(
        job_id=job_id,
        task_id=task_id,
        attempt_number=1,
        job_queue="high",
        compute_environment=compute_environment,
        job_definition_name="render",
        command=command,
        environment={"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "1", **(env or {})},
        resources=resources or Resources(vcpus=1, memory_mib=512),
        container={"image": TEST_IMAGE, **(container or {})},
        log_group="/aws/batch/job",
        log_stream_name=f"render/default/{task_id}",
        network_mode=network_mode,
    )


def a_container_spec(
    command: tuple[str, ...], *, resources: Resources | None = None, **fields: Any
) -> AttemptSpec:
    """an_attempt_spec on compute environment "containers" with 64 MiB unless given: small
    enough that many test containers fit."""
    return an_attempt_spec(
        command,
        compute_environment="containers",
        resources=resources or Resources(vcpus=1, memory_mib=64),
        **fields,
    )


# -- planner snapshots -------------------------------------------------------------------------


def a_snapshot(
    *,
    compute_environments: Iterable[ComputeEnvironment] = (),
    job_queues: Iterable[JobQueue] = (),
    runnable: Iterable[Job] = (),
    active: Iterable[Job] = (),
    to_evaluate: Iterable[Job] = (),
    dependency_status: Mapping[str, JobStatus] | None = None,
    host_limits: Mapping[str, Resources] | None = None,
) -> Snapshot:
    """What the store hands the planner: `runnable` become the heads of their queues; with no
    compute environments or queues, ce-a (4 vCPUs) and queue "high" over it."""
    by_queue: dict[str, list[Job]] = {}
    for job in runnable:
        by_queue.setdefault(job.job_queue, []).append(job)
    ces = tuple(compute_environments) or (a_compute_environment(),)
    queues = tuple(job_queues) or (a_queue(),)
    return Snapshot(
        compute_environments={ce.name: ce for ce in ces},
        job_queues=queues,
        active=tuple(active),
        runnable={name: tuple(jobs) for name, jobs in by_queue.items()},
        to_evaluate=tuple(to_evaluate),
        dependency_status=dict(dependency_status or {}),
        host_limits=dict(host_limits or {}),
    )


# -- fair share --------------------------------------------------------------------------------

FAIR_POLICY_ARN = arn("scheduling-policy", "fair")


def a_fair_queue(name: str = "fair", **fields: Any) -> JobQueue:
    """a_queue() under the scheduling policy "fair"."""
    return replace(a_queue(name, **fields), scheduling_policy_arn=FAIR_POLICY_ARN)


def a_fair_policy(**fairshare_policy: Any) -> SchedulingPolicy:
    """The policy "fair", its fairsharePolicy members given as keywords."""
    return a_scheduling_policy("fair", fairshare_policy)


_seq = iter(range(1, 1_000_000))


def a_share_job(share: str, vcpus: float = 1, *, queue: str = "fair", **fields: Any) -> Job:
    """A RUNNABLE job of a share; ids and seqs grow in the order jobs are made."""
    seq = fields.pop("seq", next(_seq))
    job_id = fields.pop("job_id", f"{share}-{seq}")
    return a_job(
        job_id,
        job_queue=queue,
        share_identifier=share,
        resources=needing(vcpus),
        seq=seq,
        run_order=fields.pop("run_order", seq),
        **fields,
    )


def holding(share: str, vcpus: float, *, placed_at: int = NOW, queue: str = "fair") -> Job:
    """A RUNNING job of a share placed at `placed_at` (NOW: its running usage is still 0)."""
    seq = next(_seq)
    return a_running_job(
        f"run-{share}-{seq}",
        seq=seq,
        job_queue=queue,
        share_identifier=share,
        resources=needing(vcpus),
        attempts=(an_attempt(placed_at=placed_at, started_at=placed_at),),
    )


def an_exited_job(share: str, vcpus: float, placed_at: int, stopped_at: int) -> Job:
    """A RUNNING job of the fair queue whose attempt exited 0 (reported, not yet settled)."""
    attempt = an_attempt(
        placed_at=placed_at,
        started_at=placed_at,
        stopped_at=stopped_at,
        exit_code=0,
        status_reason=lifecycle.ESSENTIAL_CONTAINER_EXITED,
    )
    return a_running_job(
        job_queue="fair", share_identifier=share, resources=needing(vcpus), attempts=(attempt,)
    )


def a_fair_snapshot(
    heads: Iterable[Job] = (),
    *,
    policy: SchedulingPolicy | None = None,
    queues: Iterable[JobQueue] = (),
    compute_environments: Iterable[ComputeEnvironment] = (),
    active: Iterable[Job] = (),
    to_evaluate: Iterable[Job] = (),
    usage: Mapping[str, float] | None = None,
    consumables: Iterable[ConsumableResource] = (),
    fifo: Iterable[Job] = (),
) -> Snapshot:
    """Heads of fair-share queues go per share; `fifo` jobs to their FIFO queue's heads."""
    by_share: dict[str, dict[str, list[Job]]] = {}
    for job in heads:
        assert job.share_identifier is not None
        by_share.setdefault(job.job_queue, {}).setdefault(job.share_identifier, []).append(job)
    runnable: dict[str, list[Job]] = {}
    for job in fifo:
        runnable.setdefault(job.job_queue, []).append(job)
    policy = policy or a_fair_policy()
    ces = tuple(compute_environments) or (a_compute_environment(max_vcpus=4),)
    return Snapshot(
        compute_environments={ce.name: ce for ce in ces},
        job_queues=tuple(queues) or (a_fair_queue(),),
        scheduling_policies={policy.arn: policy},
        active=tuple(active),
        runnable={name: tuple(jobs) for name, jobs in runnable.items()},
        runnable_by_share={
            queue: {share: tuple(jobs) for share, jobs in shares.items()}
            for queue, shares in by_share.items()
        },
        share_usage={
            "fair": {
                share: ShareUsage("fair", share, value=value, at=NOW)
                for share, value in (usage or {}).items()
            }
        },
        consumable_resources={resource.name: resource for resource in consumables},
        to_evaluate=tuple(to_evaluate),
    )
