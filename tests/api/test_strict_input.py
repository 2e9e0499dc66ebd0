"""Strict parsing of numbers and names through boto3 against a real server: every hostile
value is refused with a ClientException naming the field and nothing is stored, and the
values AWS allows still work (docs/validation.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import (
    ServerProcess,
    define_job,
    make_environment,
    submit_job,
    unique,
    wait_status,
)

HOSTILE_NUMBERS = ["inf", "nan", "NaN", "-inf", "1e308", "1_0", "\u0661", " 1", "1 ", "+1", "0x1"]


def refused(call: Any, *fragments: str, **kwargs: Any) -> str:
    """Run a call that must fail with ClientException (HTTP 400); its message."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "ClientException", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = str(error["Message"])
    for fragment in fragments:
        assert fragment in message, message
    return message


def register(batch: Any, *requirements: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return dict(
        batch.register_job_definition(
            jobDefinitionName=extra.pop("name", unique("jd")),
            type="container",
            containerProperties={
                "image": "busybox",
                "command": ["true"],
                "resourceRequirements": [{"type": t, "value": v} for t, v in requirements],
            },
            **extra,
        )
    )


def definition_names(batch: Any, name: str) -> list[int]:
    found = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    return [d["revision"] for d in found]


# -- resourceRequirements in job definitions ----------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize("kind", ["VCPU", "MEMORY", "GPU"])
def test_register_refuses_numbers_that_are_not_plain_decimals(
    batch: Any, kind: str, value: str
) -> None:
    name = unique("jd")
    refused(lambda: register(batch, (kind, value), name=name), kind, repr(value))
    assert definition_names(batch, name) == []


def test_register_refuses_values_outside_aws_ranges(batch: Any) -> None:
    refused(lambda: register(batch, ("VCPU", "0.0001")), "VCPU", "at least 1", "EC2")
    refused(lambda: register(batch, ("VCPU", "0")), "VCPU", "greater than 0")
    refused(lambda: register(batch, ("MEMORY", "9" * 30)), "MEMORY", "2147483647")
    refused(lambda: register(batch, ("MEMORY", "3")), "MEMORY")
    refused(lambda: register(batch, ("GPU", "1.5")), "GPU", "whole number")
    fargate = {"platformCapabilities": ["FARGATE"]}
    refused(
        lambda: register(batch, ("VCPU", "3"), ("MEMORY", "8192"), **fargate),
        "VCPU 3",
        "Fargate",
    )
    refused(
        lambda: register(batch, ("VCPU", "0.25"), ("MEMORY", "4096"), **fargate),
        "MEMORY 4096",
        "VCPU 0.25",
    )
    refused(
        lambda: register(batch, ("VCPU", "1"), ("MEMORY", "2048"), ("GPU", "1"), **fargate),
        "GPU",
        "Fargate",
    )


def test_register_accepts_the_values_aws_allows(batch: Any) -> None:
    assert register(batch, ("VCPU", "1.5"), ("MEMORY", "4"), ("GPU", "0"))["revision"] == 1
    assert register(batch, ("VCPU", "2"), ("MEMORY", "2147483647"))["revision"] == 1
    fargate = {"platformCapabilities": ["FARGATE"]}
    for vcpus, memory in (("0.25", "512"), ("0.5", "4096"), ("16", "122880"), ("32", "249856")):
        registered = register(batch, ("VCPU", vcpus), ("MEMORY", memory), **fargate)
        assert registered["revision"] == 1


def test_legacy_fields_are_range_checked(batch: Any) -> None:
    def legacy(**fields: Any) -> Any:
        return batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={"image": "busybox", **fields},
        )

    refused(lambda: legacy(vcpus=2**31), "vcpus")
    refused(lambda: legacy(memory=2**40), "memory")
    refused(lambda: legacy(vcpus=0), "vcpus")
    assert legacy(vcpus=2, memory=512)["revision"] == 1


def test_ecs_properties_containers_are_checked(batch: Any) -> None:
    def ecs(*values: str, platform: str = "EC2") -> Any:
        return batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            platformCapabilities=[platform],
            ecsProperties={
                "taskProperties": [
                    {
                        "containers": [
                            {
                                "name": f"c{i}",
                                "image": "busybox",
                                "resourceRequirements": [{"type": "VCPU", "value": value}],
                            }
                            for i, value in enumerate(values)
                        ]
                    }
                ]
            },
        )

    refused(lambda: ecs("nan"), "VCPU", "'nan'")
    refused(lambda: ecs("0.25", "0.25"), "at least 1")
    refused(lambda: ecs("0.5", "0.5", "0.5", platform="FARGATE"), "VCPU 1.5", "Fargate")
    assert ecs("0.5", "0.5")["revision"] == 1
    assert ecs("0.25", "0.25", platform="FARGATE")["revision"] == 1


