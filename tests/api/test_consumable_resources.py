"""Consumable resources through boto3 against a real server: the operations, their errors, and
jobs taking and returning resources as they run (process runtime)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    submit_job,
    unique,
    wait_for,
    wait_status,
)

# -- helpers -----------------------------------------------------------------------------


def client_error(call: Any, **kwargs: Any) -> str:
    """Run a call expected to fail with ClientException (HTTP 400); return its message."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "ClientException", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Message"])


def create_resource(batch: Any, total: int, **extra: Any) -> str:
    name = unique("cr")
    batch.create_consumable_resource(consumableResourceName=name, totalQuantity=total, **extra)
    return name


def resource(batch: Any, name: str) -> dict[str, Any]:
    return dict(batch.describe_consumable_resource(consumableResource=name))


def needs(*requirements: tuple[str, int]) -> dict[str, Any]:
    return {
        "consumableResourceList": [
            {"consumableResource": name, "quantity": quantity} for name, quantity in requirements
        ]
    }


def hold_until(flag: Path) -> list[str]:
    """A command that runs until `flag` exists: the test decides when the job ends."""
    return ["sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.02; done"]


def wait_valid(batch: Any, ce: str, queue: str) -> None:
    wait_for(
        lambda: (
            batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0][
                "status"
            ]
            == "VALID"
        ),
        what=f"CE {ce} VALID",
    )
    wait_for(
        lambda: batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["status"] == "VALID",
        what=f"queue {queue} VALID",
    )


@pytest.fixture(scope="module")
def queue(server: ServerProcess) -> Iterator[str]:
    """One FIFO queue on one process compute environment for the whole module (the shared
    server holds at most 50 compute environments); removed at the end."""
    batch = server.client()
    ce, name = unique("ce"), unique("q")
    batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 4, "subnets": []},
    )
    wait_for(
        lambda: (
            batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0][
                "status"
            ]
            == "VALID"
        ),
        what="CE VALID",
    )
    batch.create_job_queue(
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    wait_valid(batch, ce, name)
    yield name
    batch.update_job_queue(jobQueue=name, state="DISABLED")
    wait_valid(batch, ce, name)
    batch.delete_job_queue(jobQueue=name)
    wait_for(
        lambda: not batch.describe_job_queues(jobQueues=[name])["jobQueues"], what="queue deleted"
    )
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    wait_for(
        lambda: (
            batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0][
                "status"
            ]
            == "VALID"
        ),
        what="CE VALID",
    )
    batch.delete_compute_environment(computeEnvironment=ce)


# -- the resource operations -------------------------------------------------------------


def test_create_describe_list_and_delete(batch: Any) -> None:
    name = unique("cr")
    created = batch.create_consumable_resource(
        consumableResourceName=name,
        totalQuantity=5,
        resourceType="NON_REPLENISHABLE",
        tags={"team": "render"},
    )
    arn = f"arn:aws:batch:us-east-1:000000000000:consumable-resource/{name}"
    assert (created["consumableResourceName"], created["consumableResourceArn"]) == (name, arn)
    for reference in (name, arn):
        described = resource(batch, reference)
        described.pop("ResponseMetadata")
        created_at = described.pop("createdAt")
        assert described == {
            "consumableResourceName": name,
            "consumableResourceArn": arn,
            "totalQuantity": 5,
            "inUseQuantity": 0,
            "availableQuantity": 5,
            "resourceType": "NON_REPLENISHABLE",
            "tags": {"team": "render"},
        }
        assert created_at > 1_600_000_000_000  # epoch milliseconds
    listed = batch.list_consumable_resources(
        filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": [name]}]
    )["consumableResources"]
    assert listed == [
        {
            "consumableResourceArn": arn,
            "consumableResourceName": name,
            "totalQuantity": 5,
            "inUseQuantity": 0,
            "resourceType": "NON_REPLENISHABLE",
        }
    ]
    batch.delete_consumable_resource(consumableResource=arn)
    assert client_error(batch.describe_consumable_resource, consumableResource=name) == (
        f"ConsumableResource {name} not found."
    )
    assert "not found" in client_error(batch.delete_consumable_resource, consumableResource=name)


