"""The fuzz tier's generator itself: its valid-shaped inputs are what botocore's validator
accepts, its invalid ones what it refuses, its raw requests what botocore would send, and it
reaches the hostile values it is there for."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, Phase, assume, find, given, seed, settings

from tests.fuzz.harness import SEED, plausible_requests
from tests.fuzz.strategies import (
    Deep,
    Operation,
    Requests,
    Vocabulary,
    encode_body,
    raw_request,
    served_operations,
)

pytestmark = pytest.mark.fuzz

OPERATIONS = served_operations()
VOCABULARY = Vocabulary(
    {
        "queue": ("q1", "arn:aws:batch:us-east-1:000000000000:job-queue/q1"),
        "environment": ("ce1",),
        "definition": ("jd1", "arn:aws:batch:us-east-1:000000000000:job-definition/jd1:1"),
        "policy": ("arn:aws:batch:us-east-1:000000000000:scheduling-policy/sp1",),
        "resource": ("cr1",),
        "job": ("11111111-1111-1111-1111-111111111111",),
        "log group": ("/aws/batch/job",),
        "log stream": ("jd1/default/abc",),
    }
)
TARGETS = {
    "environment": "ce1",
    "queue": "q1",
    "definition": "jd1",
    "policy": "arn:aws:batch:us-east-1:000000000000:scheduling-policy/sp1",
    "resource": "cr1",
}
REQUESTS = Requests(VOCABULARY, plausible_requests(TARGETS, ["jd1/default/abc"]))
GENERATOR_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _errors(operation: Operation, params: Any) -> str:
    shape = operation.model.input_shape
    assert shape is not None
    report = ParamValidator().validate(params, shape)
    return str(report.generate_report()) if report.has_errors() else ""


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_valid_inputs_pass_botocores_validator(operation: Operation) -> None:
    @GENERATOR_SETTINGS
    @seed(SEED)
    @given(params=REQUESTS.valid(operation))
    def accepted(params: dict[str, Any]) -> None:
        assert _errors(operation, params) == ""

    accepted()


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_invalid_inputs_fail_botocores_validator(operation: Operation) -> None:
    @GENERATOR_SETTINGS
    @seed(SEED)
    @given(params=REQUESTS.invalid(operation))
    def refused(params: Any) -> None:
        assert _errors(operation, params) != "", params

    refused()


def _canonical(body: bytes | str) -> str:
    return json.dumps(json.loads(body or b"{}"), sort_keys=True)


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_raw_requests_are_what_botocore_sends(operation: Operation) -> None:
    serializer = create_serializer(operation.model.metadata["protocol"])

    @GENERATOR_SETTINGS
    @seed(SEED)
    @given(params=REQUESTS.valid(operation))
    def same(params: dict[str, Any]) -> None:
        try:
            sent = serializer.serialize_to_request(params, operation.model)
        except UnicodeEncodeError:
            # botocore cannot put a lone surrogate in a URI; the raw request can, and does.
            assume(False)
        raw = raw_request(operation, params)
        url = urlsplit(raw.path)
        assert raw.method == sent["method"]
        assert url.path == sent["url_path"]
        expected_query = sorted(
            (key, item)
            for key, value in dict(sent["query_string"] or {}).items()
            for item in (value if isinstance(value, list) else [value])
        )
        query = parse_qsl(url.query, keep_blank_values=True, errors="surrogatepass")
        assert sorted(query) == expected_query
        assert _canonical(raw.body) == _canonical(sent["body"])
        headers = dict(raw.headers)
        for name in ("X-Amz-Target", "Content-Type"):
            if name in sent["headers"]:
                assert headers[name] == sent["headers"][name]

    same()


def test_deep_values_are_written_out_in_place() -> None:
    body = encode_body({"jobName": Deep(1000), "tags": Deep(3, "{}")}).decode()
    assert body == ('{"jobName": ' + "[" * 1000 + "]" * 1000 + ', "tags": {"a":{"a":{"a":1}}}}')


def _operation(name: str) -> Operation:
    return next(operation for operation in OPERATIONS if operation.name == name)


FIND = settings(
    max_examples=1500,
    database=None,
    deadline=None,
    derandomize=True,
    phases=[Phase.generate],  # the first example found will do: no shrinking
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize(
    ("operation", "condition"),
    [
        ("SubmitJob", lambda p: "jobName" not in p),
        ("SubmitJob", lambda p: isinstance(p.get("jobName"), int)),
        ("SubmitJob", lambda p: "Deep(" in repr(p)),
        ("SubmitJob", lambda p: "unknownMember" in p),
        ("CreateJobQueue", lambda p: "priority" in p and p["priority"] is None),
    ],
)
def test_invalid_inputs_reach_each_kind_of_change(operation: str, condition: Any) -> None:
    found = find(REQUESTS.invalid(_operation(operation)), condition, settings=FIND)
    assert _errors(_operation(operation), found) != ""


def _requirement_values(params: dict[str, Any]) -> list[Any]:
    overrides = params.get("containerOverrides") or {}
    return [entry.get("value") for entry in overrides.get("resourceRequirements") or []]


@pytest.mark.parametrize(
    ("operation", "condition"),
    [
        ("CreateJobQueue", lambda p: p.get("priority") == 2**63),
        ("SubmitJob", lambda p: "inf" in _requirement_values(p)),
        ("SubmitJob", lambda p: str(p.get("jobName", "")).endswith("\n")),
        ("SubmitJob", lambda p: p.get("jobQueue") == "q1" and p.get("jobDefinition") == "jd1"),
        (
            "RegisterJobDefinition",
            lambda p: "containerProperties" in p and p["type"] == "container",
        ),
        ("UntagResource", lambda p: any("\x00" in key for key in p["tagKeys"])),
    ],
)
def test_valid_inputs_reach_hostile_values(operation: str, condition: Any) -> None:
    found = find(REQUESTS.valid(_operation(operation)), condition, settings=FIND)
    assert _errors(_operation(operation), found) == ""
