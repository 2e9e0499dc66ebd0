"""The ASGI application: AWS Batch operations by botocore routing, the CloudWatch Logs subset by
X-Amz-Target on the same endpoint, plus /health.

Owns the HTTP edge: each of the two protocols finds the operation, parses and validates the
request, and runs it as its entry in the operation table (api/operations.py) says; every request
is answered with the operation's output shape or an AWS-style error, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from botocore.model import OperationModel
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchyard import disk_full
from batchyard import health as server_health
from batchyard.api import limits, protocol
from batchyard.api.group_commit import GroupCommit
from batchyard.api.operations import OPERATIONS, Operation
from batchyard.api.rate_limits import RateLimits
from batchyard.domain.errors import (
    BatchError,
    ClientException,
    InvalidParameterException,
    NotImplementedOperation,
    ServerException,
    ServiceUnavailableException,
    TooManyRequestsException,
    UnknownOperationException,
    UnsupportedLogsOperation,
)
from batchyard.service.context import ServiceContext

log = logging.getLogger("batchyard.api")

STORE_DISK_FULL = (
    "The store's disk is full: this request could not be stored. Free space on the disk of "
    "the data directory; Batchyard resumes on its own once there is room."
)


class _AnyPath(Convertor[str]):
    """Any path, newlines included: a URI label may hold a percent-encoded newline, which
    Starlette's own `path` convertor (`.*`) does not match."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any", _AnyPath())


def _no_operation(request: Request) -> Response:
    return _error(
        ClientException(f"No AWS Batch operation matches {request.method} {request.url.path}."),
        str(uuid.uuid4()),
    )


async def _routing_error(request: Request, exc: Exception) -> Response:
    """A request no route takes (a method outside the routes' list) gets AWS's error shape,
    not Starlette's plain-text 404 or 405."""
    return _no_operation(request)


class ThrottlingException(BatchError):
    """CloudWatch Logs' throttling error (Batch's is TooManyRequestsException)."""

    code = "ThrottlingException"
    http_status = 400


def _json(status: int, payload: Any, headers: dict[str, str]) -> Response:
    return Response(
        protocol.encode_json(payload),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(error: BatchError, request_id: str, media_type: str = "application/json") -> Response:
    status, headers, body = protocol.error_body(error)
    headers["x-amzn-RequestId"] = request_id
    return Response(body, status_code=status, headers=headers, media_type=media_type)


async def _logs_api(
    ctx: ServiceContext,
    group_commit: GroupCommit,
    request: Request,
    target: str,
    rate_limits: RateLimits | None = None,
) -> Response:
    """One CloudWatch Logs json-1.1 call: `POST /` with `X-Amz-Target: Logs_20140328.<Op>`."""
    request_id = str(uuid.uuid4())
    media_type = protocol.LOGS_CONTENT_TYPE
    operation = protocol.find_logs_operation(target)
    try:
        if operation is None:
            raise UnknownOperationException(f"Batchyard does not serve X-Amz-Target {target}.")
        entry = OPERATIONS.get(operation.name)
        if entry is None or entry.service != "logs":
            raise UnsupportedLogsOperation(operation.name)
        if rate_limits is not None and not rate_limits.admit(operation.name):
            raise ThrottlingException("Rate exceeded")
        if request.method != "POST":
            raise InvalidParameterException(f"{operation.name} is called with POST.")
        body = await limits.read_body(request, operation.name, InvalidParameterException)
        params = protocol.parse_json_input(body)
        protocol.validate_input(operation, params, InvalidParameterException)
        payload = await _run(entry, operation, ctx, params, group_commit)
    except BatchError as error:
        return _error(error, request_id, media_type)
    except Exception:
        log.exception("%s failed (request %s)", target, request_id)
        failure = ServiceUnavailableException(f"Internal server error (request {request_id})")
        return _error(failure, request_id, media_type)
    return Response(
        protocol.encode_json(payload),
        status_code=200,
        headers={"x-amzn-RequestId": request_id},
        media_type=media_type,
    )


async def _batch_api(
    ctx: ServiceContext,
    group_commit: GroupCommit,
    request: Request,
    rate_limits: RateLimits | None = None,
) -> Response:
    """One AWS Batch rest-json call, routed by method and path as botocore's model says."""
    request_id = str(uuid.uuid4())
    found = protocol.find_operation(request.method, request.scope["raw_path"].decode())
    if found is None:
        return _no_operation(request)
    operation, labels = found
    try:
        entry = OPERATIONS.get(operation.name)
        if entry is None or entry.service != "batch":
            raise NotImplementedOperation(operation.name)
        if rate_limits is not None and not rate_limits.admit(operation.name):
            raise TooManyRequestsException("Too Many Requests")
        body = await limits.read_body(request, operation.name, ClientException)
        params = protocol.parse_input(operation, labels, request.url.query, request.headers, body)
        protocol.validate_input(operation, params)
        payload = await _run(entry, operation, ctx, params, group_commit)
    except BatchError as error:
        return _error(error, request_id)
    except Exception as error:
        if disk_full.is_disk_full(error):  # the store logged the episode's one warning
            return _error(ServerException(STORE_DISK_FULL), request_id)
        log.exception("%s failed (request %s)", operation.name, request_id)
        return _error(ServerException(f"Internal server error (request {request_id})"), request_id)
    return _json(200, payload, {"x-amzn-RequestId": request_id})


async def _run(
    entry: Operation,
    operation: OperationModel,
    ctx: ServiceContext,
    params: dict[str, Any],
    group_commit: GroupCommit,
) -> Any:
    """The operation's response to a validated request, run as its table entry says and sent
    as the model's output shape."""
    result = await entry.invoke(ctx, params, group_commit.insert)
    if entry.rendered_as_modelled:
        return result
    return protocol.shape_output(operation.output_shape, result)


def create_app(
    ctx: ServiceContext,
    *,
    is_ready: Callable[[], bool] = lambda: True,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    rate_limits: RateLimits | None = None,
    health: server_health.Health | None = None,
) -> Starlette:
    group_commit = GroupCommit(ctx.store)
    checked = health or server_health.current()

    async def health_check(request: Request) -> Response:
        if not is_ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        disk_full.episodes.full()  # a disk found full that has room again passes now
        checks = checked.checks()
        ok = all(check.ok for check in checks)
        body = {
            "status": "ok" if ok else "unhealthy",
            "checks": {
                check.name: {"status": "ok" if check.ok else "failing", "detail": check.detail}
                for check in checks
            },
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def aws_api(request: Request) -> Response:
        # Batch is rest-json and sends no X-Amz-Target; json-1.1 services (Logs) name the call
        # in it.
        target = request.headers.get("x-amz-target")
        if target is not None:
            return await _logs_api(ctx, group_commit, request, target, rate_limits)
        return await _batch_api(ctx, group_commit, request, rate_limits)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    return Starlette(
        routes=[
            Route("/health", health_check, methods=["GET"]),
            Route("/{path:any}", aws_api, methods=methods),
        ],
        exception_handlers={HTTPException: _routing_error},
        lifespan=lifespan,
        middleware=[Middleware(limits.CloseUnreadBodies)],
    )