def test_create_defaults_and_validation(batch: Any) -> None:
    name = unique("cr")
    batch.create_consumable_resource(consumableResourceName=name)
    described = resource(batch, name)
    assert (described["resourceType"], described["totalQuantity"]) == ("REPLENISHABLE", 0)
    assert "already exists" in client_error(
        batch.create_consumable_resource, consumableResourceName=name, totalQuantity=3
    )
    assert resource(batch, name)["totalQuantity"] == 0
    for bad in (
        {"consumableResourceName": "has space"},
        {"consumableResourceName": "x" * 129},
        {"consumableResourceName": unique("cr"), "totalQuantity": -1},
        {"consumableResourceName": unique("cr"), "resourceType": "SOMETIMES"},
    ):
        client_error(batch.create_consumable_resource, **bad)
    assert "is not a consumable-resource ARN" in client_error(
        batch.describe_consumable_resource,
        consumableResource="arn:aws:batch:us-east-1:000000000000:job-queue/x",
    )


def test_update_set_add_remove_and_client_token(batch: Any) -> None:
    name = create_resource(batch, total=5)

    def update(**kwargs: Any) -> int:
        return int(
            batch.update_consumable_resource(consumableResource=name, **kwargs)["totalQuantity"]
        )

    assert update(operation="ADD", quantity=2) == 7
    assert update(operation="REMOVE", quantity=3) == 4
    assert update(operation="SET", quantity=10) == 10
    message = client_error(
        batch.update_consumable_resource, consumableResource=name, operation="REMOVE", quantity=11
    )
    assert "Cannot remove 11" in message
    client_error(
        batch.update_consumable_resource, consumableResource=name, operation="SET", quantity=-1
    )
    client_error(
        batch.update_consumable_resource, consumableResource=name, operation="DOUBLE", quantity=1
    )
    token = str(uuid.uuid4())
    assert update(operation="ADD", quantity=1, clientToken=token) == 11
    # The same request again is the same request: it succeeds and adds nothing.
    assert update(operation="ADD", quantity=1, clientToken=token) == 11
    assert resource(batch, name)["totalQuantity"] == 11
    assert "different request" in client_error(
        batch.update_consumable_resource,
        consumableResource=name,
        operation="ADD",
        quantity=5,
        clientToken=token,
    )
    assert "not found" in client_error(
        batch.update_consumable_resource,
        consumableResource=unique("ghost"),
        operation="ADD",
        quantity=1,
    )


def test_tags_on_a_consumable_resource(batch: Any) -> None:
    name = create_resource(batch, total=1, tags={"a": "1"})
    arn = resource(batch, name)["consumableResourceArn"]
    batch.tag_resource(resourceArn=arn, tags={"b": "2"})
    assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1", "b": "2"}
    batch.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}
    described = resource(batch, name)
    assert (described["tags"], described["totalQuantity"]) == ({"b": "2"}, 1)


def test_list_filters_and_pages(batch: Any) -> None:
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        batch.create_consumable_resource(consumableResourceName=name, totalQuantity=1)
    # Case-insensitive, and a trailing * matches a prefix.
    by_prefix = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": [prefix.upper() + "*"]}]
    first = batch.list_consumable_resources(filters=by_prefix, maxResults=2)
    assert [r["consumableResourceName"] for r in first["consumableResources"]] == names[:2]
    second = batch.list_consumable_resources(
        filters=by_prefix, maxResults=2, nextToken=first["nextToken"]
    )
    assert [r["consumableResourceName"] for r in second["consumableResources"]] == names[2:]
    assert "nextToken" not in second
    pages = batch.get_paginator("list_consumable_resources").paginate(
        filters=by_prefix, PaginationConfig={"PageSize": 1}
    )
    assert [r["consumableResourceName"] for p in pages for r in p["consumableResources"]] == names
    exact = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": [names[1].upper()]}]
    listed = batch.list_consumable_resources(filters=exact)["consumableResources"]
    assert [r["consumableResourceName"] for r in listed] == [names[1]]
    client_error(batch.list_consumable_resources, filters=[{"name": "NAME", "values": ["x"]}])
    client_error(batch.list_consumable_resources, maxResults=101)


# -- job definitions and submissions -----------------------------------------------------


