"""Requests the fuzz tier found failing, minimised, each kept as it was sent.

Each must be answered with a success or a 4xx in AWS's error shape, and leave the server
healthy. New ones go here with the seed that found them.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures import ServerProcess
from tests.fuzz.harness import check_response, send
from tests.fuzz.strategies import LOGS_CONTENT_TYPE, LOGS_TARGET_PREFIX, RawRequest

pytestmark = pytest.mark.fuzz

JSON = (("Content-Type", "application/json"),)


def answered(server: ServerProcess, request: RawRequest) -> httpx.Response:
    """Send `request`; assert the answer is a success or an AWS-shaped 4xx and the server
    still answers /health."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = send(http, request)
        check_response(
            f"{request.method} {request.path}",
            response.status_code,
            response.headers,
            response.content,
        )
        assert http.get("/health").status_code == 200
    return response


def test_a_uri_label_holding_a_newline_reaches_the_operation(server: ServerProcess) -> None:
    # Seed 20261208, TagResource: Starlette's catch-all route did not match a path holding a
    # percent-encoded newline and answered 404 "Not Found" as plain text.
    arn = "arn:aws:batch:us-east-1:000000000000:compute-environment/kept-ce-b0a1cf24"
    response = answered(
        server,
        RawRequest(
            "POST",
            "/v1/tags/%0A" + arn.replace(":", "%3A").replace("/", "%2F"),
            b'{"tags": {"a": "1"}}',
            JSON,
        ),
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "ClientException"


def test_a_method_no_operation_takes_is_an_aws_error(server: ServerProcess) -> None:
    # A method outside the routes' list was answered 405 "Method Not Allowed" as plain text.
    response = answered(server, RawRequest("OPTIONS", "/v1/describejobs", b"", JSON))
    assert response.status_code == 400
    assert "OPTIONS" in response.json()["message"]


NESTED_1000 = b"[" * 1000 + b"]" * 1000


def test_a_member_nested_a_thousand_deep_is_refused(server: ServerProcess) -> None:
    # Seed 20261208, SubmitJob (and 13 other operations): describing the bad value in the
    # validation message raised RecursionError, answered as a 500 ServerException.
    response = answered(
        server,
        RawRequest(
            "POST",
            "/v1/submitjob",
            b'{"jobName": ' + NESTED_1000 + b', "jobQueue": "q", "jobDefinition": "jd"}',
            JSON,
        ),
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "ClientException"


def test_a_logs_member_nested_a_thousand_deep_is_refused(server: ServerProcess) -> None:
    # Seed 20261208, FilterLogEvents and DescribeLogGroups: the same RecursionError, answered
    # as a 500 ServiceUnavailableException.
    response = answered(
        server,
        RawRequest(
            "POST",
            "/",
            b'{"logGroupName": ' + NESTED_1000 + b"}",
            (
                ("X-Amz-Target", LOGS_TARGET_PREFIX + "FilterLogEvents"),
                ("Content-Type", LOGS_CONTENT_TYPE),
            ),
        ),
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "InvalidParameterException"
