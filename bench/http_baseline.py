"""The HTTP floor: the same server stack as Batchyard (uvicorn, same settings) answering a
SubmitJob-shaped request with no work behind it. The API scenarios are reported against it.

    python bench/http_baseline.py PORT
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body) if body else {}
    job_id = str(uuid.uuid4())
    payload = json.dumps(
        {
            "jobArn": f"arn:aws:batch:us-east-1:000000000000:job/{job_id}",
            "jobName": request.get("jobName", "health"),
            "jobId": job_id,
        },
        separators=(",", ":"),
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    port = int(sys.argv[1])
    # The settings batchyard.server.serve() gives uvicorn.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