def test_definitions_and_submissions_name_existing_resources(batch: Any, queue: str) -> None:
    name = create_resource(batch, total=1)
    ghost = unique("ghost")
    assert f"ConsumableResource {ghost} not found." in client_error(
        batch.register_job_definition,
        jobDefinitionName=unique("jd"),
        type="container",
        containerProperties={"image": "busybox", "command": ["true"]},
        consumableResourceProperties=needs((ghost, 1)),
    )
    assert "at least 1" in client_error(
        batch.register_job_definition,
        jobDefinitionName=unique("jd"),
        type="container",
        containerProperties={"image": "busybox", "command": ["true"]},
        consumableResourceProperties=needs((name, 0)),
    )
    assert "at most 5" in client_error(
        batch.register_job_definition,
        jobDefinitionName=unique("jd"),
        type="container",
        containerProperties={"image": "busybox", "command": ["true"]},
        consumableResourceProperties=needs(*[(name, 1)] * 6),
    )
    definition = define_job(batch, ["true"], consumableResourceProperties=needs((name, 1)))
    assert f"ConsumableResource {ghost} not found." in client_error(
        batch.submit_job,
        jobName="j",
        jobQueue=queue,
        jobDefinition=definition,
        consumableResourcePropertiesOverride=needs((ghost, 1)),
    )
    described = batch.describe_job_definitions(jobDefinitions=[definition])["jobDefinitions"]
    assert described[0]["consumableResourceProperties"] == needs((name, 1))


def test_replenishable_resource_is_taken_while_running_and_returned(
    batch: Any, queue: str, tmp_path: Path
) -> None:
    name = create_resource(batch, total=2)
    arn = resource(batch, name)["consumableResourceArn"]
    flag = tmp_path / "done"
    definition = define_job(batch, hold_until(flag), consumableResourceProperties=needs((arn, 1)))
    job_id = submit_job(batch, queue, definition)
    try:
        wait_status(batch, job_id, ("RUNNING",))
        held = resource(batch, name)
        assert (held["totalQuantity"], held["inUseQuantity"], held["availableQuantity"]) == (
            2,
            1,
            1,
        )
        (listed,) = batch.list_jobs_by_consumable_resource(consumableResource=name)["jobs"]
        assert listed["jobArn"].endswith(f":job/{job_id}")
        assert listed["jobStatus"] == "RUNNING"
        assert listed["quantity"] == 1
        assert listed["jobQueueArn"].endswith(f":job-queue/{queue}")
        assert listed["consumableResourceProperties"] == needs((arn, 1))
        assert "startedAt" in listed
    finally:
        flag.touch()
    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"
    returned = resource(batch, name)
    assert (returned["totalQuantity"], returned["inUseQuantity"]) == (2, 0)
    assert returned["availableQuantity"] == 2


def test_non_replenishable_resource_is_used_up(batch: Any, queue: str) -> None:
    name = create_resource(batch, total=3, resourceType="NON_REPLENISHABLE")
    definition = define_job(batch, ["true"], consumableResourceProperties=needs((name, 2)))
    assert wait_status(batch, submit_job(batch, queue, definition))["status"] == "SUCCEEDED"
    spent = resource(batch, name)
    assert (spent["totalQuantity"], spent["inUseQuantity"], spent["availableQuantity"]) == (
        1,
        0,
        1,
    )


def test_job_waits_runnable_until_the_resource_is_available(
    batch: Any, queue: str, tmp_path: Path
) -> None:
    name = create_resource(batch, total=1)
    flag = tmp_path / "done"
    holder = submit_job(
        batch,
        queue,
        define_job(batch, hold_until(flag)),
        consumableResourcePropertiesOverride=needs((name, 1)),
    )
    waiter = submit_job(
        batch, queue, define_job(batch, ["true"], consumableResourceProperties=needs((name, 1)))
    )
    try:
        wait_status(batch, holder, ("RUNNING",))
        wait_status(batch, waiter, ("RUNNABLE",))
        # A job of another queue starting and ending proves the scheduler went round since.
        probe = submit_job(batch, "default", define_job(batch, ["true"]))
        assert wait_status(batch, probe)["status"] == "SUCCEEDED"
        assert describe_job(batch, waiter)["status"] == "RUNNABLE"
        # More of the resource: the waiter starts while the holder still holds its unit.
        batch.update_consumable_resource(consumableResource=name, operation="ADD", quantity=1)
        started = wait_status(batch, waiter)
        assert started["status"] == "SUCCEEDED"
        assert describe_job(batch, holder)["status"] == "RUNNING"
        assert resource(batch, name)["inUseQuantity"] == 1
    finally:
        flag.touch()
        batch.cancel_job(jobId=waiter, reason="cleanup")
    wait_status(batch, holder)
    assert resource(batch, name)["inUseQuantity"] == 0


