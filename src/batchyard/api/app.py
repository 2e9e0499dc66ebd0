"""The ASGI application: AWS Batch operations by botocore routing, plus /health.

Owns the operation table (operation name -> wire handler) and the HTTP edge: every request is
answered with the operation's output shape or an AWS-style error; nothing escapes as a traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchyard.api import protocol
from batchyard.api.jobs_wire import JOB_OPERATIONS
from batchyard.api.resources_wire import RESOURCE_OPERATIONS, Handler
from batchyard.domain.errors import (
    BatchError,
    ClientException,
    NotImplementedOperation,
    ServerException,
)
from batchyard.service.context import ServiceContext

log = logging.getLogger("batchyard.api")

OPERATIONS: Mapping[str, Handler] = {**RESOURCE_OPERATIONS, **JOB_OPERATIONS}

UNSUPPORTED: frozenset[str] = frozenset(
    {
        # Consumable resources: the fair-share and consumable resources issue.
        "CreateConsumableResource",
        "DeleteConsumableResource",
        "DescribeConsumableResource",
        "ListConsumableResources",
        "ListJobsByConsumableResource",
        "UpdateConsumableResource",
        "GetJobQueueSnapshot",
        # SageMaker service jobs, service environments and quota shares: not planned.
        "CreateQuotaShare",
        "DeleteQuotaShare",
        "DescribeQuotaShare",
        "ListQuotaShares",
        "UpdateQuotaShare",
        "CreateServiceEnvironment",
        "DeleteServiceEnvironment",
        "DescribeServiceEnvironments",
        "UpdateServiceEnvironment",
        "DescribeServiceJob",
        "ListServiceJobs",
        "SubmitServiceJob",
        "TerminateServiceJob",
        "TerminateServiceJobs",
        "UpdateServiceJob",
    }
)
"""Operations of the model that answer a clear 'not supported' error."""


def _json(status: int, payload: Any, headers: dict[str, str]) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(error: BatchError, request_id: str) -> Response:
    status, headers, body = protocol.error_body(error)
    headers["x-amzn-RequestId"] = request_id
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def create_app(
    ctx: ServiceContext,
    *,
    is_ready: Callable[[], bool] = lambda: True,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    async def health(request: Request) -> Response:
        if not is_ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def batch_api(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        found = protocol.find_operation(request.method, request.scope["raw_path"].decode())
        if found is None:
            return _error(
                ClientException(
                    f"No AWS Batch operation matches {request.method} {request.url.path}."
                ),
                request_id,
            )
        operation, labels = found
        try:
            handler = OPERATIONS.get(operation.name)
            if handler is None:
                raise NotImplementedOperation(operation.name)
            body = await request.body()
            params = protocol.parse_input(
                operation, labels, request.url.query, request.headers, body
            )
            protocol.validate_input(operation, params)
            result = handler(ctx, params)
            payload = protocol.shape_output(operation.output_shape, result)
        except BatchError as error:
            return _error(error, request_id)
        except Exception:
            log.exception("%s failed (request %s)", operation.name, request_id)
            return _error(
                ServerException(f"Internal server error (request {request_id})"), request_id
            )
        return _json(200, payload, {"x-amzn-RequestId": request_id})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/{path:path}", batch_api, methods=methods),
        ],
        lifespan=lifespan,
    )
