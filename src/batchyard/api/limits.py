"""Request limits at the HTTP edge: how large and how deep a request may be, and how long a
client may take to send it.

Owns, for every request on the endpoint (Batch rest-json and the CloudWatch Logs json-1.1
subset):

- the body cap of each operation (`body_cap`), enforced while the body is read
  (`read_body`): a declared Content-Length past the cap is refused before a byte of the body
  is read, a chunked body is counted as it arrives and refused once past the cap, so memory
  never holds more than the cap and one chunk;
- the JSON nesting limit (`check_depth`), checked on the raw bytes before any parser or
  recursive walk sees them;
- a client that hangs up mid-body (answered to nobody, logged in one line, nothing stored);
- `CloseUnreadBodies`, an ASGI guard closing the connection after a response to a request
  whose body was not read to its end, so the rest is never read;
- `RequestLimitsProtocol`, uvicorn's httptools protocol with deadlines for a request's headers
  and body and a size cap on its headers (uvicorn has none of them: `timeout_keep_alive` only
  covers the idle time between requests), and `uvicorn_options`, the server settings that
  carry all of this.

Refusals are AWS errors in the operation's protocol: the error code of its model (Batch
ClientException, Logs InvalidParameterException) with the HTTP status of the limit (413 too
large, 408 too slow, 431 headers too large, 400 too deep).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from batchyard.domain.errors import BatchError, ClientException

log = logging.getLogger("batchyard.api")

KIB = 1024

BODY_CAPS: Mapping[str, int] = {
    # AWS Batch quotas: "SubmitJob payload 30 KiB", "job definition size 24 KiB".
    "SubmitJob": 30 * KIB,
    "RegisterJobDefinition": 24 * KIB,
    # A fair-share policy may list 500 share identifiers of up to 255 characters each.
    "CreateSchedulingPolicy": 256 * KIB,
    "UpdateSchedulingPolicy": 256 * KIB,
}
"""Body caps (bytes) of the operations whose inputs may be larger or smaller than the rest."""

DEFAULT_BODY_CAP = 64 * KIB
"""Every other Batch operation and every CloudWatch Logs operation: their largest legitimate
inputs (50 tags, 100 job definition ARNs, FilterLogEvents with 100 stream names of 512
characters) stay under 56 KiB."""

MAX_JSON_DEPTH = 32
"""Nesting of objects and arrays in a request body. The deepest input of the Batch model
(RegisterJobDefinition) nests 13 levels, CloudWatch Logs' 6; recursion trouble (Python's
limit is 1,000 frames, orjson's 1,024 levels) starts far above."""

BODY_TIMEOUT_SECONDS = 20.0
"""From the end of a request's headers to the last byte of its body."""

HEADER_TIMEOUT_SECONDS = 10.0
"""From a new connection (or the first byte of the next request on a kept-alive connection)
to the end of the request's headers."""

MAX_HEADER_BYTES = 16 * KIB
"""Request line and headers together (uvicorn's h11 default; boto3 sends under 2 KiB)."""

KEEP_ALIVE_SECONDS = 5
"""An idle kept-alive connection is closed after this long (uvicorn's default, made explicit)."""


class RequestLimitExceeded(BatchError):
    """A request past one of these limits: the client error code of the operation's model,
    with the HTTP status of the limit."""

    def __init__(self, message: str, like: type[BatchError], http_status: int) -> None:
        super().__init__(message)
        self.code = like.code
        self.http_status = http_status


class ClientDisconnected(BatchError):
    """The connection closed before the body ended (the client hung up, or its body missed
    BODY_TIMEOUT_SECONDS). The answer reaches nobody (uvicorn drops it); answering it ends
    the request without a traceback."""


def body_cap(operation: str) -> int:
    """The largest body, in bytes, `operation` accepts."""
    return BODY_CAPS.get(operation, DEFAULT_BODY_CAP)


def _kib(size: int) -> str:
    return f"{math.ceil(size / KIB)} KiB"


def _too_large(operation: str, cap: int, size: int | None, like: type[BatchError]) -> BatchError:
    what = {"SubmitJob": "Job", "RegisterJobDefinition": "Job definition"}.get(
        operation, f"{operation} request"
    )
    got = _kib(size) if size is not None else f"more than {_kib(cap)}"
    # AWS Batch words it "Job size must be less than 30 KiB, got 47 KiB"; a body of exactly
    # the cap is accepted here, so "at most".
    return RequestLimitExceeded(f"{what} size must be at most {_kib(cap)}, got {got}.", like, 413)


