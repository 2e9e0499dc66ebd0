"""Settings -> concrete store, runtimes, log store, dispatcher and API; runs them under uvicorn.

The only module that names concrete backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from batchyard.api import protocol
from batchyard.api.app import RateLimits, create_app
from batchyard.dispatcher import Dispatcher
from batchyard.domain.model import Identity
from batchyard.logs import FileLogStore
from batchyard.runtimes.base import Runtime
from batchyard.runtimes.docker import DockerRuntime, engine_unreachable
from batchyard.runtimes.process import ProcessRuntime
from batchyard.service.context import ServiceContext
from batchyard.service.logs import RETENTION_SWEEP_SECONDS, delete_expired_jobs
from batchyard.service.resources import ensure_defaults
from batchyard.store.base import Store
from batchyard.store.sql import SqlStore

log = logging.getLogger("batchyard.server")


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8750
    data_dir: Path = Path(".batchyard")
    database_url: str | None = None
    account_id: str = "000000000000"
    region: str = "us-east-1"
    default_runtime: str = "process"
    stop_timeout_seconds: float = 30.0
    log_level: str = "info"
    job_retention_days: float = 7.0  # finished jobs and their log streams; <= 0 keeps them
    rate_limits: str = ""  # "Operation=requests per second,..."; empty: no limits

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'batchyard.db').resolve()}"


def open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlStore(settings.store_url)


class Service:
    """One Batchyard server: the store, the runtimes, the dispatcher and the API app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.store = open_store(settings)
        self.logs = FileLogStore(settings.data_dir / "logs")
        self.runtimes: dict[str, Runtime] = {
            "process": ProcessRuntime(settings.data_dir / "attempts", self.logs, self.clock),
        }
        # Without a reachable engine, docker compute environments turn INVALID.
        docker_unreachable = engine_unreachable()
        if docker_unreachable is None:
            self.runtimes["docker"] = DockerRuntime(self.logs, self.clock, owner=settings.store_url)
        else:
            log.info("docker runtime off: Docker engine not reachable (%s)", docker_unreachable)
        self.context = ServiceContext(
            store=self.store,
            clock=self.clock,
            identity=Identity(settings.account_id, settings.region),
            default_runtime=settings.default_runtime,
            logs=self.logs,
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.runtimes,
            self.clock,
            log_group=self.context.log_group,
            stop_grace_seconds=settings.stop_timeout_seconds,
        )
        self.ready = False
        self.app = create_app(
            self.context,
            is_ready=lambda: self.ready,
            lifespan=self.lifespan,
            rate_limits=RateLimits.parse(settings.rate_limits) if settings.rate_limits else None,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        ensure_defaults(self.context, vcpus=os.cpu_count() or 1)
        await self.dispatcher.open()
        # What startup builds (modules, the botocore models) lives as long as the process:
        # load the models now and keep it all out of the collector's full passes, which a
        # busy dispatcher triggers and which would otherwise walk it every time.
        protocol.routes()
        protocol.logs_model()
        gc.collect()
        gc.freeze()
        loop_task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        retention_task = asyncio.create_task(self.expire_jobs(), name="job-retention")
        self.ready = True
        log.info("Batchyard ready on http://%s:%s", self.settings.host, self.settings.port)
        try:
            yield
        finally:
            self.ready = False
            retention_task.cancel()
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention_task
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
            await self.dispatcher.close()
            self.logs.flush()
            self.store.close()

    async def expire_jobs(self) -> None:
        """Delete expired job records and their log streams: at start, then every hour."""
        days = self.settings.job_retention_days
        while days > 0:
            sweep = asyncio.ensure_future(
                asyncio.to_thread(delete_expired_jobs, self.context, days)
            )
            try:
                removed = await asyncio.shield(sweep)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await sweep  # shutting down: let the sweep finish before the store closes
                raise
            except Exception:
                log.exception("Deleting expired jobs failed; trying again in an hour")
            else:
                if removed:
                    log.info("Deleted %d jobs finished over %g days ago", len(removed), days)
            await asyncio.sleep(RETENTION_SWEEP_SECONDS)


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM after its graceful shutdown, so the process would
    report death by signal; a service manager should see SIGTERM end in a clean exit 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    service = Service(settings)
    config = uvicorn.Config(
        service.app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
    )
    _Server(config).run()
