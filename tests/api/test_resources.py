"""Resource operations through boto3 against a real server: happy paths and error paths."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import unique, wait_for

ACCOUNT_ARN = "arn:aws:batch:us-east-1:000000000000"


def client_error(call: Any, *args: Any, **kwargs: Any) -> str:
    """Run a call expected to fail with ClientException; return its message."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "ClientException", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Message"])


def make_ce(batch: Any, name: str | None = None, **extra: Any) -> str:
    name = name or unique("ce")
    batch.create_compute_environment(
        computeEnvironmentName=name,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 4, "subnets": ["subnet-1"]},
        **extra,
    )
    wait_valid_ce(batch, name)
    return name


def wait_valid_ce(batch: Any, name: str) -> dict[str, Any]:
    def valid() -> dict[str, Any] | None:
        found = batch.describe_compute_environments(computeEnvironments=[name])
        ce = found["computeEnvironments"][0]
        return ce if ce["status"] == "VALID" else None

    return wait_for(valid, what=f"CE {name} VALID")


def wait_queue_status(batch: Any, name: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        queues = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
        return queues[0] if queues and queues[0]["status"] == status else None

    return wait_for(reached, what=f"queue {name} {status}")


def make_queue(batch: Any, ce: str, name: str | None = None, priority: int = 1) -> str:
    name = name or unique("q")
    batch.create_job_queue(
        jobQueueName=name,
        priority=priority,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    wait_queue_status(batch, name, "VALID")
    return name


# -- embedded defaults -------------------------------------------------------------------


def test_default_compute_environment_and_queue_exist(batch: Any) -> None:
    ce = batch.describe_compute_environments(computeEnvironments=["default"])
    assert ce["computeEnvironments"][0]["status"] == "VALID"
    assert ce["computeEnvironments"][0]["state"] == "ENABLED"
    queue = batch.describe_job_queues(jobQueues=["default"])["jobQueues"][0]
    assert queue["priority"] == 1
    assert queue["status"] == "VALID"
    assert queue["statusReason"] == "JobQueue Healthy"


# -- compute environments ----------------------------------------------------------------


def test_compute_environment_lifecycle(batch: Any) -> None:
    name = unique("ce")
    created = batch.create_compute_environment(
        computeEnvironmentName=name,
        type="MANAGED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 8, "subnets": ["s-1"]},
        tags={"team": "genomics", "batchyard:runtime": "process"},
    )
    assert created["computeEnvironmentArn"] == f"{ACCOUNT_ARN}:compute-environment/{name}"
    ce = wait_valid_ce(batch, name)
    assert ce["statusReason"] == "ComputeEnvironment Healthy"
    assert ce["computeResources"]["maxvCpus"] == 8
    assert ce["tags"]["team"] == "genomics"

    batch.update_compute_environment(
        computeEnvironment=created["computeEnvironmentArn"],
        state="DISABLED",
        computeResources={"maxvCpus": 16},
    )
    ce = wait_valid_ce(batch, name)
    assert ce["state"] == "DISABLED"
    assert ce["computeResources"]["maxvCpus"] == 16

    batch.delete_compute_environment(computeEnvironment=name)
    wait_for(
        lambda: (
            not batch.describe_compute_environments(computeEnvironments=[name])[
                "computeEnvironments"
            ]
        ),
        what="CE deleted",
    )


def test_unmanaged_compute_environment(batch: Any) -> None:
    name = unique("ce")
    batch.create_compute_environment(
        computeEnvironmentName=name, type="UNMANAGED", unmanagedvCpus=2
    )
    ce = wait_valid_ce(batch, name)
    assert ce["type"] == "UNMANAGED"
    assert ce["unmanagedvCpus"] == 2
    assert "computeResources" not in ce


def test_compute_environment_errors(batch: Any) -> None:
    name = make_ce(batch)
    message = client_error(
        batch.create_compute_environment,
        computeEnvironmentName=name,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 4, "subnets": []},
    )
    assert "already exists" in message
    assert name in message

    message = client_error(
        batch.create_compute_environment,
        computeEnvironmentName=unique("ce"),
        type="MANAGED",
        computeResources={"type": "EC2", "minvCpus": 8, "maxvCpus": 4, "subnets": []},
    )
    assert "minvCpus" in message
    assert "maxvCpus" in message

    message = client_error(
        batch.create_compute_environment, computeEnvironmentName="bad name!", type="UNMANAGED"
    )
    assert "bad name!" in message

    message = client_error(
        batch.create_compute_environment,
        computeEnvironmentName=unique("ce"),
        type="UNMANAGED",
        tags={"batchyard:runtime": "kubernetes"},
    )
    assert "batchyard:runtime" in message
    assert "kubernetes" in message

    message = client_error(batch.delete_compute_environment, computeEnvironment=name)
    assert "DISABLED" in message

    message = client_error(batch.update_compute_environment, computeEnvironment="nope-" + name)
    assert "nope-" + name in message


def test_compute_environment_in_use_cannot_be_deleted(batch: Any) -> None:
    ce = make_ce(batch)
    make_queue(batch, ce)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    wait_valid_ce(batch, ce)
    message = client_error(batch.delete_compute_environment, computeEnvironment=ce)
    assert message == "Cannot delete, found existing JobQueue relationship"


def test_describe_compute_environments_pagination(batch: Any) -> None:
    names = sorted(make_ce(batch, unique("pg")) for _ in range(3))
    seen: list[str] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"computeEnvironments": names, "maxResults": 2}
        if token:
            kwargs["nextToken"] = token
        page = batch.describe_compute_environments(**kwargs)
        seen += [ce["computeEnvironmentName"] for ce in page["computeEnvironments"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == names
    message = client_error(batch.describe_compute_environments, nextToken="garbage!!")
    assert "nextToken" in message


# -- job queues --------------------------------------------------------------------------


def test_job_queue_lifecycle(batch: Any) -> None:
    ce = make_ce(batch)
    name = unique("q")
    created = batch.create_job_queue(
        jobQueueName=name,
        priority=10,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        jobStateTimeLimitActions=[
            {
                "reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                "state": "RUNNABLE",
                "maxTimeSeconds": 600,
                "action": "CANCEL",
            }
        ],
        tags={"k": "v"},
    )
    assert created["jobQueueArn"] == f"{ACCOUNT_ARN}:job-queue/{name}"
    queue = wait_queue_status(batch, name, "VALID")
    assert queue["priority"] == 10
    assert queue["jobStateTimeLimitActions"][0]["maxTimeSeconds"] == 600

    batch.update_job_queue(jobQueue=created["jobQueueArn"], priority=20, state="DISABLED")
    queue = wait_queue_status(batch, name, "VALID")
    assert queue["priority"] == 20
    assert queue["state"] == "DISABLED"

    batch.delete_job_queue(jobQueue=name)
    wait_for(lambda: not batch.describe_job_queues(jobQueues=[name])["jobQueues"], what="deleted")


def test_job_queue_errors(batch: Any) -> None:
    ce = make_ce(batch)
    message = client_error(
        batch.create_job_queue,
        jobQueueName=unique("q"),
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "missing-ce"}],
    )
    assert "missing-ce" in message

    orders = [{"order": i, "computeEnvironment": make_ce(batch)} for i in range(4)]
    message = client_error(
        batch.create_job_queue,
        jobQueueName=unique("q"),
        priority=1,
        computeEnvironmentOrder=orders,
    )
    assert "between 1 and 3" in message

    name = make_queue(batch, ce)
    message = client_error(
        batch.create_job_queue,
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    assert "already exists" in message

    message = client_error(batch.delete_job_queue, jobQueue=name)
    assert "DISABLED" in message

    bad_actions: list[tuple[dict[str, Any], str]] = [
        ({"maxTimeSeconds": 10}, "maxTimeSeconds"),
        ({"reason": "UNDETERMINED"}, "UNDETERMINED"),
        ({"state": "PENDING"}, "RUNNABLE"),
        ({"action": "TERMINATE"}, "CANCEL"),
    ]
    for bad, needle in bad_actions:
        action = {
            "reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "state": "RUNNABLE",
            "maxTimeSeconds": 600,
            "action": "CANCEL",
            **bad,
        }
        message = client_error(
            batch.create_job_queue,
            jobQueueName=unique("q"),
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
            jobStateTimeLimitActions=[action],
        )
        assert needle in message

    message = client_error(batch.describe_job_queues, maxResults=1000)
    assert "maxResults" in message


# -- job definitions ---------------------------------------------------------------------


def test_job_definition_revisions_and_filters(batch: Any) -> None:
    name = unique("jd")
    arns = []
    for i in range(3):
        registered = batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "busybox",
                "command": ["echo", str(i)],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "128"},
                ],
            },
            tags={"rev": str(i)},
        )
        assert registered["revision"] == i + 1
        assert registered["jobDefinitionArn"] == f"{ACCOUNT_ARN}:job-definition/{name}:{i + 1}"
        arns.append(registered["jobDefinitionArn"])

    by_name = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    assert [d["revision"] for d in by_name] == [1, 2, 3]
    assert by_name[0]["containerProperties"]["command"] == ["echo", "0"]
    assert all(d["status"] == "ACTIVE" for d in by_name)

    one = batch.describe_job_definitions(jobDefinitions=[f"{name}:2"])["jobDefinitions"]
    assert [d["revision"] for d in one] == [2]
    by_arn = batch.describe_job_definitions(jobDefinitions=[arns[2]])["jobDefinitions"]
    assert [d["revision"] for d in by_arn] == [3]

    batch.deregister_job_definition(jobDefinition=arns[0])
    inactive = batch.describe_job_definitions(jobDefinitionName=name, status="INACTIVE")
    assert [d["revision"] for d in inactive["jobDefinitions"]] == [1]
    active = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
    assert [d["revision"] for d in active["jobDefinitions"]] == [2, 3]

    page = batch.describe_job_definitions(jobDefinitionName=name, maxResults=2)
    assert len(page["jobDefinitions"]) == 2
    assert page["nextToken"]
    rest = batch.describe_job_definitions(
        jobDefinitionName=name, maxResults=2, nextToken=page["nextToken"]
    )
    assert [d["revision"] for d in rest["jobDefinitions"]] == [3]
    assert "nextToken" not in rest