async def read_body(request: Request, operation: str, like: type[BatchError]) -> bytes:
    """The request's body, refused with a 413 past `operation`'s cap (before reading it when
    Content-Length says so) or a 400 when its JSON nests deeper than MAX_JSON_DEPTH. `like`
    is the operation's model's client error (its code is the refusal's)."""
    cap = body_cap(operation)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _too_large(operation, cap, int(declared), like)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise _too_large(operation, cap, None, like)
    except ClientDisconnect:
        log.info("%s: the connection closed before the end of the request body", operation)
        raise ClientDisconnected("The connection closed mid-body.") from None
    data = bytes(body)
    check_depth(data, like)
    return data


# A JSON string (escapes included) or a bracket: brackets inside strings do not nest.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def check_depth(body: bytes, like: type[BatchError] = ClientException) -> None:
    """Refuse (400) a JSON body whose objects and arrays nest deeper than MAX_JSON_DEPTH."""
    # Fewer brackets than the limit cannot nest past it: the common case costs two counts.
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for match in _STRUCTURE.finditer(body):
        token = match[0]
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise RequestLimitExceeded(
                    f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels.", like, 400
                )
        elif token in (b"]", b"}"):
            depth -= 1


# -- connections ---------------------------------------------------------------------------


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" 0")):
            return True
    return False


class CloseUnreadBodies:
    """ASGI guard: a response to a request whose body was not read to its end (refused by its
    Content-Length, past its cap, or before it was read at all) closes the connection, so the
    server never reads, even to discard, the rest of a body it did not want."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        ended = False

        async def observed() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                ended = True
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not ended:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, observed, closing)


def _error_response(status: int, phrase: str, message: str) -> bytes:
    body = orjson.dumps({"__type": ClientException.code, "message": message})
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "content-type: application/json\r\n"
        f"x-amzn-ErrorType: {ClientException.code}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class RequestLimitsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for a request's headers and body and a size
    cap on its headers, answering AWS-shaped errors (also for requests httptools cannot
    parse).

    The header deadline runs from the connection's start, and on a kept-alive connection from
    the first byte of each next request (the idle time between requests is uvicorn's
    keep-alive timeout); headers still incomplete when it passes get 408 and the connection
    closes. A client still sending headers after MAX_HEADER_BYTES gets 431. The body deadline
    runs from the end of the headers, armed only when the body did not arrive with them (so
    the common request costs no timer); a body still incomplete when it passes gets 408, and
    the application, reading it, sees the connection close.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._awaiting_body = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        self._stop_body_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._awaiting_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"The request line and headers must be at most {_kib(MAX_HEADER_BYTES)}.",
            )
        elif self._awaiting_body and self._body_deadline is None:
            self._body_deadline = self.loop.call_later(
                BODY_TIMEOUT_SECONDS, self._body_deadline_passed
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._start_header_deadline()

    def on_headers_complete(self) -> None:
        self._stop_header_deadline()
        self._awaiting_headers = False
        self._awaiting_body = True
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_body_deadline()
        self._awaiting_body = False
        self._awaiting_headers = True

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "Bad Request", msg)

    def _start_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(
            HEADER_TIMEOUT_SECONDS, self._header_deadline_passed
        )

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _stop_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _body_deadline_passed(self) -> None:
        self._body_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._refuse(
            408,
            "Request Timeout",
            f"The request body did not arrive within {BODY_TIMEOUT_SECONDS:g} seconds.",
        )

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(
                408,
                "Request Timeout",
                f"The request headers did not arrive within {HEADER_TIMEOUT_SECONDS:g} seconds.",
            )
        else:
            self.transport.close()

    def _refuse(self, status: int, phrase: str, message: str) -> None:
        self._stop_header_deadline()
        self._stop_body_deadline()
        self.transport.write(_error_response(status, phrase, message))
        self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """uvicorn.Config settings for these limits. `limit_concurrency` stays unset: it caps
    requests in flight, not slow connections (the deadlines above bound those), and answers
    a plain-text 503."""
    return {"http": RequestLimitsProtocol, "timeout_keep_alive": KEEP_ALIVE_SECONDS}
