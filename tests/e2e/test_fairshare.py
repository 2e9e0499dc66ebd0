"""Fair-share scheduling and GetJobQueueSnapshot end to end: boto3 against a real server running
jobs as local processes on a one-vCPU compute environment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import (
    ServerProcess,
    define_job,
    submit_job,
    unique,
    wait_for,
    wait_status,
)

FIFO_SHARE_MESSAGE = (
    "Job with shareIdentifier or schedulingPriority can onlybe submitted to job queue with "
    "fair share scheduling policy."
)


def client_error(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "ClientException", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Message"])


def front_of_queue(batch: Any, queue: str) -> list[str]:
    snapshot = batch.get_job_queue_snapshot(jobQueue=queue)
    return [j["jobArn"].rsplit("/", 1)[1] for j in snapshot["frontOfQueue"]["jobs"]]


@dataclass(frozen=True)
class Environment:
    ce: str
    fair: str  # fair-share queue
    fifo: str  # FIFO queue on the same one-vCPU compute environment
    policy_arn: str


def _status(batch: Any, kind: str, name: str) -> str | None:
    if kind == "ce":
        found = batch.describe_compute_environments(computeEnvironments=[name])
        items = found["computeEnvironments"]
    else:
        items = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    return str(items[0]["status"]) if items else None


def _has_status(batch: Any, kind: str, name: str, status: str | None) -> bool:
    """Whether the compute environment or queue is in `status` (None: it is gone)."""
    return _status(batch, kind, name) == status


@pytest.fixture(scope="module")
def environment(server: ServerProcess) -> Iterator[Environment]:
    """One compute environment with maxvCpus=1 (one job at a time, so start order is exact),
    a fair-share queue and a FIFO queue on it; removed at the end of the module."""
    batch = server.client()
    ce, fair, fifo = unique("ce"), unique("fair"), unique("fifo")
    batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 1, "subnets": []},
    )
    wait_for(lambda: _status(batch, "ce", ce) == "VALID", what="CE VALID")
    policy_arn = batch.create_scheduling_policy(
        name=unique("fsp"),
        fairsharePolicy={
            "shareDecaySeconds": 600,
            "shareDistribution": [
                # Share a counts a thousandth of what the others do: it gets far more.
                {"shareIdentifier": "a", "weightFactor": 0.001},
                {"shareIdentifier": "b", "weightFactor": 1.0},
            ],
        },
    )["arn"]
    for name, priority, policy in ((fair, 10, policy_arn), (fifo, 5, None)):
        batch.create_job_queue(
            jobQueueName=name,
            priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
            **({"schedulingPolicyArn": policy} if policy else {}),
        )
    for name in (fair, fifo):
        wait_for(partial(_has_status, batch, "queue", name, "VALID"), what="queue VALID")
    yield Environment(ce=ce, fair=fair, fifo=fifo, policy_arn=policy_arn)
    for name in (fair, fifo):
        batch.update_job_queue(jobQueue=name, state="DISABLED")
    for name in (fair, fifo):
        wait_for(partial(_has_status, batch, "queue", name, "VALID"), what="queue VALID")
        batch.delete_job_queue(jobQueue=name)
    for name in (fair, fifo):
        wait_for(partial(_has_status, batch, "queue", name, None), what="queue deleted")
    batch.delete_scheduling_policy(arn=policy_arn)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    wait_for(lambda: _status(batch, "ce", ce) == "VALID", what="CE VALID")
    batch.delete_compute_environment(computeEnvironment=ce)


# -- shareIdentifier rules ---------------------------------------------------------------


def test_fair_share_queue_requires_a_share_identifier(batch: Any, environment: Environment) -> None:
    definition = define_job(batch, ["true"])
    message = client_error(
        batch.submit_job, jobName="j", jobQueue=environment.fair, jobDefinition=definition
    )
    assert "shareIdentifier" in message
    # A share of its own: the usage it leaves must not weigh on the other tests' shares.
    job_id = submit_job(batch, environment.fair, definition, shareIdentifier="solo")
    job = wait_status(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["shareIdentifier"] == "solo"


def test_fifo_queue_rejects_share_identifier_and_priority(
    batch: Any, environment: Environment
) -> None:
    definition = define_job(batch, ["true"])
    for extra in ({"shareIdentifier": "a"}, {"schedulingPriorityOverride": 5}):
        message = client_error(
            batch.submit_job,
            jobName="j",
            jobQueue=environment.fifo,
            jobDefinition=definition,
            **extra,
        )
        assert message == FIFO_SHARE_MESSAGE


def test_snapshot_of_an_unknown_queue(batch: Any) -> None:
    ghost = unique("ghost")
    assert client_error(batch.get_job_queue_snapshot, jobQueue=ghost) == (
        f"JobQueue {ghost} not found."
    )


# -- GetJobQueueSnapshot against the order jobs really start in ---------------------------


def test_snapshot_order_is_the_start_order(batch: Any, environment: Environment) -> None:
    blocker = submit_job(
        batch, environment.fair, define_job(batch, ["sleep", "300"]), shareIdentifier="z"
    )
    quick = define_job(batch, ["sleep", "0.05"])
    waiting: list[str] = []

    def share_job(share: str, priority: int | None = None) -> str:
        extra = {"schedulingPriorityOverride": priority} if priority is not None else {}
        job_id = submit_job(batch, environment.fair, quick, shareIdentifier=share, **extra)
        waiting.append(job_id)
        return job_id

    try:
        wait_status(batch, blocker, ("RUNNING",))
        # Submission order b1, a-p1, a-p5, a-p9, c1. With every share at zero usage, b1 goes
        # first (earliest); then a (earlier head than c) with its highest priority first; a
        # counts a thousandth, so c1 comes next and then the rest of a.
        b1 = share_job("b")
        a_low, a_mid, a_high = share_job("a", 1), share_job("a", 5), share_job("a", 9)
        c1 = share_job("c")
        created = {j: wait_status(batch, j, ("RUNNABLE",))["createdAt"] for j in waiting}

        snapshot = batch.get_job_queue_snapshot(jobQueue=environment.fair)
        front = snapshot["frontOfQueue"]
        expected = [b1, a_high, c1, a_mid, a_low]
        label = {b1: "b1", a_high: "a-p9", c1: "c1", a_mid: "a-p5", a_low: "a-p1"}
        assert [label[j["jobArn"].rsplit("/", 1)[1]] for j in front["jobs"]] == [
            label[j] for j in expected
        ]
        assert [j["earliestTimeAtPosition"] for j in front["jobs"]] == [
            created[j] for j in expected
        ]
        assert front["lastUpdatedAt"] >= max(created.values())
        utilization = snapshot["queueUtilization"]
        assert utilization["totalCapacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 1.0}]
        assert utilization["fairshareUtilization"] == {
            "activeShareCount": 1,
            "topCapacityUtilization": [
                {
                    "shareIdentifier": "z",
                    "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 1.0}],
                }
            ],
        }

        batch.terminate_job(jobId=blocker, reason="release the compute environment")
        finished = {j: wait_status(batch, j) for j in waiting}
    finally:
        for job_id in [blocker, *waiting]:
            batch.terminate_job(jobId=job_id, reason="cleanup")
    assert all(job["status"] == "SUCCEEDED" for job in finished.values())
    started = sorted(waiting, key=lambda j: finished[j]["startedAt"])
    assert [label[j] for j in started] == [label[j] for j in expected]
    # One vCPU: each job started after the one before it stopped.
    for before, after in pairwise(started):
        assert finished[before]["stoppedAt"] <= finished[after]["startedAt"]
    wait_status(batch, blocker)
    empty = batch.get_job_queue_snapshot(jobQueue=environment.fair)
    assert empty["frontOfQueue"]["jobs"] == []
    assert empty["queueUtilization"]["totalCapacityUsage"] == [
        {"capacityUnit": "VCPU", "quantity": 0.0}
    ]
    assert empty["queueUtilization"]["fairshareUtilization"] == {
        "activeShareCount": 0,
        "topCapacityUtilization": [],
    }


def test_fifo_snapshot_is_submission_order(batch: Any, environment: Environment) -> None:
    blocker = submit_job(
        batch, environment.fair, define_job(batch, ["sleep", "300"]), shareIdentifier="z"
    )
    queued: list[str] = []
    try:
        wait_status(batch, blocker, ("RUNNING",))
        definition = define_job(batch, ["true"])
        queued = [submit_job(batch, environment.fifo, definition) for _ in range(4)]
        for job_id in queued:
            wait_status(batch, job_id, ("RUNNABLE",))
        assert front_of_queue(batch, environment.fifo) == queued
        snapshot = batch.get_job_queue_snapshot(jobQueue=environment.fifo)
        utilization = snapshot["queueUtilization"]
        assert utilization["totalCapacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 0.0}]
        assert "fairshareUtilization" not in utilization
        # A cancelled job leaves the front of the queue; the others keep their order.
        batch.cancel_job(jobId=queued[1], reason="not needed")
        wait_status(batch, queued[1])
        assert front_of_queue(batch, environment.fifo) == [queued[0], *queued[2:]]
    finally:
        for job_id in queued:
            batch.cancel_job(jobId=job_id, reason="cleanup")
        for job_id in queued:
            wait_status(batch, job_id)
        batch.terminate_job(jobId=blocker, reason="cleanup")
        wait_status(batch, blocker)