def test_a_resource_can_be_deleted_while_a_job_holds_it(
    batch: Any, queue: str, tmp_path: Path
) -> None:
    name = create_resource(batch, total=1)
    flag = tmp_path / "done"
    job_id = submit_job(
        batch,
        queue,
        define_job(batch, hold_until(flag), consumableResourceProperties=needs((name, 1))),
    )
    try:
        wait_status(batch, job_id, ("RUNNING",))
        batch.delete_consumable_resource(consumableResource=name)
    finally:
        flag.touch()
    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"
    # Re-created under the same name, it starts afresh.
    batch.create_consumable_resource(consumableResourceName=name, totalQuantity=4)
    again = resource(batch, name)
    assert (again["totalQuantity"], again["inUseQuantity"]) == (4, 0)


def test_list_jobs_by_consumable_resource(batch: Any, queue: str) -> None:
    name = create_resource(batch, total=10)
    other = create_resource(batch, total=10)
    definition = define_job(batch, ["true"], consumableResourceProperties=needs((name, 2)))
    prefix = unique("render")
    first = submit_job(batch, queue, definition, jobName=f"{prefix}-1")
    second = submit_job(batch, queue, definition, jobName=f"{prefix}-2")
    moved = submit_job(
        batch,
        queue,
        definition,
        jobName=f"{prefix}-3",
        consumableResourcePropertiesOverride=needs((other, 3)),
    )
    failing = submit_job(
        batch,
        queue,
        define_job(batch, ["false"]),
        jobName=unique("fail"),
        consumableResourcePropertiesOverride=needs((name, 1)),
    )
    for job_id in (first, second, moved, failing):
        wait_status(batch, job_id)

    def listed(resource_name: str, **kwargs: Any) -> list[str]:
        response = batch.list_jobs_by_consumable_resource(
            consumableResource=resource_name, **kwargs
        )
        return [j["jobArn"].rsplit("/", 1)[1] for j in response["jobs"]]

    assert listed(name) == [failing, second, first]
    assert listed(other) == [moved]
    by_name = [{"name": "JOB_NAME", "values": [prefix.upper() + "*"]}]
    assert listed(name, filters=by_name) == [second, first]
    exact = [{"name": "JOB_NAME", "values": [f"{prefix}-1"]}]
    assert listed(name, filters=exact) == [first]
    failed = [{"name": "JOB_STATUS", "values": ["FAILED"]}]
    assert listed(name, filters=failed) == [failing]
    page = batch.list_jobs_by_consumable_resource(consumableResource=name, maxResults=2)
    assert len(page["jobs"]) == 2
    rest = batch.list_jobs_by_consumable_resource(
        consumableResource=name, maxResults=2, nextToken=page["nextToken"]
    )
    assert [j["jobArn"].rsplit("/", 1)[1] for j in rest["jobs"]] == [first]
    assert "nextToken" not in rest
    summary = batch.list_jobs_by_consumable_resource(consumableResource=other)["jobs"][0]
    assert summary["quantity"] == 3
    assert summary["jobName"] == f"{prefix}-3"
    assert summary["jobStatus"] == "SUCCEEDED"
    assert summary["jobDefinitionArn"] == definition
    assert summary["consumableResourceProperties"] == needs((other, 3))
    client_error(
        batch.list_jobs_by_consumable_resource,
        consumableResource=name,
        filters=[{"name": "JOB_STATUS", "values": ["DONE"]}],
    )
    assert "not found" in client_error(
        batch.list_jobs_by_consumable_resource, consumableResource=unique("ghost")
    )
