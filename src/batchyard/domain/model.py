"""Batch objects as frozen dataclasses: jobs, attempts, queues, compute environments, definitions.

Pure data in AWS vocabulary (snake_case). Nested AWS documents that Batchyard stores whole
(containerProperties, computeResources, ...) stay in their wire form as plain mappings.
Timestamps are integer epoch milliseconds, as AWS Batch reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Document = Mapping[str, Any]
"""An AWS document kept in its wire form (camelCase keys), e.g. containerProperties."""


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNABLE = "RUNNABLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @property
    def is_active(self) -> bool:
        """Holds capacity on a compute environment."""
        return self in (JobStatus.STARTING, JobStatus.RUNNING)


ALL_JOB_STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)


class ResourceState(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class ResourceStatus(StrEnum):
    CREATING = "CREATING"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    DELETED = "DELETED"
    VALID = "VALID"
    INVALID = "INVALID"


class StopCause(StrEnum):
    """Why Batchyard asked a runtime to stop an attempt."""

    TERMINATED = "TERMINATED"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True, slots=True)
class Identity:
    """The account and region every ARN is minted in."""

    account_id: str = "000000000000"
    region: str = "us-east-1"

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:batch:{self.region}:{self.account_id}:{kind}/{name}"


@dataclass(frozen=True, slots=True)
class Resources:
    """What one attempt needs on its compute environment."""

    vcpus: float = 1.0
    memory_mib: int = 2048
    gpus: int = 0


@dataclass(frozen=True, slots=True)
class Tagged:
    arn: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ComputeEnvironment:
    name: str
    arn: str
    type: str  # MANAGED | UNMANAGED
    state: ResourceState
    status: ResourceStatus
    status_reason: str
    runtime: str  # process | docker (slurm: a name reserved for a later runtime)
    compute_resources: Document | None = None
    service_role: str | None = None
    unmanagedv_cpus: int | None = None
    update_policy: Document | None = None
    eks_configuration: Document | None = None
    ecs_settings: Document | None = None
    container_orchestration_type: str = "ECS"
    uuid: str = ""
    context: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    status_changed_at: int = 0

    @property
    def max_vcpus(self) -> float | None:
        """The vCPU cap the scheduler enforces; None means the runtime's host decides."""
        if self.compute_resources is not None and "maxvCpus" in self.compute_resources:
            return float(self.compute_resources["maxvCpus"])
        if self.unmanagedv_cpus is not None:
            return float(self.unmanagedv_cpus)
        return None

    @property
    def can_place(self) -> bool:
        return self.state is ResourceState.ENABLED and self.status is ResourceStatus.VALID


@dataclass(frozen=True, slots=True)
class ComputeEnvironmentOrder:
    order: int
    compute_environment: str  # name


@dataclass(frozen=True, slots=True)
class JobStateTimeLimitAction:
    reason: str
    state: str
    max_time_seconds: int
    action: str


