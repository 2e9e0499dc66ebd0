"""Settings -> concrete store, runtimes, log store, dispatcher and API; runs them under uvicorn,
in one process or, with api_processes > 1, with API-only processes serving the same socket
(api_processes.py supervises them; `ApiProcess` here is what each one builds).

The only module that names concrete backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from batchyard import health, wakeup
from batchyard.api import protocol
from batchyard.api.app import create_app
from batchyard.api.limits import uvicorn_options
from batchyard.api.rate_limits import RateLimits
from batchyard.api_processes import ApiProcesses, listening_socket, read_spec
from batchyard.dispatcher import Dispatcher
from batchyard.domain.model import Identity
from batchyard.logs import LogStore
from batchyard.logs.file_store import FileLogStore, FileLogStoreReader
from batchyard.runtimes.base import Runtime
from batchyard.runtimes.docker import DockerRuntime, engine_unreachable
from batchyard.runtimes.process.runtime import ProcessRuntime
from batchyard.service.context import ServiceContext
from batchyard.service.defaults import ensure_defaults
from batchyard.service.retention import RETENTION_SWEEP_SECONDS, delete_expired_jobs
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
    process_containment: str = "auto"  # "reaper": the process runtime never uses cgroups
    log_level: str = "info"
    job_retention_days: float = 7.0  # finished jobs and their log streams; <= 0 keeps them
    rate_limits: str = ""  # "Operation=requests per second,..."; empty: no limits
    # Processes serving the API; the first also runs the dispatcher, runtimes and retention.
    api_processes: int = 1
    # GET /health reports the disk full below this much free space for the data directory.
    min_free_disk_mb: int = 64

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'batchyard.db').resolve()}"

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["data_dir"] = str(self.data_dir)
        return fields

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> Settings:
        return cls(**{**fields, "data_dir": Path(fields["data_dir"])})


def open_store(settings: Settings, *, dispatching: bool = False) -> Store:
    """The store, with this process's health checks watching its files and data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.store_url)
    files = [Path(store.where), Path(f"{store.where}-wal")] if store.is_sqlite else []
    health.current().watch(
        data_dir=settings.data_dir,
        store_files=files,
        dispatching=dispatching,
        min_free_bytes=settings.min_free_disk_mb * 1024 * 1024,
        store_probe=store.probe_write,
        dispatcher_status=settings.data_dir / health.DISPATCHER_STATUS_FILE,
    )
    return store


def _service_context(
    settings: Settings, store: Store, clock: SystemClock, logs: LogStore
) -> ServiceContext:
    return ServiceContext(
        store=store,
        clock=clock,
        identity=Identity(settings.account_id, settings.region),
        default_runtime=settings.default_runtime,
        logs=logs,
    )


GC_THRESHOLDS = (50_000, 20, 100)


def _rate_limits(settings: Settings, shared_fd: int | None = None) -> RateLimits | None:
    """The configured limits; with several API processes, in buckets they all share (the
    main process makes them, the others map them through shared_fd)."""
    if not settings.rate_limits:
        return None
    limits = RateLimits.parse(settings.rate_limits, shared_fd=shared_fd)
    if shared_fd is None and settings.api_processes > 1:
        limits.share()
    return limits


def _settle_startup() -> None:
    """What startup builds (modules, the botocore models) lives as long as the process: load
    the models now and keep it all out of the collector's full passes, which a busy process
    triggers and which would otherwise walk it every time."""
    protocol.routes()
    protocol.logs_model()
    gc.collect()
    gc.freeze()
    # The store's cache of decoded jobs holds about a million objects that live for minutes:
    # with the default thresholds a full pass over them (~100 ms) would land in the middle of
    # a request every few seconds. Collect the young generation less often and the old one
    # rarely (what it buys: docs/performance.md#ledger-of-optimisations).
    gc.set_threshold(*GC_THRESHOLDS)


