"""Job operations of the service layer (service/jobs.py) and their wire renderers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.validate import ParamValidator

from batchyard.api import jobs_wire, resources_wire
from batchyard.api.protocol import service_model, shape_output
from batchyard.domain.errors import ClientException
from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Attempt,
    ConsumableRequirement,
    EvaluateOnExit,
    Identity,
    Job,
    JobDefinition,
    JobStatus,
    Resources,
    ResourceState,
    RetryStrategy,
)
from batchyard.service import consumable_resources, job_definitions, jobs, queue_snapshot, tags
from batchyard.service.context import ServiceContext
from batchyard.store.base import JobQuery
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock, a_compute_environment, a_queue, revisions_of

S = JobStatus
IDENTITY = Identity()
NOW = 1_700_000_000_000
QUEUE: dict[str, Any] = {
    "priority": 1,
    "compute_environments": ("ce",),
    "status_reason": "JobQueue Healthy",
}


def define(ctx: ServiceContext, name: str, **fields: Any) -> JobDefinition:
    return ctx.store.add_job_definition(revisions_of(name, **fields))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ctx(clock: FixedClock) -> ServiceContext:
    store = MemoryStore()
    store.put_compute_environment(
        a_compute_environment("ce", max_vcpus=None, status_reason="ComputeEnvironment Healthy"),
        create=True,
    )
    store.put_job_queue(a_queue("q", **QUEUE), create=True)
    store.put_job_queue(a_queue("off", state=ResourceState.DISABLED, **QUEUE), create=True)
    store.put_job_queue(
        a_queue("fair", scheduling_policy_arn=IDENTITY.arn("scheduling-policy", "fsp"), **QUEUE),
        create=True,
    )
    context = ServiceContext(store=store, clock=clock, identity=IDENTITY)
    define(
        context,
        "render",
        parameters={"msg": "hello", "level": "1"},
        container_properties={
            "image": "busybox",
            "command": ["echo", "Ref::msg", "--level", "Ref::level", "--in=Ref::msg"],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
        retry_strategy={"attempts": 3, "evaluateOnExit": [{"onExitCode": "1", "action": "exit"}]},
        timeout={"attemptDurationSeconds": 600},
        tags={"team": "def", "owner": "def"},
        scheduling_priority=5,
    )
    define(
        context,
        "legacy",
        container_properties={"image": "busybox", "command": ["true"], "vcpus": 2, "memory": 1024},
    )
    return context


def submit(ctx: ServiceContext, **fields: Any) -> Job:
    fields.setdefault("job_name", "job")
    fields.setdefault("job_queue", "q")
    fields.setdefault("job_definition", "render")
    return jobs.submit_job(ctx, **fields)


def rejected(call: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(ClientException) as info:
        call()
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value.message


def set_status(ctx: ServiceContext, job_id: str, status: JobStatus, **fields: Any) -> Job:
    stored = ctx.store.mutate_job(job_id, lambda j: replace(j, status=status, **fields))
    assert stored is not None
    return stored


# -- SubmitJob validation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-job", "_job", "a b", "a.b", "x" * 129, "é"])
def test_job_name_must_match_aws_pattern(ctx: ServiceContext, name: str) -> None:
    message = rejected(lambda: submit(ctx, job_name=name), "Job name should match valid pattern")
    assert message.startswith("Error executing request, Exception : ")


@pytest.mark.parametrize("name", ["a", "A1", "a-b_c", "9" + "x" * 127])
def test_valid_job_names_are_accepted(ctx: ServiceContext, name: str) -> None:
    assert submit(ctx, job_name=name).job_name == name


def test_queue_must_exist_and_may_be_named_by_arn(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="nope"), "JobQueue nope not found.")
    job = submit(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert job.job_queue == "q"


def test_disabled_queue_rejects_submissions(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="off"), "off", "DISABLED")


def test_job_definition_by_name_revision_and_arn(ctx: ServiceContext) -> None:
    second = define(ctx, "render", container_properties={"image": "busybox", "command": ["two"]})
    assert submit(ctx).job_definition_arn == second.arn
    first = submit(ctx, job_definition="render:1")
    assert first.job_definition_arn == IDENTITY.arn("job-definition", "render:1")
    by_arn = submit(ctx, job_definition=IDENTITY.arn("job-definition", "render:2"))
    assert by_arn.container["command"] == ["two"]
    assert first.job_definition_name == "render"
    rejected(lambda: submit(ctx, job_definition="ghost"), "ghost", "does not exist")
    rejected(lambda: submit(ctx, job_definition="render:9"), "render:9")


@pytest.mark.parametrize("size", [0, 1, 10_001])
def test_array_size_out_of_range_is_rejected(ctx: ServiceContext, size: int) -> None:
    rejected(lambda: submit(ctx, array_properties={"size": size}), "size", str(size))


def test_more_than_20_dependencies_rejected(ctx: ServiceContext) -> None:
    ids = [submit(ctx).job_id for _ in range(21)]
    rejected(
        lambda: submit(ctx, depends_on=[{"jobId": i} for i in ids]),
        "Error executing request, Exception : Job cannot have more than 20 dependencies",
    )
    assert submit(ctx, depends_on=[{"jobId": i} for i in ids[:20]]).wait_for == tuple(ids[:20])


def test_unknown_dependency_is_named(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, depends_on=[{"jobId": "no-such-job"}]), "no-such-job")


def test_sequential_rules(ctx: ServiceContext) -> None:
    other = submit(ctx, array_properties={"size": 2})
    rejected(lambda: submit(ctx, depends_on=[{"type": "SEQUENTIAL"}]), "SEQUENTIAL", "array")
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 2},
            depends_on=[{"jobId": other.job_id, "type": "SEQUENTIAL"}],
        ),
        "SEQUENTIAL",
        "jobId",
    )


def test_n_to_n_rules(ctx: ServiceContext) -> None:
    plain = submit(ctx)
    array3 = submit(ctx, array_properties={"size": 3})
    rejected(
        lambda: submit(ctx, depends_on=[{"jobId": array3.job_id, "type": "N_TO_N"}]),
        "N_TO_N",
        "array",
    )
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 3},
            depends_on=[{"jobId": plain.job_id, "type": "N_TO_N"}],
        ),
        "N_TO_N",
        plain.job_id,
    )
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 4},
            depends_on=[{"jobId": array3.job_id, "type": "N_TO_N"}],
        ),
        "same size",
        array3.job_id,
    )
    rejected(lambda: submit(ctx, depends_on=[{"type": "N_TO_N"}]), "jobId")


def test_reserved_environment_names_rejected(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(
            ctx, container_overrides={"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}
        ),
        "AWS_BATCH_JOB_ID",
    )
    define(
        ctx,
        "reserved",
        container_properties={
            "image": "busybox",
            "environment": [{"name": "AWS_BATCHY", "value": "1"}],
        },
    )
    rejected(lambda: submit(ctx, job_definition="reserved"), "AWS_BATCHY")
    ok = submit(ctx, container_overrides={"environment": [{"name": "AWS_REGION", "value": "x"}]})
    assert {"name": "AWS_REGION", "value": "x"} in ok.container["environment"]


def test_override_command_must_not_contain_empty_strings(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(ctx, container_overrides={"command": ["echo", ""]}),
        "command",
        "empty strings",
    )


@pytest.mark.parametrize("attempts", [0, 11])
def test_retry_attempts_range(ctx: ServiceContext, attempts: int) -> None:
    rejected(lambda: submit(ctx, retry_strategy={"attempts": attempts}), "attempts", str(attempts))


def test_retry_strategy_needs_attempts(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(
            ctx, retry_strategy={"evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}]}
        ),
        "Error executing request, Exception : RetryAttempts must be provided with retry strategy",
    )


def test_at_most_five_evaluate_on_exit_conditions(ctx: ServiceContext) -> None:
    conditions = [{"onExitCode": str(i), "action": "EXIT"} for i in range(6)]
    rejected(
        lambda: submit(ctx, retry_strategy={"attempts": 2, "evaluateOnExit": conditions}),
        "evaluateOnExit",
        "5",
    )


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("onExitCode", "*1"),
        ("onExitCode", "1a"),
        ("onExitCode", "1**"),
        ("onExitCode", ""),
        ("onReason", "Host-EC2*"),
        ("onReason", "a*b"),
        ("onStatusReason", "(instance)"),
        ("onStatusReason", "x" * 513),
    ],
)
def test_restricted_evaluate_on_exit_patterns(ctx: ServiceContext, key: str, pattern: str) -> None:
    strategy = {"attempts": 2, "evaluateOnExit": [{key: pattern, "action": "RETRY"}]}
    rejected(
        lambda: submit(ctx, retry_strategy=strategy),
        "Evaluate on exit condition contains restricted characters",
    )


def test_legal_evaluate_on_exit_patterns_and_case_insensitive_actions(ctx: ServiceContext) -> None:
    conditions = [
        {"onExitCode": "40*", "action": "exit"},
        {"onStatusReason": "Host EC2*", "action": "Retry"},
        {"onReason": "CannotPullContainerError:*", "action": "RETRY"},
        {"onReason": "*", "onExitCode": "*", "action": "EXIT"},
    ]
    job = submit(ctx, retry_strategy={"attempts": 4, "evaluateOnExit": conditions})
    assert job.retry_strategy == RetryStrategy(
        attempts=4,
        evaluate_on_exit=(
            EvaluateOnExit(action="EXIT", on_exit_code="40*"),
            EvaluateOnExit(action="RETRY", on_status_reason="Host EC2*"),
            EvaluateOnExit(action="RETRY", on_reason="CannotPullContainerError:*"),
            EvaluateOnExit(action="EXIT", on_reason="*", on_exit_code="*"),
        ),
    )
    rejected(
        lambda: submit(
            ctx, retry_strategy={"attempts": 2, "evaluateOnExit": [{"action": "MAYBE"}]}
        ),
        "MAYBE",
    )


def test_timeout_minimum_is_60_seconds(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(ctx, timeout={"attemptDurationSeconds": 59}), "attemptDurationSeconds", "60"
    )
    assert submit(ctx, timeout={"attemptDurationSeconds": 60}).timeout_seconds == 60


def test_at_most_50_tags(ctx: ServiceContext) -> None:
    tags = {f"k{i}": "v" for i in range(51)}
    rejected(lambda: submit(ctx, tags=tags), "tags", "51")
    assert len(submit(ctx, tags=dict(list(tags.items())[:50])).tags) == 50


def test_share_identifier_or_priority_needs_fair_share_queue(ctx: ServiceContext) -> None:
    sic = (
        "Job with shareIdentifier or schedulingPriority can onlybe submitted to job queue "
        "with fair share scheduling policy."
    )
    rejected(lambda: submit(ctx, share_identifier="blue"), sic)
    rejected(lambda: submit(ctx, scheduling_priority_override=3), sic)


def test_fair_share_queue_requires_share_identifier(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="fair"), "shareIdentifier", "required")
    job = submit(ctx, job_queue="fair", share_identifier="blue", scheduling_priority_override=9)
    assert (job.share_identifier, job.scheduling_priority) == ("blue", 9)
    rejected(
        lambda: submit(
            ctx, job_queue="fair", share_identifier="blue", scheduling_priority_override=10_000
        ),
        "schedulingPriorityOverride",
        "10000",
    )


def test_a_fair_share_queue_takes_at_most_500_active_share_identifiers(
    ctx: ServiceContext,
) -> None:
    first = [submit(ctx, job_queue="fair", share_identifier=f"s{i}") for i in range(500)]
    message = rejected(
        lambda: submit(ctx, job_queue="fair", share_identifier="one-too-many"),
        "500 active share identifiers",
        "one-too-many",
    )
    assert message.startswith("Job queue fair")
    submit(ctx, job_queue="fair", share_identifier="s7")  # an active share: still fine
    submit(ctx, job_queue="q")  # other queues are not affected
    # Once one share's jobs are all finished, a new share fits again, and no other.
    for job in first[:1]:
        set_status(ctx, job.job_id, S.SUCCEEDED, stopped_at=NOW)
    submit(ctx, job_queue="fair", share_identifier="newcomer")
    rejected(lambda: submit(ctx, job_queue="fair", share_identifier="another"), "500")
    # A share seen before but finished counts as new.
    rejected(lambda: submit(ctx, job_queue="fair", share_identifier="s0"), "500")


# -- SubmitJob resolution -----------------------------------------------------------------------


def test_new_job_fields(ctx: ServiceContext) -> None:
    job = submit(ctx, job_name="first")
    assert job.status is S.SUBMITTED
    assert job.created_at == NOW
    assert len(job.job_id) == 36
    assert job.job_id.count("-") == 4
    assert job.seq > 0
    assert ctx.store.get_job(job.job_id) == job
    assert (job.array_size, job.array_index, job.array_parent_id) == (None, None, None)
    assert job.platform_capabilities == ()
    assert job.scheduling_priority == 5


def test_parameter_substitution(ctx: ServiceContext) -> None:
    defaults = submit(ctx)
    assert defaults.container["command"] == ["echo", "hello", "--level", "1", "--in=Ref::msg"]
    assert defaults.parameters == {}
    overridden = submit(ctx, parameters={"msg": "bye", "unused": "x"})
    assert overridden.container["command"] == ["echo", "bye", "--level", "1", "--in=Ref::msg"]
    assert overridden.parameters == {"msg": "bye", "unused": "x"}


def test_substitution_without_a_value_is_rejected(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(ctx, container_overrides={"command": ["echo", "Ref::missing"]}),
        "Unable to substitute value. No parameter found for reference missing",
    )
    # An embedded reference is left as written, so it needs no value.
    job = submit(ctx, container_overrides={"command": ["echo", "x=Ref::missing"]})
    assert job.container["command"] == ["echo", "x=Ref::missing"]


def test_container_overrides_merge(ctx: ServiceContext) -> None:
    job = submit(
        ctx,
        parameters={"p": "v"},
        container_overrides={
            "command": ["run", "Ref::p"],
            "environment": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
            "resourceRequirements": [
                {"type": "MEMORY", "value": "4096"},
                {"type": "GPU", "value": "1"},
            ],
            "instanceType": "p3.2xlarge",
            "vcpus": 16,
        },
    )
    assert job.container["command"] == ["run", "v"]
    assert job.container["environment"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert job.container["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4096"},
        {"type": "GPU", "value": "1"},
    ]
    # Legacy vcpus never beat a VCPU resource requirement; instanceType is ignored.
    assert job.resources == Resources(vcpus=2.0, memory_mib=4096, gpus=1)
    assert "vcpus" not in job.container
    assert "instanceType" not in job.container
    assert job.container["image"] == "busybox"


def test_legacy_vcpus_and_memory(ctx: ServiceContext) -> None:
    plain = submit(ctx, job_definition="legacy")
    assert plain.resources == Resources(vcpus=2.0, memory_mib=1024, gpus=0)
    overridden = submit(
        ctx, job_definition="legacy", container_overrides={"vcpus": 4, "memory": 8192}
    )
    assert overridden.resources == Resources(vcpus=4.0, memory_mib=8192, gpus=0)
    assert (overridden.container["vcpus"], overridden.container["memory"]) == (4, 8192)
    fractional = submit(
        ctx,
        job_definition="legacy",
        container_overrides={"resourceRequirements": [{"type": "VCPU", "value": "1.5"}]},
    )
    assert fractional.resources.vcpus == 1.5


def test_default_resources(ctx: ServiceContext) -> None:
    define(ctx, "bare")
    assert submit(ctx, job_definition="bare").resources == Resources(1.0, 2048, 0)


def test_invalid_resource_override_is_rejected(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(
            ctx, container_overrides={"resourceRequirements": [{"type": "VCPU", "value": "lots"}]}
        ),
        "VCPU",
        "lots",
    )


def test_definition_stored_with_hostile_values_cannot_submit(ctx: ServiceContext) -> None:
    """A definition stored before values were parsed strictly: SubmitJob refuses it cleanly
    (a ClientException, nothing stored) instead of storing a job no one can schedule."""
    for name, kind, value in (("huge", "MEMORY", "1e308"), ("nan", "VCPU", "nan")):
        define(
            ctx,
            name,
            container_properties={
                "image": "busybox",
                "resourceRequirements": [{"type": kind, "value": value}],
            },
        )
        rejected(lambda n=name: submit(ctx, job_definition=n), kind, repr(value))
    assert ctx.store.list_jobs(JobQuery(job_queue="q", status=S.SUBMITTED, limit=10)) == []


def test_node_overrides_are_checked(ctx: ServiceContext) -> None:
    define(
        ctx,
        "mnp",
        type="multinode",
        node_properties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": {"image": "busybox"}}],
        },
    )
    for overrides, fragment in (
        ({"numNodes": 0}, "numNodes"),
        ({"numNodes": 1001}, "numNodes"),
        ({"nodePropertyOverrides": [{"targetNodes": "0:1_0"}]}, "targetNodes"),
        ({"nodePropertyOverrides": [{"targetNodes": "\u0661"}]}, "targetNodes"),
        (
            {
                "nodePropertyOverrides": [
                    {
                        "targetNodes": "0:",
                        "containerOverrides": {
                            "resourceRequirements": [{"type": "VCPU", "value": "inf"}]
                        },
                    }
                ]
            },
            "VCPU",
        ),
    ):
        rejected(lambda o=overrides: submit(ctx, job_definition="mnp", node_overrides=o), fragment)
    job = submit(ctx, job_definition="mnp", node_overrides={"numNodes": 3})
    assert job.extra["nodeProperties"]["numNodes"] == 3


def test_retry_strategy_replaces_definition(ctx: ServiceContext) -> None:
    inherited = submit(ctx)
    assert inherited.retry_strategy == RetryStrategy(
        attempts=3, evaluate_on_exit=(EvaluateOnExit(action="EXIT", on_exit_code="1"),)
    )
    replaced = submit(ctx, retry_strategy={"attempts": 2})
    assert replaced.retry_strategy == RetryStrategy(attempts=2)
    assert submit(ctx, job_definition="legacy").retry_strategy == RetryStrategy()


def test_timeout_override(ctx: ServiceContext) -> None:
    assert submit(ctx).timeout_seconds == 600
    assert submit(ctx, timeout={"attemptDurationSeconds": 90}).timeout_seconds == 90
    assert submit(ctx, job_definition="legacy").timeout_seconds is None


def test_tags_and_propagation(ctx: ServiceContext) -> None:
    assert submit(ctx, tags={"team": "job"}).tags == {"team": "job"}
    merged = submit(ctx, tags={"team": "job"}, propagate_tags=True)
    assert merged.tags == {"team": "job", "owner": "def"}
    assert merged.propagate_tags is True
    define(ctx, "propagating", tags={"a": "def"}, propagate_tags=True)
    by_definition = submit(ctx, job_definition="propagating", tags={"b": "job"})
    assert by_definition.tags == {"a": "def", "b": "job"}
    off = submit(ctx, job_definition="propagating", tags={"b": "job"}, propagate_tags=False)
    assert (off.tags, off.propagate_tags) == ({"b": "job"}, False)


def test_scheduling_priority_override_wins(ctx: ServiceContext) -> None:
    define(ctx, "prio", scheduling_priority=7)
    job = submit(ctx, job_queue="fair", job_definition="prio", share_identifier="s")
    assert job.scheduling_priority == 7
    job = submit(
        ctx,
        job_queue="fair",
        job_definition="prio",
        share_identifier="s",
        scheduling_priority_override=1,
    )
    assert job.scheduling_priority == 1


def test_non_container_definitions_are_accepted(ctx: ServiceContext) -> None:
    define(
        ctx,
        "mnp",
        type="multinode",
        node_properties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0:", "container": {"image": "busybox", "command": ["Ref::p"]}}
            ],
        },
        parameters={"p": "main"},
    )
    mnp = submit(ctx, job_definition="mnp", node_overrides={"numNodes": 3})
    assert mnp.container["command"] == ["main"]
    assert mnp.extra["nodeProperties"]["numNodes"] == 3
    define(
        ctx,
        "ecs",
        ecs_properties={
            "taskProperties": [
                {
                    "containers": [
                        {
                            "name": "a",
                            "image": "busybox",
                            "resourceRequirements": [{"type": "VCPU", "value": "1"}],
                        },
                        {
                            "name": "b",
                            "image": "busybox",
                            "resourceRequirements": [{"type": "VCPU", "value": "2"}],
                        },
                    ]
                }
            ]
        },
    )
    ecs = submit(
        ctx,
        job_definition="ecs",
        ecs_properties_override={
            "taskProperties": [{"containers": [{"name": "b", "command": ["go"]}]}]
        },
    )
    assert ecs.container == {}
    assert ecs.resources.vcpus == 3.0
    assert ecs.extra["ecsProperties"]["taskProperties"][0]["containers"][1]["command"] == ["go"]
    define(ctx, "eks", eks_properties={"podProperties": {"containers": [{"image": "busybox"}]}})
    eks = submit(ctx, job_definition="eks")
    assert eks.extra["eksProperties"] == {"podProperties": {"containers": [{"image": "busybox"}]}}
    detail = jobs_wire.job_detail(eks, IDENTITY)
    assert "container" not in detail
    assert detail["eksProperties"] == eks.extra["eksProperties"]


def test_plain_dependencies_expand_into_wait_for(ctx: ServiceContext) -> None:
    a, b = submit(ctx), submit(ctx)
    job = submit(
        ctx,
        depends_on=[
            {"jobId": a.job_id},
            {"jobId": IDENTITY.arn("job", b.job_id)},
            {"jobId": a.job_id},
        ],
    )
    assert job.wait_for == (a.job_id, b.job_id)
    assert [d.job_id for d in job.depends_on] == [a.job_id, IDENTITY.arn("job", b.job_id), a.job_id]


# -- arrays -------------------------------------------------------------------------------------


def test_array_of_10000_children_sequential(ctx: ServiceContext, clock: FixedClock) -> None:
    upstream = submit(ctx)
    started = time.perf_counter()
    parent = submit(
        ctx,
        array_properties={"size": 10_000},
        depends_on=[{"jobId": upstream.job_id}, {"type": "SEQUENTIAL"}],
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0  # generous bound for slow CI; the benchmark target is well under 1 s
    assert parent.status is S.SUBMITTED
    assert parent.array_size == 10_000
    assert parent.wait_for == ()
    assert parent.array_status_summary is not None
    assert parent.array_status_summary["PENDING"] == 10_000
    children, _ = jobs.list_jobs(
        ctx, array_job_id=parent.job_id, job_status="PENDING", max_results=1000
    )
    assert len(children) == 1000
    child_ids = [f"{parent.job_id}:{i}" for i in range(10_000)]
    stored = ctx.store.get_jobs(child_ids)
    assert [c.job_id for c in stored] == child_ids
    assert [c.array_index for c in stored] == list(range(10_000))
    assert {c.status for c in stored} == {S.PENDING}
    assert {c.array_parent_id for c in stored} == {parent.job_id}
    assert {c.array_size for c in stored} == {None}
    assert {c.created_at for c in stored} == {clock.now}
    assert stored[0].wait_for == (upstream.job_id,)
    assert stored[1].wait_for == (upstream.job_id, f"{parent.job_id}:0")
    assert stored[9_999].wait_for == (upstream.job_id, f"{parent.job_id}:9998")
    assert {c.depends_on for c in stored} == {parent.depends_on}
    assert {c.container["command"][1] for c in stored} == {"hello"}


def test_array_n_to_n(ctx: ServiceContext) -> None:
    first = submit(ctx, array_properties={"size": 10_000})
    second = submit(
        ctx,
        array_properties={"size": 10_000},
        depends_on=[{"jobId": first.job_id, "type": "N_TO_N"}],
    )
    children = ctx.store.get_jobs(f"{second.job_id}:{i}" for i in range(10_000))
    assert [c.wait_for for c in children] == [(f"{first.job_id}:{i}",) for i in range(10_000)]
    assert second.wait_for == ()


def test_array_children_share_the_resolved_job(ctx: ServiceContext) -> None:
    parent = submit(
        ctx,
        array_properties={"size": 3},
        retry_strategy={"attempts": 2},
        tags={"t": "1"},
        timeout={"attemptDurationSeconds": 120},
    )
    for child in ctx.store.get_jobs(f"{parent.job_id}:{i}" for i in range(3)):
        assert child.retry_strategy == RetryStrategy(attempts=2)
        assert child.tags == {"t": "1"}
        assert child.timeout_seconds == 120
        assert child.resources == parent.resources
        assert child.container == parent.container


# -- DescribeJobs -------------------------------------------------------------------------------


def test_describe_jobs(ctx: ServiceContext) -> None:
    a, b = submit(ctx), submit(ctx)
    found = jobs.describe_jobs(ctx, jobs=[b.job_id, "unknown", a.job_id])
    assert [j.job_id for j in found] == [b.job_id, a.job_id]
    rejected(
        lambda: jobs.describe_jobs(ctx, jobs=[a.job_id] * 101),
        "Error executing request, Exception : Maximum number of jobs supported is  100",
    )
    assert len(jobs.describe_jobs(ctx, jobs=[a.job_id] * 100)) == 100


# -- ListJobs -----------------------------------------------------------------------------------


def test_list_jobs_needs_exactly_one_selector(ctx: ServiceContext) -> None:
    rejected(lambda: jobs.list_jobs(ctx), "jobQueue")
    rejected(lambda: jobs.list_jobs(ctx, job_queue="q", array_job_id="x"), "Exactly one")
    rejected(lambda: jobs.list_jobs(ctx, job_queue="nope"), "JobQueue nope not found.")


def test_list_jobs_defaults_to_running(ctx: ServiceContext) -> None:
    waiting = submit(ctx)
    running = set_status(ctx, submit(ctx).job_id, S.RUNNING)
    page, token = jobs.list_jobs(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert [j.job_id for j in page] == [running.job_id]
    assert token is None
    page, _ = jobs.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert [j.job_id for j in page] == [waiting.job_id]
    rejected(lambda: jobs.list_jobs(ctx, job_queue="q", job_status="DONE"), "DONE")


def test_list_jobs_pagination(ctx: ServiceContext) -> None:
    submitted = [submit(ctx, job_name=f"j{i}").job_id for i in range(5)]
    seen: list[str] = []
    tokens: list[str] = []
    token: str | None = None
    while True:
        page, token = jobs.list_jobs(
            ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=token
        )
        seen.extend(j.job_id for j in page)
        if token is None:
            break
        tokens.append(token)
    assert seen == list(reversed(submitted))  # newest first, no overlap, nothing missed
    assert len(tokens) == 2
    again, again_token = jobs.list_jobs(
        ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=tokens[0]
    )
    assert [j.job_id for j in again] == seen[2:4]
    assert again_token == tokens[1]
    # A job submitted meanwhile does not shift later pages.
    submit(ctx, job_name="late")
    later, _ = jobs.list_jobs(
        ctx, job_queue="q", job_status="SUBMITTED", max_results=2, next_token=tokens[0]
    )
    assert [j.job_id for j in later] == seen[2:4]
    rejected(lambda: jobs.list_jobs(ctx, job_queue="q", max_results=0), "maxResults")
    rejected(lambda: jobs.list_jobs(ctx, job_queue="q", next_token="garbage!"), "nextToken")


def test_list_array_children_pages_by_index(ctx: ServiceContext) -> None:
    parent = submit(ctx, array_properties={"size": 5})
    first, token = jobs.list_jobs(
        ctx, array_job_id=parent.job_id, job_status="PENDING", max_results=3
    )
    assert [j.array_index for j in first] == [0, 1, 2]
    assert token is not None
    rest, token = jobs.list_jobs(
        ctx, array_job_id=parent.job_id, job_status="PENDING", max_results=3, next_token=token
    )
    assert [j.array_index for j in rest] == [3, 4]
    assert token is None
    # Queue listings show the parent, not its children.
    top, _ = jobs.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert [j.job_id for j in top] == [parent.job_id]


def test_list_jobs_max_results_caps(ctx: ServiceContext) -> None:
    for i in range(120):
        submit(ctx, job_name=f"n{i}")
    page, token = jobs.list_jobs(ctx, job_queue="q", job_status="SUBMITTED")
    assert (len(page), token is not None) == (100, True)
    page, token = jobs.list_jobs(ctx, job_queue="q", job_status="SUBMITTED", max_results=5000)
    assert (len(page), token) == (120, None)
    filtered = [{"name": "JOB_NAME", "values": ["n*"]}]
    page, token = jobs.list_jobs(ctx, job_queue="q", filters=filtered, max_results=1000)
    assert (len(page), token is not None) == (100, True)


def test_list_jobs_job_name_filter(ctx: ServiceContext) -> None:
    one = submit(ctx, job_name="Test1")
    ten = submit(ctx, job_name="test10")
    set_status(ctx, ten.job_id, S.SUCCEEDED)
    exact, _ = jobs.list_jobs(
        ctx,
        job_queue="q",
        job_status="RUNNING",
        filters=[{"name": "JOB_NAME", "values": ["test1"]}],
    )
    assert [j.job_id for j in exact] == [one.job_id]  # jobStatus ignored with a filter
    prefix, _ = jobs.list_jobs(
        ctx, job_queue="q", filters=[{"name": "JOB_NAME", "values": ["TEST1*"]}]
    )
    assert [j.job_id for j in prefix] == [ten.job_id, one.job_id]


def test_list_jobs_job_definition_filter(ctx: ServiceContext) -> None:
    first = submit(ctx, job_definition="render")
    define(ctx, "render")
    second = submit(ctx, job_definition="render")
    other = submit(ctx, job_definition="legacy")

    def listed(value: str) -> list[str]:
        page, _ = jobs.list_jobs(
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
        page, _ = jobs.list_jobs(ctx, job_queue="q", filters=[{"name": name, "values": [value]}])
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
    page, _ = jobs.list_jobs(ctx, job_queue="fair", filters=share, job_status="RUNNING")
    assert [j.job_id for j in page] == [blue_running.job_id]
    page, _ = jobs.list_jobs(ctx, job_queue="fair", filters=share)
    assert [j.job_id for j in page] == [blue_running.job_id, blue.job_id]


def test_list_jobs_filter_rules(ctx: ServiceContext) -> None:
    two = [{"name": "JOB_NAME", "values": ["a"]}, {"name": "SHARE_IDENTIFIER", "values": ["b"]}]
    rejected(lambda: jobs.list_jobs(ctx, job_queue="q", filters=two), "one filter")
    rejected(
        lambda: jobs.list_jobs(ctx, job_queue="q", filters=[{"name": "COLOUR", "values": ["x"]}]),
        "COLOUR",
    )
    rejected(
        lambda: jobs.list_jobs(ctx, job_queue="q", filters=[{"name": "JOB_NAME", "values": []}]),
        "JOB_NAME",
    )


# -- CancelJob / TerminateJob -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "recorded"),
    [
        (S.SUBMITTED, True),
        (S.PENDING, True),
        (S.RUNNABLE, True),
        (S.STARTING, False),
        (S.RUNNING, False),
        (S.SUCCEEDED, False),
        (S.FAILED, False),
    ],
)
def test_cancel_job_by_status(ctx: ServiceContext, status: JobStatus, recorded: bool) -> None:
    job = set_status(ctx, submit(ctx).job_id, status)
    result = jobs.cancel_job(ctx, job_id=job.job_id, reason="no longer needed")
    assert result.cancel_reason == ("no longer needed" if recorded else None)
    stored = ctx.store.get_job(job.job_id)
    assert stored is not None
    assert stored.cancel_reason == result.cancel_reason
    assert stored.status is status  # the planner applies the request, not the service


@pytest.mark.parametrize(
    ("status", "recorded"),
    [
        (S.SUBMITTED, True),
        (S.PENDING, True),
        (S.RUNNABLE, True),
        (S.STARTING, True),
        (S.RUNNING, True),
        (S.SUCCEEDED, False),
        (S.FAILED, False),
    ],
)
def test_terminate_job_by_status(ctx: ServiceContext, status: JobStatus, recorded: bool) -> None:
    job = set_status(ctx, submit(ctx).job_id, status)
    result = jobs.terminate_job(ctx, job_id=IDENTITY.arn("job", job.job_id), reason="stop")
    assert result.terminate_reason == ("stop" if recorded else None)


def test_cancel_and_terminate_checks(ctx: ServiceContext) -> None:
    job = submit(ctx)
    rejected(lambda: jobs.cancel_job(ctx, job_id="ghost", reason="r"), "ghost")
    rejected(lambda: jobs.terminate_job(ctx, job_id="ghost", reason="r"), "ghost")
    rejected(lambda: jobs.cancel_job(ctx, job_id=job.job_id, reason="x" * 1025), "1024")
    assert jobs.cancel_job(ctx, job_id=job.job_id, reason="x" * 1024).cancel_reason == "x" * 1024


@pytest.mark.parametrize("operation", [jobs.cancel_job, jobs.terminate_job])
def test_array_parent_request_reaches_every_child(ctx: ServiceContext, operation: Any) -> None:
    parent = submit(ctx, array_properties={"size": 4})
    set_status(ctx, f"{parent.job_id}:3", S.SUCCEEDED)
    operation(ctx, job_id=parent.job_id, reason="whole array")
    children = ctx.store.get_jobs(f"{parent.job_id}:{i}" for i in range(4))
    field = "cancel_reason" if operation is jobs.cancel_job else "terminate_reason"
    assert [getattr(c, field) for c in children] == ["whole array"] * 3 + [None]
    stored_parent = ctx.store.get_job(parent.job_id)
    assert stored_parent is not None
    assert getattr(stored_parent, field) == "whole array"


def test_child_request_leaves_siblings(ctx: ServiceContext) -> None:
    parent = submit(ctx, array_properties={"size": 3})
    jobs.cancel_job(ctx, job_id=f"{parent.job_id}:1", reason="one")
    children = ctx.store.get_jobs(f"{parent.job_id}:{i}" for i in range(3))
    assert [c.cancel_reason for c in children] == [None, "one", None]


@pytest.mark.parametrize(
    ("operation", "field"),
    [(jobs.cancel_jobs, "cancel_reason"), (jobs.terminate_jobs, "terminate_reason")],
)
def test_bulk_requests(ctx: ServiceContext, operation: Any, field: str) -> None:
    a, b = submit(ctx), submit(ctx)
    result = operation(ctx, job_ids=[a.job_id, "ghost", b.job_id], reason="bulk")
    assert result.successful == (a.job_id, "ghost", b.job_id)
    assert result.errors == ()
    for job in ctx.store.get_jobs([a.job_id, b.job_id]):
        assert getattr(job, field) == "bulk"
    rejected(lambda: operation(ctx, job_ids=["x"] * 51, reason="r"), "50")
    rejected(lambda: operation(ctx, job_ids=["x"], reason="r" * 1025), "1024")


# -- renderers and wire handlers ----------------------------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _shape_errors(shape_name: str, value: dict[str, Any]) -> list[str]:
    report = ParamValidator().validate(value, service_model().shape_for(shape_name))
    # startedAt is "required" in the model but AWS omits it until the job runs
    # (docs/aws-behaviour.md#job-states).
    return [
        line
        for line in report.generate_report().splitlines()
        if line.strip() and "startedAt" not in line
    ]


def test_job_detail_of_a_new_job_omits_absent_members(ctx: ServiceContext) -> None:
    job = submit(ctx, job_definition="legacy")
    detail = jobs_wire.job_detail(job, IDENTITY)
    assert None not in list(_walk(detail))
    for absent in ("startedAt", "stoppedAt", "statusReason", "timeout", "tags", "arrayProperties"):
        assert absent not in detail
    assert detail["jobArn"] == f"arn:aws:batch:us-east-1:000000000000:job/{job.job_id}"
    assert detail["jobQueue"] == IDENTITY.arn("job-queue", "q")
    assert detail["jobDefinition"] == IDENTITY.arn("job-definition", "legacy:1")
    assert detail["status"] == "SUBMITTED"
    assert detail["createdAt"] == NOW
    assert detail["attempts"] == []
    assert detail["retryStrategy"] == {"attempts": 1}
    container = detail["container"]
    assert (container["vcpus"], container["memory"]) == (2, 1024)
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/aws/batch/job", "awslogs-region": "us-east-1"},
    }
    assert "taskArn" not in container
    assert "exitCode" not in container
    assert _shape_errors("JobDetail", detail) == []


def test_job_detail_of_a_full_job(ctx: ServiceContext) -> None:
    upstream = submit(ctx)
    job = submit(
        ctx,
        depends_on=[{"jobId": upstream.job_id}],
        parameters={"msg": "hi"},
        tags={"k": "v"},
        container_overrides={"environment": [{"name": "Z", "value": "26"}]},
    )
    ended = Attempt(
        task_id="a" * 32,
        compute_environment="ce",
        placed_at=NOW + 10,
        started_at=NOW + 20,
        stopped_at=NOW + 30,
        exit_code=1,
        reason="boom",
        status_reason="Essential container in task exited",
        log_stream_name="render/default/" + "a" * 32,
    )
    placed = Attempt(task_id="b" * 32, compute_environment="ce", placed_at=NOW + 40)
    job = set_status(ctx, job.job_id, S.STARTING, attempts=(ended, placed), started_at=NOW + 20)
    detail = jobs_wire.job_detail(job, IDENTITY, log_group="/custom")
    assert None not in list(_walk(detail))
    assert detail["dependsOn"] == [{"jobId": upstream.job_id}]
    assert detail["parameters"] == {"msg": "hi"}
    assert detail["tags"] == {"k": "v"}
    assert detail["timeout"] == {"attemptDurationSeconds": 600}
    assert detail["retryStrategy"] == {
        "attempts": 3,
        "evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}],
    }
    assert detail["startedAt"] == NOW + 20
    assert "stoppedAt" not in detail
    assert detail["schedulingPriority"] == 5
    assert detail["isCancelled"] is False
    assert detail["isTerminated"] is False
    # Only the attempt that ran is listed; the placed one shows in the container's taskArn.
    assert detail["attempts"] == [
        {
            "container": {
                "containerInstanceArn": (
                    "arn:aws:ecs:us-east-1:000000000000:container-instance/batchyard/ce"
                ),
                "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/batchyard/" + "a" * 32,
                "exitCode": 1,
                "reason": "boom",
                "logStreamName": "render/default/" + "a" * 32,
                "networkInterfaces": [],
            },
            "startedAt": NOW + 20,
            "stoppedAt": NOW + 30,
            "statusReason": "Essential container in task exited",
        }
    ]
    container = detail["container"]
    assert container["taskArn"].endswith("/" + "b" * 32)
    assert "exitCode" not in container
    assert container["command"] == ["echo", "hi", "--level", "1", "--in=Ref::msg"]
    assert container["environment"][-1] == {"name": "Z", "value": "26"}
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/custom"
    assert _shape_errors("JobDetail", detail) == []


def test_array_renderings(ctx: ServiceContext) -> None:
    parent = submit(ctx, array_properties={"size": 3})
    set_status(ctx, f"{parent.job_id}:0", S.RUNNABLE)
    stored = ctx.store.get_job(parent.job_id)
    assert stored is not None
    detail = jobs_wire.job_detail(stored, IDENTITY)
    assert detail["arrayProperties"]["size"] == 3
    summary = detail["arrayProperties"]["statusSummary"]
    assert set(summary) == {s.value for s in ALL_JOB_STATUSES}
    assert summary["PENDING"] == 2
    assert summary["RUNNABLE"] == 1
    assert summary["RUNNING"] == 0
    child = ctx.store.get_job(f"{parent.job_id}:2")
    assert child is not None
    assert jobs_wire.job_detail(child, IDENTITY)["arrayProperties"] == {"index": 2}
    assert jobs_wire.job_summary(child, IDENTITY)["arrayProperties"] == {"index": 2}
    assert jobs_wire.job_summary(stored, IDENTITY)["arrayProperties"]["size"] == 3


def test_job_summary(ctx: ServiceContext) -> None:
    job = submit(ctx)
    summary = jobs_wire.job_summary(job, IDENTITY)
    assert summary == {
        "jobArn": IDENTITY.arn("job", job.job_id),
        "jobId": job.job_id,
        "jobName": "job",
        "createdAt": NOW,
        "status": "SUBMITTED",
        "jobDefinition": IDENTITY.arn("job-definition", "render:1"),
    }
    done = set_status(
        ctx,
        job.job_id,
        S.FAILED,
        status_reason="stop",
        is_terminated=True,
        started_at=NOW + 1,
        stopped_at=NOW + 2,
        attempts=(
            Attempt(
                task_id="c" * 32,
                compute_environment="ce",
                placed_at=NOW,
                started_at=NOW + 1,
                stopped_at=NOW + 2,
                exit_code=143,
            ),
        ),
    )
    summary = jobs_wire.job_summary(done, IDENTITY)
    assert summary["isTerminated"] is True
    assert "isCancelled" not in summary
    assert summary["container"] == {"exitCode": 143}
    assert (summary["startedAt"], summary["stoppedAt"]) == (NOW + 1, NOW + 2)
    assert summary["statusReason"] == "stop"
    assert _shape_errors("JobSummary", summary) == []


def test_wire_handlers(ctx: ServiceContext) -> None:
    ops = jobs_wire.JOB_OPERATIONS
    assert set(ops) == {
        "SubmitJob",
        "DescribeJobs",
        "ListJobs",
        "CancelJob",
        "TerminateJob",
        "CancelJobs",
        "TerminateJobs",
        "ListJobsByConsumableResource",
        "GetJobQueueSnapshot",
    }
    submitted = ops["SubmitJob"](
        ctx,
        {
            "jobName": "wire",
            "jobQueue": "q",
            "jobDefinition": "render",
            "containerOverrides": {"command": ["echo", "Ref::x"]},
            "parameters": {"x": "y"},
            "arrayProperties": {"size": 2},
        },
    )
    job_id = submitted["jobId"]
    assert submitted == {
        "jobArn": IDENTITY.arn("job", job_id),
        "jobName": "wire",
        "jobId": job_id,
    }
    described = ops["DescribeJobs"](ctx, {"jobs": [job_id, "nope"]})
    assert [d["jobId"] for d in described["jobs"]] == [job_id]
    assert described["jobs"][0]["container"]["command"] == ["echo", "y"]
    listed = ops["ListJobs"](ctx, {"arrayJobId": job_id, "jobStatus": "PENDING", "maxResults": 1})
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [f"{job_id}:0"]
    listed = ops["ListJobs"](
        ctx,
        {
            "arrayJobId": job_id,
            "jobStatus": "PENDING",
            "maxResults": 1,
            "nextToken": listed["nextToken"],
        },
    )
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [f"{job_id}:1"]
    assert "nextToken" not in listed
    assert ops["CancelJob"](ctx, {"jobId": f"{job_id}:0", "reason": "r"}) == {}
    assert ops["TerminateJob"](ctx, {"jobId": f"{job_id}:1", "reason": "r"}) == {}
    bulk = ops["CancelJobs"](ctx, {"jobs": [job_id, "ghost"], "reason": "r"})
    assert bulk == {"successful": [job_id, "ghost"], "errors": []}
    assert ops["TerminateJobs"](ctx, {"jobs": [], "reason": "r"}) == {
        "successful": [],
        "errors": [],
    }


def test_checks_shared_with_register_job_definition() -> None:
    assert jobs.check_retry_strategy(None) is None
    assert jobs.check_retry_strategy({"attempts": 2}) == RetryStrategy(attempts=2)
    assert jobs.check_timeout(None) is None
    assert jobs.check_timeout({"attemptDurationSeconds": 61}) == 61
    rejected(lambda: jobs.check_timeout({"attemptDurationSeconds": 1}), "60")


# -- consumable resources -----------------------------------------------------------------------


def a_resource(ctx: ServiceContext, name: str, total: int = 4, **fields: Any) -> Any:
    return consumable_resources.create_consumable_resource(
        ctx, consumable_resource_name=name, total_quantity=total, **fields
    )


def test_create_and_describe_consumable_resource(ctx: ServiceContext) -> None:
    created = consumable_resources.create_consumable_resource(
        ctx, consumable_resource_name="licence"
    )
    assert created.arn == "arn:aws:batch:us-east-1:000000000000:consumable-resource/licence"
    assert (created.resource_type, created.total_quantity, created.created_at) == (
        "REPLENISHABLE",
        0,
        NOW,
    )
    for reference in ("licence", created.arn):
        found = consumable_resources.describe_consumable_resource(
            ctx, consumable_resource=reference
        )
        assert found.name == "licence"
    rejected(
        lambda: consumable_resources.describe_consumable_resource(ctx, consumable_resource="ghost"),
        "ConsumableResource ghost not found.",
    )
    rejected(
        lambda: consumable_resources.describe_consumable_resource(
            ctx, consumable_resource=IDENTITY.arn("job-queue", "licence")
        ),
        "is not a consumable-resource ARN",
    )
    detail = resources_wire.consumable_resource_detail(created)
    assert detail["availableQuantity"] == 0
    assert _shape_errors("DescribeConsumableResourceResponse", detail) == []


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"consumable_resource_name": "a b"}, "name"),
        ({"consumable_resource_name": "x" * 129}, "name"),
        ({"consumable_resource_name": "ok", "total_quantity": -1}, "totalQuantity"),
        ({"consumable_resource_name": "ok", "resource_type": "SOMETIMES"}, "resourceType"),
        ({"consumable_resource_name": "ok", "tags": {"aws:x": "1"}}, "aws:"),
    ],
)
def test_create_consumable_resource_validation(
    ctx: ServiceContext, fields: dict[str, Any], fragment: str
) -> None:
    rejected(lambda: consumable_resources.create_consumable_resource(ctx, **fields), fragment)
    assert ctx.store.list_consumable_resources() == []


def test_duplicate_consumable_resource_is_rejected(ctx: ServiceContext) -> None:
    a_resource(ctx, "dup")
    rejected(lambda: a_resource(ctx, "dup", total=9), "already exists", "dup")
    found = ctx.store.get_consumable_resource("dup")
    assert found is not None
    assert found.total_quantity == 4


def test_list_consumable_resources_filters_and_pages(ctx: ServiceContext) -> None:
    for name in ("GPU-a", "gpu-b", "gpu-c", "disk", "gpux"):
        a_resource(ctx, name)

    def names(**kwargs: Any) -> tuple[list[str], str | None]:
        found, token = consumable_resources.list_consumable_resources(ctx, **kwargs)
        return [r.name for r in found], token

    assert names()[0] == ["GPU-a", "disk", "gpu-b", "gpu-c", "gpux"]
    prefix = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["gpu-*"]}]
    assert names(filters=prefix) == (["GPU-a", "gpu-b", "gpu-c"], None)
    exact = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["DISK"]}]
    assert names(filters=exact)[0] == ["disk"]
    first, token = names(filters=prefix, max_results=2)
    assert first == ["GPU-a", "gpu-b"]
    assert token is not None
    assert names(filters=prefix, max_results=2, next_token=token) == (["gpu-c"], None)
    rejected(lambda: names(filters=[{"name": "NAME", "values": ["x"]}]), "NAME")
    rejected(lambda: names(max_results=101), "maxResults")
    rejected(lambda: names(next_token="garbage"), "nextToken")


def test_update_consumable_resource_operations(ctx: ServiceContext) -> None:
    a_resource(ctx, "tokens", total=5)

    def update(**kwargs: Any) -> int:
        return int(
            consumable_resources.update_consumable_resource(
                ctx, consumable_resource="tokens", **kwargs
            ).total_quantity
        )

    assert update(operation="ADD", quantity=3) == 8
    assert update(operation="REMOVE", quantity=8) == 0
    assert update(operation="SET", quantity=7) == 7
    assert update(quantity=2) == 2  # SET when no operation is given
    assert update() == 2  # nothing asked, nothing changed
    rejected(lambda: update(operation="REMOVE", quantity=3), "Cannot remove 3", "2")
    rejected(lambda: update(operation="SET", quantity=-1), "negative")
    rejected(lambda: update(operation="MULTIPLY", quantity=2), "SET, ADD, REMOVE")
    rejected(lambda: update(operation="ADD"), "quantity is required")
    rejected(
        lambda: consumable_resources.update_consumable_resource(
            ctx, consumable_resource="ghost", operation="ADD", quantity=1
        ),
        "ghost not found",
    )
    assert update() == 2


def test_update_client_token_makes_a_repeat_a_no_op_for_8_hours(
    ctx: ServiceContext, clock: FixedClock
) -> None:
    a_resource(ctx, "tokens", total=1)

    def add(token: str, quantity: int = 2) -> int:
        return int(
            consumable_resources.update_consumable_resource(
                ctx,
                consumable_resource="tokens",
                operation="ADD",
                quantity=quantity,
                client_token=token,
            ).total_quantity
        )

    assert add("t1") == 3
    assert add("t1") == 3  # the first answer again, nothing added
    assert add("t2") == 5
    rejected(lambda: add("t1", quantity=4), "clientToken t1", "different request")
    clock.now += 8 * 3600 * 1000 - 1
    assert add("t1") == 3
    clock.now += 1
    assert add("t1") == 7  # the token expired: a new request
    found = ctx.store.get_consumable_resource("tokens")
    assert found is not None
    assert found.total_quantity == 7
    # Another store (another server) has its own memory of tokens.
    other = ServiceContext(store=MemoryStore(), clock=clock, identity=IDENTITY)
    a_resource(other, "tokens", total=0)
    assert (
        consumable_resources.update_consumable_resource(
            other, consumable_resource="tokens", operation="ADD", quantity=1, client_token="t2"
        ).total_quantity
        == 1
    )


def test_failed_update_does_not_spend_its_client_token(ctx: ServiceContext) -> None:
    a_resource(ctx, "tokens", total=1)

    def remove(quantity: int) -> Any:
        return consumable_resources.update_consumable_resource(
            ctx,
            consumable_resource="tokens",
            operation="REMOVE",
            quantity=quantity,
            client_token="same",
        )

    rejected(lambda: remove(2), "Cannot remove")
    consumable_resources.update_consumable_resource(
        ctx, consumable_resource="tokens", operation="ADD", quantity=1
    )
    assert remove(2).total_quantity == 0


def test_delete_consumable_resource(ctx: ServiceContext) -> None:
    created = a_resource(ctx, "gone")
    consumable_resources.delete_consumable_resource(ctx, consumable_resource=created.arn)
    assert ctx.store.get_consumable_resource("gone") is None
    rejected(
        lambda: consumable_resources.delete_consumable_resource(ctx, consumable_resource="gone"),
        "ConsumableResource gone not found.",
    )


def test_consumable_resource_tags(ctx: ServiceContext) -> None:
    created = a_resource(ctx, "tagged", tags={"a": "1"})
    tags.tag_resource(ctx, resource_arn=created.arn, tags={"b": "2"})
    assert tags.list_tags_for_resource(ctx, resource_arn=created.arn) == {"a": "1", "b": "2"}
    tags.untag_resource(ctx, resource_arn=created.arn, tag_keys=["a"])
    assert tags.list_tags_for_resource(ctx, resource_arn=created.arn) == {"b": "2"}
    found = ctx.store.get_consumable_resource("tagged")
    assert found is not None
    assert (found.tags, found.total_quantity) == ({"b": "2"}, 4)
    rejected(
        lambda: tags.list_tags_for_resource(
            ctx, resource_arn=IDENTITY.arn("consumable-resource", "ghost")
        ),
        "not found",
    )


def _register(ctx: ServiceContext, properties: Any, **fields: Any) -> JobDefinition:
    return job_definitions.register_job_definition(
        ctx,
        job_definition_name="needs",
        type="container",
        container_properties={"image": "busybox", "command": ["true"]},
        consumable_resource_properties=properties,
        **fields,
    )


@pytest.mark.parametrize(
    ("entries", "fragments"),
    [
        ([{"consumableResource": "ghost", "quantity": 1}], ("ConsumableResource ghost",)),
        ([{"consumableResource": "r0", "quantity": 0}], ("quantity of r0", "at least 1")),
        ([{"consumableResource": "r0"}], ("quantity of r0",)),
        ([{"quantity": 1}], ("consumableResource",)),
        (
            [{"consumableResource": f"r{i}", "quantity": 1} for i in range(6)],
            ("at most 5",),
        ),
        (
            [
                {"consumableResource": "r0", "quantity": 1},
                {"consumableResource": IDENTITY.arn("consumable-resource", "r0"), "quantity": 2},
            ],
            ("r0 more than once",),
        ),
    ],
)
def test_register_checks_consumable_resource_properties(
    ctx: ServiceContext, entries: list[dict[str, Any]], fragments: tuple[str, ...]
) -> None:
    for i in range(6):
        a_resource(ctx, f"r{i}")
    rejected(lambda: _register(ctx, {"consumableResourceList": entries}), *fragments)
    assert ctx.store.latest_job_definition("needs", active_only=False) is None


def test_register_checks_node_range_consumable_resources(ctx: ServiceContext) -> None:
    rejected(
        lambda: job_definitions.register_job_definition(
            ctx,
            job_definition_name="mnp",
            type="multinode",
            node_properties={
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {
                        "targetNodes": "0:",
                        "container": {"image": "busybox", "command": ["true"]},
                        "consumableResourceProperties": {
                            "consumableResourceList": [
                                {"consumableResource": "ghost", "quantity": 1}
                            ]
                        },
                    }
                ],
            },
        ),
        "ConsumableResource ghost not found.",
    )


def test_submit_resolves_consumable_resources(ctx: ServiceContext) -> None:
    lic = a_resource(ctx, "lic")
    a_resource(ctx, "db")
    properties = {
        "consumableResourceList": [
            {"consumableResource": lic.arn, "quantity": 2},
            {"consumableResource": "db", "quantity": 1},
        ]
    }
    _register(ctx, properties)
    job = submit(ctx, job_definition="needs")
    assert job.consumable_resources == (
        ConsumableRequirement("lic", 2),
        ConsumableRequirement("db", 1),
    )
    # DescribeJobs shows the list as it was given.
    assert jobs_wire.job_detail(job, IDENTITY)["consumableResourceProperties"] == properties
    override = {"consumableResourceList": [{"consumableResource": "db", "quantity": 3}]}
    replaced = submit(ctx, job_definition="needs", consumable_resource_properties_override=override)
    assert replaced.consumable_resources == (ConsumableRequirement("db", 3),)
    assert replaced.extra["consumableResourceProperties"] == override
    cleared = submit(
        ctx,
        job_definition="needs",
        consumable_resource_properties_override={"consumableResourceList": []},
    )
    assert cleared.consumable_resources == ()
    parent = submit(ctx, job_definition="needs", array_properties={"size": 2})
    child = ctx.store.get_job(f"{parent.job_id}:1")
    assert child is not None
    assert child.consumable_resources == job.consumable_resources
    assert submit(ctx).consumable_resources == ()


def test_submit_rejects_unknown_or_invalid_consumable_resources(ctx: ServiceContext) -> None:
    a_resource(ctx, "lic")
    _register(ctx, {"consumableResourceList": [{"consumableResource": "lic", "quantity": 1}]})
    consumable_resources.delete_consumable_resource(ctx, consumable_resource="lic")
    rejected(lambda: submit(ctx, job_definition="needs"), "ConsumableResource lic not found.")
    bad = {"consumableResourceList": [{"consumableResource": "nope", "quantity": 1}]}
    rejected(
        lambda: submit(ctx, consumable_resource_properties_override=bad),
        "ConsumableResource nope not found.",
    )
    zero = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 0}]}
    rejected(
        lambda: submit(ctx, consumable_resource_properties_override=zero),
        "consumableResourcePropertiesOverride",
        "at least 1",
    )


def test_list_jobs_by_consumable_resource(ctx: ServiceContext) -> None:
    a_resource(ctx, "lic")
    a_resource(ctx, "other")
    needs = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 2}]}
    first = submit(ctx, job_name="Alpha-1", consumable_resource_properties_override=needs)
    second = submit(ctx, job_name="alpha-2", consumable_resource_properties_override=needs)
    third = submit(ctx, job_name="beta", consumable_resource_properties_override=needs)
    submit(ctx, job_name="alpha-free")
    set_status(ctx, second.job_id, S.RUNNABLE)

    def listed(**kwargs: Any) -> tuple[list[str], str | None]:
        found = jobs.list_jobs_by_consumable_resource(ctx, consumable_resource="lic", **kwargs)
        assert found.resource.name == "lic"
        return [j.job_id for j in found.jobs], found.next_token

    assert listed() == ([third.job_id, second.job_id, first.job_id], None)
    by_name = [{"name": "JOB_NAME", "values": ["ALPHA*"]}]
    assert listed(filters=by_name)[0] == [second.job_id, first.job_id]
    exact = [{"name": "JOB_NAME", "values": ["BETA"]}]
    assert listed(filters=exact)[0] == [third.job_id]
    runnable = [{"name": "JOB_STATUS", "values": ["RUNNABLE"]}]
    assert listed(filters=runnable)[0] == [second.job_id]
    assert listed(filters=runnable + exact)[0] == []
    page, token = listed(max_results=2)
    assert page == [third.job_id, second.job_id]
    assert listed(max_results=2, next_token=token) == ([first.job_id], None)
    found = jobs.list_jobs_by_consumable_resource(
        ctx, consumable_resource=IDENTITY.arn("consumable-resource", "other")
    )
    assert found.jobs == ()
    rejected(lambda: listed(filters=[{"name": "SHARE", "values": ["x"]}]), "JOB_NAME, JOB_STATUS")
    rejected(lambda: listed(filters=[{"name": "JOB_STATUS", "values": ["DONE"]}]), "DONE")
    rejected(lambda: listed(filters=[{"name": "JOB_NAME", "values": []}]), "exactly one value")
    rejected(lambda: listed(filters=runnable + runnable), "only once")
    rejected(lambda: listed(max_results=0), "maxResults")
    rejected(
        lambda: jobs.list_jobs_by_consumable_resource(ctx, consumable_resource="ghost"),
        "ghost not found",
    )

    response = jobs_wire.JOB_OPERATIONS["ListJobsByConsumableResource"](
        ctx, {"consumableResource": "lic", "maxResults": 1}
    )
    (summary,) = response["jobs"]
    assert summary == {
        "jobArn": IDENTITY.arn("job", third.job_id),
        "jobQueueArn": IDENTITY.arn("job-queue", "q"),
        "jobName": "beta",
        "jobDefinitionArn": IDENTITY.arn("job-definition", "render:1"),
        "jobStatus": "SUBMITTED",
        "quantity": 2,
        "createdAt": NOW,
        "consumableResourceProperties": needs,
    }
    assert "nextToken" in response
    assert _shape_errors("ListJobsByConsumableResourceSummary", summary) == []


# -- GetJobQueueSnapshot ------------------------------------------------------------------------


def test_fifo_queue_snapshot(ctx: ServiceContext, clock: FixedClock) -> None:
    first, second, third, cancelled, pending = (submit(ctx) for _ in range(5))
    retried = Attempt(task_id="r" * 32, compute_environment="ce", placed_at=NOW, stopped_at=NOW + 7)
    for job in (third, second, cancelled):
        set_status(ctx, job.job_id, S.RUNNABLE)
    set_status(ctx, first.job_id, S.RUNNABLE, attempts=(retried,))
    jobs.cancel_job(ctx, job_id=cancelled.job_id, reason="no")
    set_status(ctx, pending.job_id, S.PENDING)
    running = submit(ctx)
    set_status(ctx, running.job_id, S.RUNNING)
    clock.now = NOW + 100

    snapshot = queue_snapshot.get_job_queue_snapshot(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert [(j.job_id, j.earliest_time_at_position) for j in snapshot.front_of_queue] == [
        (first.job_id, NOW + 7),
        (second.job_id, NOW),
        (third.job_id, NOW),
    ]
    assert snapshot.vcpus_in_use == 2.0  # the running job's definition asks for 2 vCPUs
    assert snapshot.fairshare is None
    assert snapshot.last_updated_at == NOW + 100

    response = jobs_wire.JOB_OPERATIONS["GetJobQueueSnapshot"](ctx, {"jobQueue": "q"})
    assert response["frontOfQueue"]["jobs"][0] == {
        "jobArn": IDENTITY.arn("job", first.job_id),
        "earliestTimeAtPosition": NOW + 7,
    }
    assert response["queueUtilization"] == {
        "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}],
        "lastUpdatedAt": NOW + 100,
    }
    assert _shape_errors("GetJobQueueSnapshotResponse", response) == []
    rejected(
        lambda: queue_snapshot.get_job_queue_snapshot(ctx, job_queue="ghost"),
        "JobQueue ghost not found.",
    )


def test_fair_share_queue_snapshot(ctx: ServiceContext) -> None:
    def share_job(share: str, status: JobStatus) -> Job:
        job = submit(ctx, job_queue="fair", share_identifier=share)
        return set_status(ctx, job.job_id, status)

    a1 = share_job("a", S.RUNNABLE)
    a2 = share_job("a", S.RUNNABLE)
    b1 = share_job("b", S.RUNNABLE)
    share_job("a", S.RUNNING)
    share_job("c", S.STARTING)
    share_job("c", S.RUNNING)
    submit(ctx)  # another queue's job is not in this snapshot

    snapshot = queue_snapshot.get_job_queue_snapshot(ctx, job_queue="fair")
    # Share a holds 2 vCPUs and b none, so b goes first; then b and a tie and a's are earlier.
    assert [j.job_id for j in snapshot.front_of_queue] == [b1.job_id, a1.job_id, a2.job_id]
    assert snapshot.vcpus_in_use == 6.0
    assert snapshot.fairshare == queue_snapshot.FairshareUtilization(
        active_share_count=2,
        top_capacity_utilization=(
            queue_snapshot.ShareCapacity("c", 4.0),
            queue_snapshot.ShareCapacity("a", 2.0),
        ),
    )
    response = jobs_wire.job_queue_snapshot(snapshot, IDENTITY)
    assert response["queueUtilization"]["fairshareUtilization"] == {
        "activeShareCount": 2,
        "topCapacityUtilization": [
            {"shareIdentifier": "c", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 4.0}]},
            {"shareIdentifier": "a", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}]},
        ],
    }
    assert _shape_errors("GetJobQueueSnapshotResponse", response) == []


def _every_kind_of_job(ctx: ServiceContext) -> list[Job]:
    """Jobs covering what the renderers branch on: containers, arrays, multinode, ECS, EKS,
    dependencies, tags, a share, ended and running attempts."""
    define(
        ctx,
        "mnp",
        type="multinode",
        node_properties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": {"image": "busybox"}}],
        },
    )
    define(
        ctx,
        "ecs",
        ecs_properties={"taskProperties": [{"containers": [{"name": "a", "image": "busybox"}]}]},
    )
    define(ctx, "eks", eks_properties={"podProperties": {"containers": [{"image": "busybox"}]}})
    plain = submit(ctx, tags={"k": "v"}, parameters={"msg": "x"})
    array = submit(ctx, array_properties={"size": 3}, depends_on=[{"jobId": plain.job_id}])
    ended = Attempt(
        task_id="a" * 32,
        compute_environment="ce",
        placed_at=NOW,
        started_at=NOW + 1,
        stopped_at=NOW + 2,
        exit_code=3,
        reason="boom",
        status_reason="Essential container in task exited",
        log_stream_name="render/default/" + "a" * 32,
    )
    failed = set_status(
        ctx, submit(ctx).job_id, S.FAILED, attempts=(ended,), started_at=NOW, stopped_at=NOW + 2
    )
    running = set_status(
        ctx,
        submit(ctx, job_definition="legacy").job_id,
        S.RUNNING,
        attempts=(replace(ended, stopped_at=None, exit_code=None, reason=None),),
        started_at=NOW,
    )
    return [
        plain,
        array,
        *ctx.store.get_jobs([f"{array.job_id}:0"]),
        failed,
        running,
        submit(ctx, job_definition="mnp"),
        submit(ctx, job_definition="ecs"),
        submit(ctx, job_definition="eks"),
        submit(ctx, job_queue="fair", share_identifier="A1", scheduling_priority_override=9),
    ]


@pytest.mark.parametrize("operation", sorted(jobs_wire.RENDERED_AS_MODELLED))
def test_fast_path_operations_render_exactly_their_output_shape(
    ctx: ServiceContext, operation: str
) -> None:
    """The edge sends these handlers' results without shape_output: they must already be it."""
    every = _every_kind_of_job(ctx)
    requests: dict[str, list[dict[str, Any]]] = {
        "SubmitJob": [{"jobName": "j", "jobQueue": "q", "jobDefinition": "render"}],
        "DescribeJobs": [{"jobs": [job.job_id for job in every]}],
        "ListJobs": [
            {"jobQueue": "q"},
            {"jobQueue": "fair"},
            {"arrayJobId": every[1].job_id},
            {"jobQueue": "q", "jobStatus": "FAILED"},
        ],
    }
    output_shape = service_model().operation_model(operation).output_shape
    assert output_shape is not None
    for request in requests[operation]:
        result = jobs_wire.JOB_OPERATIONS[operation](ctx, request)
        assert shape_output(output_shape, result) == result
        assert None not in list(_walk(result))
        assert _shape_errors(output_shape.name, result) == []
