"""The fuzz tier's generator itself: its valid-shaped inputs are what botocore's validator
accepts, its invalid ones what it refuses, its raw requests what botocore would send, and it
reaches the hostile values it is there for."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, Phase, assume, find, given, seed, settings

from tests.fuzz.harness import SEED, plausible_requests
from tests.fuzz.strategies import (
    MAX_URI_VALUE,
    MAX_URL,
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


def _uri_values(operation: Operation, params: dict[str, Any]) -> list[Any]:
    shape = operation.model.input_shape
    members = shape.members if shape is not None else {}
    values: list[Any] = []
    for name, value in params.items():
        if name in members and members[name].serialization.get("location") in (
            "uri",
            "querystring",
        ):
            values.extend(value if isinstance(value, list) else [value])
    return values


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
        # A URI value is cut at MAX_URI_VALUE characters and a query at MAX_URL, for httpx to
        # send the request.
        values = _uri_values(operation, params)
        assume(all(len(str(value)) <= MAX_URI_VALUE for value in values))
        assume(
            sum(len(quote(str(v), safe="", errors="surrogatepass")) + 16 for v in values)
            < MAX_URL - 1000
        )
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
        ("CancelJob", lambda p: "jobId" not in p),
        ("CancelJob", lambda p: isinstance(p.get("jobId"), int)),
        ("CancelJob", lambda p: isinstance(p.get("jobId"), Deep)),
        ("CancelJob", lambda p: "unknownMember" in p),
        ("CancelJob", lambda p: "reason" in p and p["reason"] is None),
        ("CreateJobQueue", lambda p: isinstance(p.get("computeEnvironmentOrder"), str)),
    ],
)
def test_invalid_inputs_reach_each_kind_of_change(operation: str, condition: Any) -> None:
    found = find(REQUESTS.invalid(_operation(operation)), condition, settings=FIND)
    assert _errors(_operation(operation), found) != ""


@pytest.mark.parametrize(
    ("operation", "condition"),
    [
        ("CreateJobQueue", lambda p: p.get("priority") == 2**63),
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


@pytest.mark.parametrize(
    ("structure", "member", "condition"),
    [
        ("ResourceRequirement", "value", lambda v: v == "inf"),
        ("ResourceRequirement", "value", lambda v: v == "1e308"),
        ("ResourceRequirement", "value", lambda v: v == "0.0001"),
        ("SubmitJobRequest", "jobName", lambda v: v.endswith("\n")),
        ("SubmitJobRequest", "jobQueue", lambda v: v.startswith("q1") and v != "q1"),
        ("ContainerOverrides", "vcpus", lambda v: v == 2**63),
    ],
)
def test_leaves_reach_hostile_values(structure: str, member: str, condition: Any) -> None:
    found = find(REQUESTS.member("batch", structure, member), condition, settings=FIND)
    assert condition(found)