def test_eks_pod_quantities_are_checked(batch: Any) -> None:
    def eks(**quantities: dict[str, str]) -> Any:
        return batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            eksProperties={
                "podProperties": {"containers": [{"image": "busybox", "resources": quantities}]}
            },
        )

    refused(lambda: eks(limits={"cpu": "nan"}), "cpu", "'nan'")
    refused(lambda: eks(limits={"cpu": "0.1"}), "cpu", "multiple of 0.25")
    refused(lambda: eks(requests={"memory": "1e308Mi"}), "memory", "Mi suffix")
    refused(lambda: eks(limits={"memory": "2048Mi"}, requests={"memory": "1024Mi"}), "equal")
    assert eks(limits={"cpu": "1", "memory": "2048Mi"}, requests={"cpu": "250m"})["revision"] == 1


# -- SubmitJob overrides ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def queue(server: ServerProcess) -> str:
    return make_environment(server.client("batch"), max_vcpus=2)[0]


@pytest.mark.parametrize("value", [*HOSTILE_NUMBERS, "0.0001", "0"])
def test_submit_refuses_hostile_vcpu_overrides(batch: Any, queue: str, value: str) -> None:
    definition = define_job(batch, ["true"])
    name = unique("job")
    refused(
        lambda: submit_job(
            batch,
            queue,
            definition,
            jobName=name,
            containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": value}]},
        ),
        "VCPU",
    )
    listed = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    assert listed["jobSummaryList"] == []


def test_submit_refuses_hostile_memory_and_legacy_overrides(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["true"])
    for value in ("inf", "nan", "1e308", "99999999999999999999"):
        refused(
            lambda v=value: submit_job(
                batch,
                queue,
                definition,
                containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": v}]},
            ),
            "MEMORY",
        )
    legacy = batch.register_job_definition(
        jobDefinitionName=unique("jd"),
        type="container",
        containerProperties={"image": "busybox", "command": ["true"], "vcpus": 1},
    )["jobDefinitionArn"]
    refused(lambda: submit_job(batch, queue, legacy, containerOverrides={"vcpus": 0}), "vcpus")
    refused(
        lambda: submit_job(batch, queue, legacy, containerOverrides={"memory": 2**31}), "memory"
    )


def test_submit_refuses_fargate_values_not_allowed(batch: Any, queue: str) -> None:
    fargate = register(batch, ("VCPU", "1"), ("MEMORY", "2048"), platformCapabilities=["FARGATE"])
    overrides = {"resourceRequirements": [{"type": "VCPU", "value": "3"}]}
    refused(
        lambda: submit_job(batch, queue, fargate["jobDefinitionArn"], containerOverrides=overrides),
        "VCPU 3",
        "Fargate",
    )


def test_valid_overrides_still_run(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["true"])
    job_id = submit_job(
        batch,
        queue,
        definition,
        containerOverrides={
            "resourceRequirements": [
                {"type": "VCPU", "value": "1.5"},
                {"type": "MEMORY", "value": "32"},
            ]
        },
    )
    job = wait_status(batch, job_id, ("SUCCEEDED",), timeout=60)
    required = {r["type"]: r["value"] for r in job["container"]["resourceRequirements"]}
    assert required == {"VCPU": "1.5", "MEMORY": "32"}


# -- integers beyond what AWS or the store holds ------------------------------------------------


def test_consumable_quantities_past_64_bits_are_refused(batch: Any) -> None:
    name = unique("cr")
    refused(
        lambda: batch.create_consumable_resource(consumableResourceName=name, totalQuantity=2**63),
        "totalQuantity",
        "9223372036854775807",
    )
    batch.create_consumable_resource(consumableResourceName=name, totalQuantity=2**63 - 1)
    assert batch.describe_consumable_resource(consumableResource=name)["totalQuantity"] == (
        2**63 - 1
    )
    refused(
        lambda: batch.update_consumable_resource(
            consumableResource=name, operation="ADD", quantity=1
        ),
        "9223372036854775807",
    )
    refused(
        lambda: batch.update_consumable_resource(
            consumableResource=name, operation="SET", quantity=2**64
        ),
        "quantity",
    )
    refused(
        lambda: batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={"image": "busybox"},
            consumableResourceProperties={
                "consumableResourceList": [{"consumableResource": name, "quantity": 2**63}]
            },
        ),
        "consumableResourceProperties.consumableResourceList.1.quantity",
    )
    assert batch.describe_consumable_resource(consumableResource=name)["totalQuantity"] == (
        2**63 - 1
    )


