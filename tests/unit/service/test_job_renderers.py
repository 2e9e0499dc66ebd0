"""The wire renderers of jobs (api/jobs_wire.py): JobDetail and JobSummary members, absent
members left out, and the fast-path operations rendering exactly their output shapes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from batchyard.api import jobs_wire
from batchyard.api.operations import OPERATIONS
from batchyard.api.protocol import service_model, shape_output
from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Attempt,
    Job,
    JobStatus,
    RetryStrategy,
)
from batchyard.service import job_properties
from batchyard.service.context import ServiceContext
from tests.unit.service.context import (
    IDENTITY,
    NOW,
    define,
    rejected,
    set_status,
    submit,
    wire,
)
from tests.unit.service.shapes import shape_errors, walk

S = JobStatus


# -- renderers and wire handlers ----------------------------------------------------------------


def test_job_detail_of_a_new_job_omits_absent_members(ctx: ServiceContext) -> None:
    job = submit(ctx, job_definition="legacy")
    detail = jobs_wire.job_detail(job, IDENTITY)
    assert None not in list(walk(detail))
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
    assert shape_errors("JobDetail", detail) == []


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
    assert None not in list(walk(detail))
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
    assert shape_errors("JobDetail", detail) == []


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
    assert shape_errors("JobSummary", summary) == []


def test_wire_handlers(ctx: ServiceContext) -> None:
    job_operations = {
        name for name, op in OPERATIONS.items() if op.handler.__module__ == jobs_wire.__name__
    }
    assert job_operations == {
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

    submitted = wire(
        ctx,
        "SubmitJob",
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
    described = wire(ctx, "DescribeJobs", {"jobs": [job_id, "nope"]})
    assert [d["jobId"] for d in described["jobs"]] == [job_id]
    assert described["jobs"][0]["container"]["command"] == ["echo", "y"]
    listed = wire(ctx, "ListJobs", {"arrayJobId": job_id, "jobStatus": "PENDING", "maxResults": 1})
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [f"{job_id}:0"]
    listed = wire(
        ctx,
        "ListJobs",
        {
            "arrayJobId": job_id,
            "jobStatus": "PENDING",
            "maxResults": 1,
            "nextToken": listed["nextToken"],
        },
    )
    assert [s["jobId"] for s in listed["jobSummaryList"]] == [f"{job_id}:1"]
    assert "nextToken" not in listed
    assert wire(ctx, "CancelJob", {"jobId": f"{job_id}:0", "reason": "r"}) == {}
    assert wire(ctx, "TerminateJob", {"jobId": f"{job_id}:1", "reason": "r"}) == {}
    bulk = wire(ctx, "CancelJobs", {"jobs": [job_id, "ghost"], "reason": "r"})
    assert bulk == {"successful": [job_id, "ghost"], "errors": []}
    assert wire(ctx, "TerminateJobs", {"jobs": [], "reason": "r"}) == {
        "successful": [],
        "errors": [],
    }


def test_checks_shared_with_register_job_definition() -> None:
    assert job_properties.check_retry_strategy(None) is None
    assert job_properties.check_retry_strategy({"attempts": 2}) == RetryStrategy(attempts=2)
    assert job_properties.check_timeout(None) is None
    assert job_properties.check_timeout({"attemptDurationSeconds": 61}) == 61
    rejected(lambda: job_properties.check_timeout({"attemptDurationSeconds": 1}), "60")


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


@pytest.mark.parametrize(
    "operation", sorted(name for name, op in OPERATIONS.items() if op.rendered_as_modelled)
)
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
        result = wire(ctx, operation, request)
        assert shape_output(output_shape, result) == result
        assert None not in list(walk(result))
        assert shape_errors(output_shape.name, result) == []
