"""SubmitJob's resolution of a definition and overrides into the job to run (parameters, Ref::
substitution, resources, retries, timeouts, tags, dependencies), and array jobs."""

from __future__ import annotations

import time
from functools import partial

from batchyard.api import jobs_wire
from batchyard.domain.model import (
    EvaluateOnExit,
    JobStatus,
    Resources,
    RetryStrategy,
)
from batchyard.service import job_queries
from batchyard.service.context import ServiceContext
from batchyard.store.base import JobQuery
from tests.builders import FixedClock
from tests.unit.service.context import IDENTITY, NOW, define, rejected, submit

S = JobStatus


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
        rejected(partial(submit, ctx, job_definition=name), kind, repr(value))
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
        rejected(partial(submit, ctx, job_definition="mnp", node_overrides=overrides), fragment)
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
    children, _ = job_queries.list_jobs(
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