def test_job_definition_kinds(batch: Any) -> None:
    multinode = batch.register_job_definition(
        jobDefinitionName=unique("mnp"),
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:1", "container": {"image": "busybox"}}],
        },
    )
    assert multinode["revision"] == 1
    ecs = batch.register_job_definition(
        jobDefinitionName=unique("ecs"),
        type="container",
        ecsProperties={"taskProperties": [{"containers": [{"name": "main", "image": "busybox"}]}]},
    )
    described = batch.describe_job_definitions(jobDefinitions=[ecs["jobDefinitionArn"]])
    assert (
        described["jobDefinitions"][0]["ecsProperties"]["taskProperties"][0]["containers"][0][
            "name"
        ]
        == "main"
    )


def test_job_definition_errors(batch: Any) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "container"}, "exactly one"),
        (
            {
                "type": "container",
                "containerProperties": {
                    "image": "x",
                    "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "1"}],
                },
            },
            "AWS_BATCH_JOB_ID",
        ),
        (
            {
                "type": "container",
                "containerProperties": {"image": "x"},
                "timeout": {"attemptDurationSeconds": 30},
            },
            "60",
        ),
        (
            {
                "type": "container",
                "containerProperties": {"image": "x"},
                "retryStrategy": {"attempts": 11},
            },
            "attempts",
        ),
        (
            {
                "type": "container",
                "containerProperties": {"image": "x"},
                "retryStrategy": {"evaluateOnExit": [{"onExitCode": "1", "action": "RETRY"}]},
            },
            "RetryAttempts must be provided with retry strategy",
        ),
        (
            {
                "type": "container",
                "containerProperties": {"image": "x"},
                "retryStrategy": {
                    "attempts": 2,
                    "evaluateOnExit": [{"onExitCode": "*1", "action": "RETRY"}],
                },
            },
            "Evaluate on exit condition contains restricted characters",
        ),
        (
            {
                "type": "multinode",
                "nodeProperties": {
                    "numNodes": 3,
                    "mainNode": 0,
                    "nodeRangeProperties": [{"targetNodes": "0:1"}],
                },
            },
            "cover",
        ),
        (
            {
                "type": "container",
                "containerProperties": {
                    "image": "x",
                    "resourceRequirements": [{"type": "MEMORY", "value": "lots"}],
                },
            },
            "lots",
        ),
    ]
    for body, needle in cases:
        message = client_error(
            batch.register_job_definition, jobDefinitionName=unique("bad"), **body
        )
        assert needle in message, (body, message)

    message = client_error(batch.deregister_job_definition, jobDefinition="no-such-def:1")
    assert "no-such-def:1" in message


