"""Request limits against a real server: body caps (declared and chunked), JSON nesting, header
and body deadlines, clients that hang up mid-body, and the memory a huge body may cost."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from batchyard.api import limits
from tests.fixtures import ServerProcess, define_job, unique, wait_for

KIB = 1024
MIB = 1024 * KIB
LOGS_TARGET = "Logs_20140328."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: its log and its memory are measured."""
    proc = ServerProcess(tmp_path_factory.mktemp("limits") / "data", "--stop-timeout", "2")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def definition(server: ServerProcess) -> str:
    return define_job(server.client("batch"), ["true"])


class Log:
    """The server's log output written after a point."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.start = len(server.output())

    def since(self) -> str:
        return self.server.output()[self.start :]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KIB
    raise AssertionError(f"no VmRSS for pid {pid}")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        body += chunk
    return status, headers, body


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def submit_body(queue: str, definition: str, size: int, name: str | None = None) -> bytes:
    """A valid SubmitJob body of exactly `size` bytes (padded in a parameter)."""
    document: dict[str, Any] = {
        "jobName": name or unique("limits"),
        "jobQueue": queue,
        "jobDefinition": definition,
        "parameters": {"pad": ""},
    }
    bare = len(json.dumps(document, separators=(",", ":")))
    document["parameters"]["pad"] = "x" * (size - bare)
    body = json.dumps(document, separators=(",", ":")).encode()
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 4 * KIB) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_aws_error(response: httpx.Response, status: int, code: str, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-ErrorType"] == code
    payload = response.json()
    assert payload["__type"] == code
    assert text in payload["message"]


# -- body caps -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_submit_job_body_exactly_at_the_cap_is_accepted(
    server: ServerProcess, definition: str, chunked: bool
) -> None:
    cap = limits.body_cap("SubmitJob")
    assert cap == 30 * KIB
    body = submit_body("default", definition, cap)
    content = chunks(body) if chunked else body
    response = httpx.post(f"{server.url}/v1/submitjob", content=content, timeout=30)
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    jobs = server.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert jobs[0]["parameters"]["pad"].startswith("xxx")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_submit_job_body_one_byte_past_the_cap_is_413(
    server: ServerProcess, definition: str, chunked: bool
) -> None:
    name = unique("toolarge")
    body = submit_body("default", definition, limits.body_cap("SubmitJob") + 1, name)
    content = chunks(body) if chunked else body
    response = httpx.post(f"{server.url}/v1/submitjob", content=content, timeout=30)
    assert_aws_error(response, 413, "ClientException", "Job size must be at most 30 KiB")
    if not chunked:
        # Refused on its Content-Length, unread: the connection closes rather than read it.
        assert response.headers["connection"] == "close"
    batch = server.client("batch")
    listed = batch.list_jobs(jobQueue="default", filters=[{"name": "JOB_NAME", "values": [name]}])[
        "jobSummaryList"
    ]
    assert listed == []


def test_register_job_definition_past_24_kib_through_boto3(server: ServerProcess) -> None:
    batch = server.client("batch")
    with pytest.raises(ClientError) as caught:
        batch.register_job_definition(
            jobDefinitionName=unique("big"),
            type="container",
            containerProperties={"image": "busybox", "command": ["echo", "x" * 25 * KIB]},
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Code"] == "ClientException"
    assert "Job definition size must be at most 24 KiB, got 26 KiB" in error["Error"]["Message"]


def test_submit_job_past_30_kib_through_boto3(server: ServerProcess, definition: str) -> None:
    batch = server.client("batch")
    with pytest.raises(batch.exceptions.ClientException) as caught:
        batch.submit_job(
            jobName=unique("big"),
            jobQueue="default",
            jobDefinition=definition,
            parameters={"p": "x" * 40 * KIB},
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "got 41 KiB" in caught.value.response["Error"]["Message"]
    # The connection was closed after the refusal; the client carries on with a new one.
    assert batch.describe_job_queues(jobQueues=["default"])["jobQueues"]


def test_logs_operation_past_its_cap_through_boto3(server: ServerProcess) -> None:
    logs = server.client("logs")
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(logGroupName="/aws/batch/job", filterPattern="x" * 70 * KIB)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Code"] == "InvalidParameterException"
    assert "FilterLogEvents request size must be at most 64 KiB" in error["Error"]["Message"]


def _post_until_refused(
    server: ServerProcess, head: bytes, piece: bytes, total: int
) -> tuple[int, bytes | None]:
    """Send head, then pieces up to `total` bytes until the server stops reading (the send
    fails); the bytes sent, and the response if one could still be read."""
    sent = 0
    with connect(server) as sock:
        sock.sendall(head)
        try:
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        try:
            response = sock.recv(65536)
        except OSError:
            response = None
    return sent, response


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_300_mb_body_is_not_read_into_memory(server: ServerProcess, chunked: bool) -> None:
    total = 300 * MIB
    assert server.process is not None
    before = rss_bytes(server.process.pid)
    started = time.monotonic()
    if chunked:
        head = b"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"%x\r\n" % MIB + b"x" * MIB + b"\r\n"
        sent, _ = _post_until_refused(server, head, piece, total)
    else:
        head = b"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total
        with connect(server) as sock:
            sock.sendall(head)
            # Refused on its Content-Length, before any of the body was sent.
            status, headers, body = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        assert b"got 307200 KiB" in body
        sent, _ = _post_until_refused(server, head, b"x" * MIB, total)
    grown = rss_bytes(server.process.pid) - before
    # The server stopped reading: the client could not send it all.
    assert sent < total / 2, f"the server read {sent / MIB:.0f} MiB"
    assert grown < 50 * MIB, f"server RSS grew by {grown / MIB:.1f} MiB"
    assert time.monotonic() - started < 60
    assert server.client("batch").describe_job_queues(jobQueues=["default"])["jobQueues"]


# -- JSON nesting ----------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("path", ["/v1/submitjob", "/v1/describejobs", "/v1/createjobqueue"])
def test_1000_deep_json_for_batch_is_a_client_exception(server: ServerProcess, path: str) -> None:
    log = Log(server)
    response = httpx.post(
        f"{server.url}{path}", content=b'{"jobs": ' + _nested(1000) + b"}", timeout=30
    )
    assert_aws_error(response, 400, "ClientException", "nests JSON deeper than 32 levels")
    assert "Traceback" not in log.since()


@pytest.mark.parametrize("operation", ["GetLogEvents", "FilterLogEvents", "DescribeLogGroups"])
def test_1000_deep_json_for_logs_is_invalid_parameter(
    server: ServerProcess, operation: str
) -> None:
    log = Log(server)
    response = httpx.post(
        f"{server.url}/",
        content=b'{"logGroupName": ' + _nested(1000) + b"}",
        headers={
            "X-Amz-Target": LOGS_TARGET + operation,
            "Content-Type": "application/x-amz-json-1.1",
        },
        timeout=30,
    )
    assert_aws_error(response, 400, "InvalidParameterException", "nests JSON deeper than 32")
    assert "Traceback" not in log.since()


def test_nesting_at_the_limit_reaches_validation(server: ServerProcess) -> None:
    # 32 levels with the outer object: the model's validation answers, not the depth limit.
    body = b'{"jobs": ' + _nested(limits.MAX_JSON_DEPTH - 1) + b"}"
    response = httpx.post(f"{server.url}/v1/describejobs", content=body, timeout=30)
    assert_aws_error(response, 400, "ClientException", "validation error")
    # Brackets inside strings do not nest.
    jobs = json.dumps({"jobs": ["[" * 1000, "{" * 1000]}).encode()
    response = httpx.post(f"{server.url}/v1/describejobs", content=jobs, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["jobs"] == []


# -- slow and broken clients -----------------------------------------------------------------


def test_slow_headers_are_dropped_within_the_header_timeout(server: ServerProcess) -> None:
    timeout = limits.HEADER_TIMEOUT_SECONDS
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/describejobs HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.5)
        response = b""
        # A slowloris: one header byte every half second, never the end of the headers.
        while time.monotonic() - started < timeout + 20:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"X")
                except OSError:
                    break
                continue
            except OSError:
                break
            if not data:
                break
            response += data
        elapsed = time.monotonic() - started
    assert timeout - 0.5 <= elapsed <= timeout + 15, f"dropped after {elapsed:.1f}s"
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert b"x-amzn-ErrorType: ClientException" in response
    assert b'"__type":"ClientException"' in response
    assert server.client("batch").describe_job_queues(jobQueues=["default"])["jobQueues"]


def test_a_silent_connection_is_closed_within_the_header_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        assert sock.recv(1024) == b""  # closed, with nothing to answer
    elapsed = time.monotonic() - started
    timeout = limits.HEADER_TIMEOUT_SECONDS
    assert timeout - 0.5 <= elapsed <= timeout + 15, f"closed after {elapsed:.1f}s"


def test_headers_past_their_cap_are_431(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/describejobs HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sock.sendall(b"y" * (limits.MAX_HEADER_BYTES + KIB))
        status, headers, body = read_response(sock)
    assert status == 431
    assert headers["x-amzn-errortype"] == "ClientException"
    assert json.loads(body)["__type"] == "ClientException"


def test_a_slow_body_is_refused_after_the_body_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/describejobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        status, headers, body = read_response(sock)
    elapsed = time.monotonic() - started
    timeout = limits.BODY_TIMEOUT_SECONDS
    assert timeout - 0.5 <= elapsed <= timeout + 15, f"refused after {elapsed:.1f}s"
    assert status == 408
    assert headers["connection"] == "close"
    assert "did not arrive within" in json.loads(body)["message"]


def test_a_client_hanging_up_mid_body_is_no_error(server: ServerProcess, definition: str) -> None:
    log = Log(server)
    name = unique("hangup")
    body = submit_body("default", definition, 2 * KIB, name)
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body) + 100)
        )
        sock.sendall(body)  # and never the last 100 bytes
    wait_for(
        lambda: "connection closed before the end of the request body" in log.since(),
        timeout=30,
        what="the server noticing the hang-up",
    )
    assert "Traceback" not in log.since()
    assert "ERROR" not in log.since()
    batch = server.client("batch")
    listed = batch.list_jobs(jobQueue="default", filters=[{"name": "JOB_NAME", "values": [name]}])[
        "jobSummaryList"
    ]
    assert listed == []
    assert batch.describe_job_queues(jobQueues=["default"])["jobQueues"]
