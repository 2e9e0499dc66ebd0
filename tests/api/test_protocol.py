"""The wire protocol against a real server: routing, validation, errors, output shapes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from batchyard.api.operations import BATCH_UNSUPPORTED as UNSUPPORTED
from batchyard.api.operations import served
from tests.fixtures import ServerProcess


def _model_operations() -> list[str]:
    return list(botocore.session.get_session().get_service_model("batch").operation_names)


def test_every_model_operation_is_implemented_or_listed_unsupported() -> None:
    model_ops = set(_model_operations())
    handled = served("batch") | UNSUPPORTED
    assert model_ops - handled == set(), "operations of the model nobody answers"
    assert handled - model_ops == set(), "operations we answer that the model does not have"
    assert served("batch").isdisjoint(UNSUPPORTED)


@pytest.mark.parametrize("operation", sorted(UNSUPPORTED))
def test_unsupported_operation_names_itself(server: ServerProcess, operation: str) -> None:
    session = botocore.session.get_session()
    model = session.get_service_model("batch").operation_model(operation)
    status, body = _raw(
        server, model.http["method"], model.http["requestUri"].replace("{resourceArn}", "x"), b"{}"
    )
    assert status == 400
    # An unsupported operation is rejected before validation, naming the operation.
    assert body["__type"] == "ClientException"
    assert body["errorTypeHeader"] == "ClientException"
    assert operation in body["message"]


def _raw(server: ServerProcess, method: str, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path,
        data=body if method != "GET" else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read())
        answer["errorTypeHeader"] = error.headers["x-amzn-ErrorType"]
        return error.code, answer


def test_unsupported_operation_through_boto3(batch: Any) -> None:
    with pytest.raises(ClientError) as caught:
        batch.describe_service_environments()
    assert caught.value.response["Error"]["Code"] == "ClientException"
    assert "DescribeServiceEnvironments" in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_required_member_is_a_client_exception(server: ServerProcess) -> None:
    status, body = _raw(server, "POST", "/v1/createjobqueue", b'{"priority": 1}')
    assert status == 400
    assert body["__type"] == "ClientException"
    assert "jobQueueName" in body["message"]
    assert "must not be null" in body["message"]


def test_wrong_type_enum_and_unknown_member(server: ServerProcess) -> None:
    status, body = _raw(
        server,
        "POST",
        "/v1/createjobqueue",
        json.dumps({"jobQueueName": "q", "priority": "high", "state": "ON", "color": 1}).encode(),
    )
    assert status == 400
    message = body["message"]
    assert "3 validation errors" in message
    assert "'priority'" in message
    assert "integer" in message
    assert "enum value set: [ENABLED, DISABLED]" in message
    assert "Unknown parameter 'color'" in message


def test_malformed_json_body(server: ServerProcess) -> None:
    status, body = _raw(server, "POST", "/v1/describejobqueues", b"{not json")
    assert status == 400
    assert "not valid JSON" in body["message"]


def test_unknown_path(server: ServerProcess) -> None:
    status, body = _raw(server, "POST", "/v1/nosuchoperation", b"{}")
    assert status == 400
    assert "No AWS Batch operation" in body["message"]


def test_health(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ok"


def test_boto3_client_side_validation_still_applies(batch: Any) -> None:
    with pytest.raises(ParamValidationError):
        batch.create_job_queue(priority=1)


def test_responses_omit_absent_members(batch: Any) -> None:
    queues = batch.describe_job_queues(jobQueues=["default"])["jobQueues"]
    assert len(queues) == 1
    queue = queues[0]
    assert "schedulingPolicyArn" not in queue  # absent, not null
    assert queue["computeEnvironmentOrder"][0]["computeEnvironment"].endswith(
        ":compute-environment/default"
    )