# -- scheduling policies -----------------------------------------------------------------


def test_scheduling_policy_lifecycle(batch: Any) -> None:
    name = unique("sp")
    created = batch.create_scheduling_policy(
        name=name,
        fairsharePolicy={
            "shareDecaySeconds": 3600,
            "computeReservation": 50,
            "shareDistribution": [
                {"shareIdentifier": "A", "weightFactor": 1.0},
                {"shareIdentifier": "B*", "weightFactor": 0.5},
            ],
        },
        tags={"k": "v"},
    )
    arn = created["arn"]
    assert arn == f"{ACCOUNT_ARN}:scheduling-policy/{name}"
    found = batch.describe_scheduling_policies(arns=[arn])["schedulingPolicies"]
    assert found[0]["fairsharePolicy"]["computeReservation"] == 50
    assert arn in [p["arn"] for p in batch.list_scheduling_policies()["schedulingPolicies"]]

    batch.update_scheduling_policy(arn=arn, fairsharePolicy={"shareDecaySeconds": 60})
    found = batch.describe_scheduling_policies(arns=[arn])["schedulingPolicies"]
    assert found[0]["fairsharePolicy"]["shareDecaySeconds"] == 60

    ce = make_ce(batch)
    queue = unique("fsq")
    batch.create_job_queue(
        jobQueueName=queue,
        priority=1,
        schedulingPolicyArn=arn,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    message = client_error(batch.delete_scheduling_policy, arn=arn)
    assert queue in message

    batch.update_job_queue(jobQueue=queue, state="DISABLED")
    wait_queue_status(batch, queue, "VALID")
    batch.delete_job_queue(jobQueue=queue)
    wait_for(lambda: not batch.describe_job_queues(jobQueues=[queue])["jobQueues"], what="gone")
    batch.delete_scheduling_policy(arn=arn)
    assert batch.describe_scheduling_policies(arns=[arn])["schedulingPolicies"] == []


def test_scheduling_policy_errors(batch: Any) -> None:
    for policy, needle in [
        ({"shareDecaySeconds": 604801}, "shareDecaySeconds"),
        ({"computeReservation": 100}, "computeReservation"),
        ({"shareDistribution": [{"shareIdentifier": "A", "weightFactor": 1000}]}, "weightFactor"),
        (
            {"shareDistribution": [{"shareIdentifier": "UserA*"}, {"shareIdentifier": "UserA1"}]},
            "overlap",
        ),
    ]:
        message = client_error(
            batch.create_scheduling_policy, name=unique("sp"), fairsharePolicy=policy
        )
        assert needle in message


# -- tags --------------------------------------------------------------------------------


def test_tags_on_every_taggable_resource(batch: Any) -> None:
    ce_name = make_ce(batch)
    ce_arn = f"{ACCOUNT_ARN}:compute-environment/{ce_name}"
    queue_arn = f"{ACCOUNT_ARN}:job-queue/{make_queue(batch, ce_name)}"
    definition_arn = batch.register_job_definition(
        jobDefinitionName=unique("jd"),
        type="container",
        containerProperties={"image": "x", "command": ["true"]},
    )["jobDefinitionArn"]
    policy_arn = batch.create_scheduling_policy(name=unique("sp"))["arn"]
    job_arn = batch.submit_job(
        jobName="tagged", jobQueue="default", jobDefinition=definition_arn, tags={"c": "3"}
    )["jobArn"]
    assert batch.list_tags_for_resource(resourceArn=job_arn)["tags"] == {"c": "3"}
    batch.untag_resource(resourceArn=job_arn, tagKeys=["c"])
    for arn in (ce_arn, queue_arn, definition_arn, policy_arn, job_arn):
        batch.tag_resource(resourceArn=arn, tags={"a": "1", "b": "2"})
        assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1", "b": "2"}
        batch.untag_resource(resourceArn=arn, tagKeys=["a"])
        assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}

    message = client_error(
        batch.list_tags_for_resource, resourceArn=f"{ACCOUNT_ARN}:job-queue/missing"
    )
    assert "missing" in message
    message = client_error(batch.tag_resource, resourceArn=ce_arn, tags={"aws:x": "1"})
    assert "aws:" in message
    too_many = {f"k{i}": "v" for i in range(51)}
    message = client_error(batch.tag_resource, resourceArn=ce_arn, tags=too_many)
    assert "50" in message