class Service:
    """One Batchyard server: the store, the runtimes, the dispatcher and the API app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.store = open_store(settings, dispatching=True)
        self.logs = FileLogStore(settings.data_dir / "logs")
        self.runtimes: dict[str, Runtime] = {
            "process": ProcessRuntime(
                settings.data_dir / "attempts",
                self.logs,
                self.clock,
                use_cgroups=settings.process_containment != "reaper",
            ),
        }
        # Without a reachable engine, docker compute environments turn INVALID.
        docker_unreachable = engine_unreachable()
        if docker_unreachable is None:
            self.runtimes["docker"] = DockerRuntime(self.logs, self.clock, owner=settings.store_url)
        else:
            log.info("docker runtime off: Docker engine not reachable (%s)", docker_unreachable)
        self.context = _service_context(settings, self.store, self.clock, self.logs)
        self.dispatcher = Dispatcher(
            self.store,
            self.runtimes,
            self.clock,
            log_group=self.context.log_group,
            stop_grace_seconds=settings.stop_timeout_seconds,
        )
        self.ready = False
        # The API-only processes sharing the listening socket (serve() sets them up).
        self.api_processes: ApiProcesses | None = None
        self.rate_limits = _rate_limits(settings)
        self.app = create_app(
            self.context,
            is_ready=lambda: self.ready,
            lifespan=self.lifespan,
            rate_limits=self.rate_limits,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        ensure_defaults(self.context, vcpus=os.cpu_count() or 1)
        await self.dispatcher.open()
        _settle_startup()
        loop_task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        retention_task = asyncio.create_task(self.expire_jobs(), name="job-retention")
        try:
            if self.api_processes is not None:
                # Their writes wake this dispatcher; ready once they all serve too.
                await self.api_processes.start(on_write=self.dispatcher.wake)
            self.ready = True
            log.info("Batchyard ready on http://%s:%s", self.settings.host, self.settings.port)
            yield
        finally:
            self.ready = False
            if self.api_processes is not None:
                await self.api_processes.stop()
            retention_task.cancel()
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention_task
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
            await self.dispatcher.close()
            try:
                self.logs.flush()
            except OSError as error:
                # A full disk: only empty streams of the last second go unjournaled (their
                # events, had they any, are stored).
                log.warning("Journaling the newest empty log streams failed: %s", error)
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


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(settings: Settings) -> None:
    _configure_logging(settings)
    if settings.api_processes <= 1:
        service = Service(settings)
        config = uvicorn.Config(
            service.app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            lifespan="on",
            **uvicorn_options(),
        )
        _Server(config).run()
        return
    listening = listening_socket(settings.host, settings.port)
    service = Service(settings)
    service.api_processes = ApiProcesses(
        settings.api_processes,
        settings.to_json(),
        listening,
        service.rate_limits.shared_fd if service.rate_limits else None,
    )
    config = uvicorn.Config(
        service.app,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        **uvicorn_options(),
    )
    _Server(config).run(sockets=[listening])


# -- an API-only process (api_processes.py spawns it) ------------------------------------------


class ApiProcess:
    """An API-only process: the same store, service context and app as the main process, and
    no dispatcher, runtimes, retention or default resources. Its writes wake the main
    process's dispatcher through the channel; it stops when the main process is gone."""

    def __init__(
        self,
        settings: Settings,
        number: int,
        notifier: wakeup.Notifier,
        rate_limits_fd: int | None = None,
    ) -> None:
        self.settings = settings
        self.number = number
        self.notifier = notifier
        self.store = open_store(settings)
        self.context = _service_context(
            settings, self.store, SystemClock(), FileLogStoreReader(settings.data_dir / "logs")
        )
        self.ready = False
        self.server: uvicorn.Server | None = None
        self.app = create_app(
            self.context,
            is_ready=lambda: self.ready,
            lifespan=self.lifespan,
            rate_limits=_rate_limits(settings, rate_limits_fd),
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        _settle_startup()
        self.store.on_change(self.notifier.wake)
        self.notifier.watch_main(asyncio.get_running_loop(), self._main_gone)
        self.ready = True
        self.notifier.ready()
        try:
            yield
        finally:
            self.ready = False
            self.store.close()
            self.notifier.close()

    def _main_gone(self) -> None:
        log.warning("API process %d: the main server process is gone; stopping", self.number)
        self.ready = False
        if self.server is not None:
            self.server.should_exit = True


def serve_api_process() -> None:
    """Run as an API-only process, from the spec the main process put in the environment."""
    spec = read_spec()
    settings = Settings.from_json(spec.settings)
    _configure_logging(settings)
    listening = socket.socket(fileno=spec.listen_fd)
    notifier = wakeup.Notifier(socket.socket(fileno=spec.channel_fd))
    process = ApiProcess(settings, spec.number, notifier, spec.rate_limits_fd)
    config = uvicorn.Config(
        process.app,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        **uvicorn_options(),
    )
    process.server = _Server(config)
    process.server.run(sockets=[listening])