@dataclass(frozen=True, slots=True)
class JobQueue:
    name: str
    arn: str
    state: ResourceState
    status: ResourceStatus
    status_reason: str
    priority: int
    compute_environment_order: tuple[ComputeEnvironmentOrder, ...]
    scheduling_policy_arn: str | None = None
    job_state_time_limit_actions: tuple[JobStateTimeLimitAction, ...] = ()
    job_queue_type: str | None = None
    service_environment_order: tuple[Document, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    status_changed_at: int = 0

    @property
    def accepts_jobs(self) -> bool:
        return self.state is ResourceState.ENABLED

    @property
    def compute_environment_names(self) -> tuple[str, ...]:
        ordered = sorted(self.compute_environment_order, key=lambda o: o.order)
        return tuple(o.compute_environment for o in ordered)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    name: str
    revision: int
    arn: str
    status: str  # ACTIVE | INACTIVE
    type: str  # container | multinode
    parameters: Mapping[str, str] = field(default_factory=dict)
    retry_strategy: Document | None = None
    timeout: Document | None = None
    container_properties: Document | None = None
    node_properties: Document | None = None
    ecs_properties: Document | None = None
    eks_properties: Document | None = None
    consumable_resource_properties: Document | None = None
    platform_capabilities: tuple[str, ...] = ()
    propagate_tags: bool | None = None
    scheduling_priority: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    container_orchestration_type: str = "ECS"
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class SchedulingPolicy:
    name: str
    arn: str
    fairshare_policy: Document | None = None
    quota_share_policy: Document | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class ConsumableResource:
    """An account-level counter of something jobs take while they run (a licence, a token).

    `in_use_quantity` is what jobs in STARTING or RUNNING hold; the store keeps it as jobs
    move in and out of those states. A NON_REPLENISHABLE quantity leaves the total for good
    when its job ends; a REPLENISHABLE one comes back.
    """

    name: str
    arn: str
    resource_type: str  # REPLENISHABLE | NON_REPLENISHABLE
    total_quantity: int
    in_use_quantity: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0

    @property
    def available_quantity(self) -> int:
        return max(0, self.total_quantity - self.in_use_quantity)

    @property
    def is_replenishable(self) -> bool:
        return self.resource_type != "NON_REPLENISHABLE"


@dataclass(frozen=True, slots=True)
class ConsumableRequirement:
    """How much of one consumable resource (by name) a job takes while it runs."""

    resource: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ShareUsage:
    """The fair-share usage a share of a queue has accrued from attempts that ended.

    `value` is valued at time `at`: past vCPU-time, decayed over the queue's decay window and
    divided by it (so it reads as "vCPUs held on average over the window"). Running attempts
    are not in it; the planner adds them from the jobs it sees.
    """

    job_queue: str
    share_identifier: str
    value: float = 0.0
    at: int = 0


@dataclass(frozen=True, slots=True)
class Dependency:
    """A dependsOn entry as submitted."""

    job_id: str | None
    type: str | None  # None | N_TO_N | SEQUENTIAL


@dataclass(frozen=True, slots=True)
class EvaluateOnExit:
    action: str  # RETRY | EXIT (stored upper-case)
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None


@dataclass(frozen=True, slots=True)
class RetryStrategy:
    attempts: int = 1
    evaluate_on_exit: tuple[EvaluateOnExit, ...] = ()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a job on a compute environment (one ECS task in AWS terms)."""

    task_id: str
    compute_environment: str
    placed_at: int
    started_at: int | None = None
    stopped_at: int | None = None
    exit_code: int | None = None
    reason: str | None = None  # container.reason
    status_reason: str | None = None
    log_stream_name: str | None = None
    runtime_handle: str | None = None  # opaque to everyone but the runtime that made it

    @property
    def has_ended(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    job_name: str
    job_queue: str  # queue name
    job_definition_arn: str
    job_definition_name: str
    status: JobStatus
    created_at: int
    seq: int  # submission order; FIFO key
    status_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    # Arrays: a parent has array_size; a child has array_index and array_parent_id.
    array_size: int | None = None
    array_index: int | None = None
    array_parent_id: str | None = None
    depends_on: tuple[Dependency, ...] = ()
    wait_for: tuple[str, ...] = ()  # the job ids this one waits on, dependsOn expanded
    parameters: Mapping[str, str] = field(default_factory=dict)
    container: Document = field(default_factory=dict)  # resolved: command, environment, ...
    resources: Resources = Resources()
    retry_strategy: RetryStrategy = RetryStrategy()
    timeout_seconds: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    propagate_tags: bool = False
    platform_capabilities: tuple[str, ...] = ()
    scheduling_priority: int | None = None
    share_identifier: str | None = None
    # Consumable resources the job takes at STARTING, by resource name (definition or override).
    consumable_resources: tuple[ConsumableRequirement, ...] = ()
    extra: Document = field(
        default_factory=dict
    )  # members returned as submitted (nodeOverrides, ...)
    attempts: tuple[Attempt, ...] = ()
    compute_environment: str | None = None  # where the current attempt is placed
    run_order: int = 0  # position among RUNNABLE jobs of its queue; retries jump ahead
    cancel_reason: str | None = None  # CancelJob asked; applied by the planner
    terminate_reason: str | None = None  # TerminateJob asked; applied by the planner
    stop_cause: StopCause | None = None  # a stop of the current attempt was ordered
    is_cancelled: bool = False
    is_terminated: bool = False
    blocked_since: int | None = None  # when the current RUNNABLE blocked reason was set
    # Filled by the store for array parents: count of children per status.
    array_status_summary: Mapping[str, int] | None = None
    version: int = 0

    @property
    def is_array_parent(self) -> bool:
        return self.array_size is not None

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None