def test_integer_members_past_their_width_are_refused(batch: Any, queue: str) -> None:
    refused(
        lambda: batch.create_job_queue(
            jobQueueName=unique("q"),
            priority=2**31,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "nowhere"}],
        ),
        "priority",
        "2147483647",
    )
    definition = define_job(batch, ["true"])
    refused(
        lambda: submit_job(batch, queue, definition, arrayProperties={"size": 2**63}),
        "arrayProperties.size",
    )
    refused(
        lambda: submit_job(batch, queue, definition, timeout={"attemptDurationSeconds": 2**40}),
        "timeout.attemptDurationSeconds",
    )
    refused(lambda: batch.list_jobs(jobQueue=queue, maxResults=2**63), "maxResults")


def test_forged_next_token_past_64_bits_is_refused(batch: Any, queue: str) -> None:
    for position in (2**63, -(2**63) - 1, 10**30):
        raw = json.dumps({"p": position}, separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        refused(lambda t=token: batch.list_jobs(jobQueue=queue, nextToken=t), "nextToken")


# -- text that names a number or a name ---------------------------------------------------------


@pytest.mark.parametrize("value", ["1_0", "\u0661", " 1", "1e3", "99999999999999999999"])
def test_created_at_filters_parse_strictly(batch: Any, queue: str, value: str) -> None:
    refused(
        lambda: batch.list_jobs(
            jobQueue=queue, filters=[{"name": "AFTER_CREATED_AT", "values": [value]}]
        ),
        "AFTER_CREATED_AT",
    )


def test_created_at_filter_still_works(batch: Any, queue: str) -> None:
    found = batch.list_jobs(jobQueue=queue, filters=[{"name": "AFTER_CREATED_AT", "values": ["0"]}])
    assert isinstance(found["jobSummaryList"], list)


@pytest.mark.parametrize("revision", ["\u0661", "\u00b2", "1_0", "99999999999999999999"])
def test_job_definition_revisions_parse_strictly(batch: Any, queue: str, revision: str) -> None:
    definition = define_job(batch, ["true"])
    name = definition.rsplit("/", 1)[1].split(":")[0]
    refused(
        lambda: submit_job(batch, queue, f"{name}:{revision}"),
        "not a valid job definition reference",
    )
    assert submit_job(batch, queue, f"{name}:1")


def test_target_nodes_parse_strictly(batch: Any) -> None:
    def multinode(target_nodes: str) -> Any:
        return batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="multinode",
            nodeProperties={
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {"targetNodes": target_nodes, "container": {"image": "busybox"}}
                ],
            },
        )

    for hostile in ("0:1_0", "\u0660:", " 0:1", "0:+1"):
        refused(lambda t=hostile: multinode(t), "targetNodes")
    assert multinode("0:1")["revision"] == 1


@pytest.mark.parametrize("name", ["name\n", "name\r\n", "na me", "name\u0661"])
def test_names_with_a_trailing_newline_or_other_characters_are_refused(
    batch: Any, queue: str, name: str
) -> None:
    refused(
        lambda: batch.register_job_definition(
            jobDefinitionName=name, type="container", containerProperties={"image": "busybox"}
        ),
        "name",
    )
    refused(
        lambda: batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            computeResources={"type": "EC2", "maxvCpus": 1, "subnets": []},
        ),
        "name",
    )
    refused(lambda: submit_job(batch, queue, define_job(batch, ["true"]), jobName=name), "name")
    assert definition_names(batch, name) == []


# -- item 1 of issue 13, end to end -------------------------------------------------------------


def test_hostile_vcpu_override_cannot_stop_scheduling(tmp_path: Path) -> None:
    """SubmitJob with VCPU inf/nan used to be accepted and stored as null; after a restart the
    job could not be decoded and every dispatcher round failed. Now it is refused, and jobs
    keep running across a restart."""
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        batch = server.client("batch")
        queue = make_environment(batch, max_vcpus=2)[0]
        definition = define_job(batch, ["true"])
        for value in ("inf", "nan", "Infinity", "-nan"):
            refused(
                lambda v=value: submit_job(
                    batch,
                    queue,
                    definition,
                    containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": v}]},
                ),
                "VCPU",
            )
        server.stop()
        server.start()
        batch = server.client("batch")
        job_id = submit_job(batch, queue, definition)
        assert wait_status(batch, job_id, ("SUCCEEDED",), timeout=60)["status"] == "SUCCEEDED"
    finally:
        server.stop()
