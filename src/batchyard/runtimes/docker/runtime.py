"""DockerRuntime: attempts as Docker containers, through the Docker Engine API. Every Docker
SDK call blocks, so it runs on a worker thread, never on the event loop; each container's
output is followed on a thread of its own. Decides nothing about jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import docker
import requests
from docker.errors import (
    APIError,
    DockerException,
    ImageNotFound,
    NotFound,
    create_api_error_from_http_exception,
)
from docker.types import CancellableStream
from docker.utils import parse_repository_tag

from batchyard.domain.clock import Clock
from batchyard.domain.model import Resources
from batchyard.logs import LogStore
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Report,
    RuntimeEvent,
    deliver,
    failed_to_start,
    host_lost,
)
from batchyard.runtimes.docker.engine import daemon_message, oom_kill_logged, owner_label
from batchyard.runtimes.docker.frames import Frame, cut_frame, frames
from batchyard.runtimes.docker.options import (
    CANNOT_CREATE,
    LABEL_JOB_ID,
    LABEL_OWNER,
    LABEL_TASK_ID,
    CannotRun,
    ContainerOptions,
    container_options,
)
from batchyard.runtimes.output import Event, LineCutter, StreamWriter

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_NETWORK_MODE = "bridge"
OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
CANNOT_PULL = "CannotPullContainerError"
CANNOT_START = "CannotStartContainerError"
STOPPED_BEFORE_START = f"{CANNOT_START}: the attempt was stopped before its container started"
HOST_LOST_NOT_FOUND = "Host lost: the attempt's container was not found after a restart"
HOST_LOST_REMOVED = "Host lost: the attempt's container was removed while it ran"

_API_TIMEOUT_S = 120  # one Engine API call; log streams have no timeout
_API_THREADS = 16
_FOLLOWERS_JOIN_S = 5.0
_EXIT_SETTLE_S = 5.0  # the log stream can end a moment before the engine marks the exit
_CATCH_UP_TAIL = 256  # frames re-read at exit to find any a followed stream missed
_NVIDIA_DEVICE = re.compile(r"nvidia[0-9]+")


@dataclass(eq=False, slots=True)
class _Attempt:
    job_id: str
    task_id: str
    output: StreamWriter
    skip: int = 0  # events already in the log store (re-attached after a restart)
    container_id: str | None = None
    running: bool = False  # its start has been reported
    stop_grace: float | None = None  # a stop asked for before the container ran
    escalation: asyncio.TimerHandle | None = None
    stream: CancellableStream[Frame] | None = None
    follower: threading.Thread | None = None
    ended: bool = False
    detached: bool = False  # the runtime closed: its follower stops without reporting

    def is_detached(self) -> bool:
        """For the follower thread, which must re-read it at every step (the loop sets it)."""
        return self.detached


@dataclass(slots=True)
class _Seen:
    """Frames read from one log stream: how many, and the last (timestamped, so unique)."""

    count: int = 0
    last: Frame | None = None


@dataclass(frozen=True, slots=True)
class _Exit:
    exit_code: int | None
    reason: str | None
    status_reason: str


class DockerRuntime:
    """Runs attempts as Docker containers through the Docker Engine API.

    One container per attempt, named batchyard-<task id> and labelled with the owner (the
    server's store), job id, task id and attempt number; the runtime handle is its id. Output is
    followed through the Engine's log API on one thread per container and written to the log
    store every poll_interval. The container is removed remove_after seconds after its exit is
    stored (AttemptExited.recorded). recover() finds containers by label: running ones are
    followed again, finished ones reported, and containers of this owner that no attempt claims
    are removed.
    """

    name = "docker"

    def __init__(
        self,
        logs: LogStore,
        clock: Clock,
        *,
        owner: str,
        network_mode: str = DEFAULT_NETWORK_MODE,
        max_vcpus: float | None = None,
        poll_interval: float = 0.1,
        remove_after: float = 0.0,
    ) -> None:
        self._logs = logs
        self._clock = clock
        # Several servers may share one engine: each touches only containers of its own store.
        self.owner = owner_label(owner)
        self._network_mode = network_mode
        self._max_vcpus = max_vcpus
        self._poll_interval = poll_interval
        self._remove_after = remove_after
        self._limits: Resources | None = None
        self._host_cpus = float(os.cpu_count() or 1)
        self._host_gpus = 0
        self._api_client: docker.APIClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attempts: dict[str, _Attempt] = {}
        self._tailer: asyncio.Task[None] | None = None
        self._launches: set[asyncio.Task[None]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._removals: dict[str, asyncio.TimerHandle] = {}  # container id -> its removal

    # -- protocol -----------------------------------------------------------------------------

    def host_limits(self) -> Resources:
        if self._limits is None:
            self._limits = self._read_limits()  # blocking; open() does it off the loop
        return self._limits

    async def open(self, report: Report) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(_API_THREADS, thread_name_prefix="batchyard-docker")
        if self._limits is None:
            self._limits = await self._call(self._read_limits)
        self._report = report
        self._tailer = self._loop.create_task(self._tail_forever())

    async def start(self, spec: AttemptSpec) -> None:
        self._require_open()
        if spec.task_id in self._attempts:
            raise ValueError(f"attempt {spec.task_id} is already running")
        try:
            options = container_options(
                spec,
                owner=self.owner,
                default_network_mode=self._network_mode,
                host_cpus=self._host_cpus,
                host_gpus=self._host_gpus,
            )
        except CannotRun as error:
            self._emit(self._failed_to_start(spec.job_id, spec.task_id, error.reason))
            return
        output = StreamWriter(self._logs, spec.task_id, spec.log_group, spec.log_stream_name)
        attempt = _Attempt(spec.job_id, spec.task_id, output)
        self._attempts[spec.task_id] = attempt
        # Returns at once: a pull may take long, and its outcome is reported as an event.
        self._spawn(self._launch(attempt, options), self._launches)

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        self._require_open()
        attempt = self._attempts.get(task_id)
        if attempt is None or attempt.ended:
            return
        if not attempt.running:
            previous = attempt.stop_grace
            attempt.stop_grace = grace_seconds if previous is None else min(previous, grace_seconds)
            return
        await self._stop(attempt, grace_seconds)

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        self._require_open()
        listed = await self._call(
            self._api.containers, all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"}
        )
        found: dict[str, dict[str, Any]] = {
            str(c["Labels"].get(LABEL_TASK_ID)): c for c in listed if c.get("Labels")
        }
        found_by_id = 0
        for ref in attempts:
            if ref.task_id in self._attempts:
                continue
            container = found.pop(ref.task_id, None)
            if container is None or container["Labels"].get(LABEL_JOB_ID) != ref.job_id:
                self._emit(self._host_lost(ref.job_id, ref.task_id, HOST_LOST_NOT_FOUND))
                continue
            attempt = _Attempt(
                ref.job_id,
                ref.task_id,
                StreamWriter(self._logs, ref.task_id, ref.log_group, ref.log_stream_name),
                skip=self._logs.count(ref.log_group, ref.log_stream_name),
                container_id=str(container["Id"]),
            )
            self._attempts[ref.task_id] = attempt
            if container.get("State") == "created":  # the server died between create and start
                self._spawn(self._start_created(attempt), self._launches)
                continue
            attempt.running = True
            if ref.runtime_handle is None:  # it started; the server died before recording it
                found_by_id += 1
                self._emit(self._started_event(attempt))
            self._follow(attempt)
        if found_by_id:
            log.info("Recovery found %d attempts whose start was not stored yet", found_by_id)
        for task_id, container in found.items():
            if task_id not in self._attempts:  # its attempt is over, or never was
                self._spawn(self._remove(str(container["Id"])), self._cleanups)

    async def close(self) -> None:
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tailer
            self._tailer = None
        for task in self._launches:
            task.cancel()
        await asyncio.gather(*self._launches, return_exceptions=True)
        followers = []
        for attempt in self._attempts.values():
            attempt.detached = True
            attempt.output.seal()
            self._flush(attempt)  # recovery skips exactly what is stored
            if attempt.escalation is not None:
                attempt.escalation.cancel()
                attempt.escalation = None
            if attempt.stream is not None:
                with contextlib.suppress(Exception):
                    attempt.stream.close()
            if attempt.follower is not None:
                followers.append(attempt.follower)
        self._attempts.clear()
        for container_id, removal in list(self._removals.items()):  # due soon anyway: now
            removal.cancel()
            self._remove_now(container_id)
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        self._report = None
        if followers:
            await asyncio.to_thread(_join, followers, _FOLLOWERS_JOIN_S)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        self._loop = None

    # -- starting -----------------------------------------------------------------------------

    async def _launch(self, attempt: _Attempt, options: ContainerOptions) -> None:
        try:
            attempt.container_id = await self._call(self._create_and_start, attempt, options)
        except CannotRun as error:
            self._give_up(attempt, error.reason)
            return
        except (DockerException, requests.RequestException, OSError) as error:
            self._give_up(attempt, f"{CANNOT_START}: {daemon_message(error)}")
            return
        await self._now_running(attempt)

    async def _start_created(self, attempt: _Attempt) -> None:
        assert attempt.container_id is not None
        try:
            await self._call(self._api.start, attempt.container_id)
        except (DockerException, requests.RequestException, OSError) as error:
            self._give_up(attempt, f"{CANNOT_START}: {daemon_message(error)}")
            self._spawn(self._remove(attempt.container_id), self._cleanups)
            return
        await self._now_running(attempt)

    def _give_up(self, attempt: _Attempt, reason: str) -> None:
        if self._attempts.get(attempt.task_id) is attempt:
            del self._attempts[attempt.task_id]
        self._emit(self._failed_to_start(attempt.job_id, attempt.task_id, reason))

    async def _now_running(self, attempt: _Attempt) -> None:
        attempt.running = True
        attempt.output.create(self._clock.now_ms())
        self._emit(self._started_event(attempt))
        self._follow(attempt)
        if attempt.stop_grace is not None:
            await self._stop(attempt, attempt.stop_grace)

    def _create_and_start(self, attempt: _Attempt, options: ContainerOptions) -> str:
        """On a worker thread: the image (pulled unless present), then the container."""
        api = self._api
        self._ensure_image(options.image)
        if attempt.stop_grace is not None:
            raise CannotRun(STOPPED_BEFORE_START)
        try:
            host_config = api.create_host_config(**options.host)
            created = api.create_container(options.image, host_config=host_config, **options.create)
        except (DockerException, TypeError, ValueError) as error:
            raise CannotRun(f"{CANNOT_CREATE}: {daemon_message(error)}") from error
        container_id = str(created["Id"])
        try:
            api.start(container_id)
        except APIError as error:
            with contextlib.suppress(DockerException, requests.RequestException):
                api.remove_container(container_id, v=True, force=True)
            raise CannotRun(f"{CANNOT_START}: {daemon_message(error)}") from error
        return container_id

    def _ensure_image(self, image: str) -> None:
        """Use the local image if present, pull it otherwise (ECS's default pull behaviour for
        an agent configured with ECS_IMAGE_PULL_BEHAVIOR=prefer-cached)."""
        api = self._api
        try:
            api.inspect_image(image)  # type: ignore[no-untyped-call]
            return
        except ImageNotFound:
            pass
        except APIError as error:
            raise CannotRun(f"{CANNOT_PULL}: {daemon_message(error)}") from error
        repository, tag = parse_repository_tag(image)
        try:
            for message in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(message, dict) and message.get("error"):
                    raise CannotRun(f"{CANNOT_PULL}: {message['error']}")
        except APIError as error:
            raise CannotRun(f"{CANNOT_PULL}: {daemon_message(error)}") from error

    # -- stopping -----------------------------------------------------------------------------

    async def _stop(self, attempt: _Attempt, grace_seconds: float) -> None:
        if attempt.ended:
            return
        if grace_seconds <= 0:
            await self._signal(attempt, "SIGKILL")
            return
        if attempt.escalation is not None:
            return  # already stopping: the first grace period stands
        loop = self._require_open()
        attempt.escalation = loop.call_later(grace_seconds, self._escalate, attempt)
        await self._signal(attempt, "SIGTERM")

    def _escalate(self, attempt: _Attempt) -> None:
        attempt.escalation = None
        if not attempt.ended and not attempt.detached:
            self._spawn(self._signal(attempt, "SIGKILL"), self._cleanups)

    async def _signal(self, attempt: _Attempt, signal: str) -> None:
        if attempt.container_id is None:
            return
        try:
            await self._call(self._api.kill, attempt.container_id, signal)
        except NotFound:
            pass
        except APIError as error:  # 409: it is not running any more; its exit is on its way
            log.debug("Signalling container %s: %s", attempt.container_id, error)

    # -- following ----------------------------------------------------------------------------

    def _follow(self, attempt: _Attempt) -> None:
        loop = self._require_open()
        thread = threading.Thread(
            target=self._follow_blocking,
            args=(attempt, loop),
            name=f"batchyard-docker-logs-{attempt.task_id[:8]}",
            daemon=True,
        )
        attempt.follower = thread
        thread.start()

    def _follow_blocking(self, attempt: _Attempt, loop: asyncio.AbstractEventLoop) -> None:
        """On its own thread: move the container's output to `pending` until it exits, then
        hand its exit to the loop. Re-reads from the start (skipping what was cut) whenever
        the Engine's stream breaks off while the container still runs."""
        container_id = attempt.container_id
        assert container_id is not None
        lines = LineCutter(attempt.skip)
        backoff = 0.2
        while True:
            if attempt.is_detached():
                return
            try:
                seen = self._readframes(attempt, lines, follow=True)
                if attempt.is_detached():
                    return
                ending = self._exit_once_stopped(container_id)
                if ending is not None:
                    try:
                        self._catch_up(attempt, lines, seen)
                    except (DockerException, requests.RequestException, OSError) as error:
                        log.warning(
                            "Reading the end of %s's output failed: %s", container_id, error
                        )
                    break
            except NotFound:
                ending = _Exit(None, HOST_LOST_REMOVED, HOST_LOST)
                break
            except (DockerException, requests.RequestException, OSError) as error:
                if attempt.is_detached():
                    return
                log.warning("Following container %s failed (%s); retrying", container_id, error)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            lines = LineCutter(lines.produced)
        cut: list[Event] = []
        lines.finish(cut)
        attempt.output.add(cut)
        with contextlib.suppress(RuntimeError):  # the loop is closed: recovery reports it
            loop.call_soon_threadsafe(self._ended, attempt, ending)

    def _readframes(
        self, attempt: _Attempt, lines: LineCutter, *, follow: bool, after: int = 0
    ) -> _Seen:
        """Feed the container's log frames (all of them, less the first `after`) to `lines`."""
        assert attempt.container_id is not None
        stream = self._open_log(attempt.container_id, follow=follow)
        attempt.stream = stream
        seen = _Seen()
        try:
            for frame in stream:
                if attempt.is_detached():
                    break
                seen.count += 1
                seen.last = frame
                if seen.count > after:
                    cut: list[Event] = []
                    cut_frame(lines, frame, self._clock.now_ms, cut)
                    attempt.output.add(cut)
        finally:
            stream.close()
            attempt.stream = None
        return seen

    def _catch_up(self, attempt: _Attempt, lines: LineCutter, seen: _Seen) -> None:
        """Feed the frames a followed stream missed: the Engine (20.10) may end a follow before
        the last frame of an exited container. Aligns on the last frame seen within the log's
        tail; reads the whole log again only if it is not there."""
        assert attempt.container_id is not None
        stream = self._open_log(attempt.container_id, follow=False, tail=_CATCH_UP_TAIL)
        with contextlib.closing(stream):
            tail = list(stream)
        missed: list[Frame] | None = None
        if seen.last is None:
            missed = tail if len(tail) < _CATCH_UP_TAIL else None
        else:
            for i in range(len(tail) - 1, -1, -1):
                if tail[i] == seen.last:
                    missed = tail[i + 1 :]
                    break
        if missed is None:
            self._readframes(attempt, lines, follow=False, after=seen.count)
            return
        cut: list[Event] = []
        for frame in missed:
            cut_frame(lines, frame, self._clock.now_ms, cut)
        attempt.output.add(cut)

    def _open_log(
        self, container_id: str, *, follow: bool, tail: int | None = None
    ) -> CancellableStream[Frame]:
        """The container's output as (stream, frame) pairs: the SDK's logs() drops which
        stream a frame came from, and lines must be joined per stream."""
        api = self._api
        response = api.get(
            f"{api.base_url}/v{api.api_version}/containers/{quote(container_id, safe='')}/logs",
            params={
                "stdout": 1,
                "stderr": 1,
                "timestamps": 1,
                "follow": int(follow),
                "tail": "all" if tail is None else tail,
            },
            stream=True,
            timeout=None,  # a followed stream lasts as long as the container
        )
        try:
            response.raise_for_status()
        except requests.HTTPError as error:
            response.close()
            create_api_error_from_http_exception(error)
        return CancellableStream(frames(response), response)

    def _exit_once_stopped(self, container_id: str) -> _Exit | None:
        """The container's exit, or None if it still runs (its log stream merely ended)."""
        deadline = time.monotonic() + _EXIT_SETTLE_S
        delay = 0.01
        while True:
            state = self._api.inspect_container(container_id)["State"]
            if not state.get("Running") and state.get("Status") != "created":
                code = state.get("ExitCode")
                exit_code = None if code is None else int(code)
                oom = bool(state.get("OOMKilled")) or (
                    exit_code == 137 and oom_kill_logged(container_id)
                )
                return _Exit(exit_code, OUT_OF_MEMORY if oom else None, ESSENTIAL_CONTAINER_EXITED)
            if time.monotonic() > deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _flush(self, attempt: _Attempt) -> bool:
        """Move pending output to the log store; False if it had no room (kept pending)."""
        return attempt.output.flush(self._clock.now_ms())

    async def _tail_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            for attempt in list(self._attempts.values()):
                self._flush(attempt)

    # -- ending -------------------------------------------------------------------------------

    def _ended(self, attempt: _Attempt, ending: _Exit) -> None:
        """On the loop: the container has exited and all its output is pending."""
        if attempt.ended or attempt.detached:
            return
        attempt.ended = True
        if attempt.escalation is not None:
            attempt.escalation.cancel()
            attempt.escalation = None
        if not self._flush(attempt):
            # The log store has no room: the exit is reported once the output is stored.
            self._spawn(self._flush_then_report(attempt, ending), self._cleanups)
            return
        self._report_exit(attempt, ending)

    async def _flush_then_report(self, attempt: _Attempt, ending: _Exit) -> None:
        # Polled, like the tailer: nothing tells when the disk has room again.
        while True:
            if attempt.detached:
                return
            if self._flush(attempt):
                break
            await asyncio.sleep(self._poll_interval)
        self._report_exit(attempt, ending)

    def _report_exit(self, attempt: _Attempt, ending: _Exit) -> None:
        if self._attempts.get(attempt.task_id) is attempt:
            del self._attempts[attempt.task_id]
        # The container holds the exit code recovery reads, should the server die before the
        # dispatcher stores this report: it goes once the exit is stored.
        container_id = attempt.container_id
        self._emit(
            AttemptExited(
                attempt.job_id,
                attempt.task_id,
                self._clock.now_ms(),
                ending.exit_code,
                ending.reason,
                ending.status_reason,
                recorded=None
                if container_id is None
                else functools.partial(self._exit_recorded, container_id),
            )
        )

    def _exit_recorded(self, container_id: str) -> None:
        # Closed meanwhile: the next server's recovery removes it (no attempt claims it).
        if self._loop is None or self._report is None:
            return
        self._removals[container_id] = self._loop.call_later(
            self._remove_after, self._remove_now, container_id
        )

    def _remove_now(self, container_id: str) -> None:
        self._removals.pop(container_id, None)
        self._spawn(self._remove(container_id), self._cleanups)

    async def _remove(self, container_id: str) -> None:
        try:
            await self._call(self._api.remove_container, container_id, v=True, force=True)
        except NotFound:
            pass
        except (DockerException, requests.RequestException, OSError) as error:
            log.warning("Removing container %s failed: %s", container_id, error)

    # -- reporting ----------------------------------------------------------------------------

    def _started_event(self, attempt: _Attempt) -> AttemptStarted:
        handle = json.dumps({"containerId": attempt.container_id}, separators=(",", ":"))
        return AttemptStarted(attempt.job_id, attempt.task_id, self._clock.now_ms(), handle)

    def _failed_to_start(self, job_id: str, task_id: str, reason: str) -> AttemptExited:
        return failed_to_start(job_id, task_id, self._clock.now_ms(), reason)

    def _host_lost(self, job_id: str, task_id: str, reason: str) -> AttemptExited:
        return host_lost(job_id, task_id, self._clock.now_ms(), reason)

    def _emit(self, event: RuntimeEvent) -> None:
        deliver(self._report, event)

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def _api(self) -> docker.APIClient:
        if self._api_client is None:
            client = docker.from_env(timeout=_API_TIMEOUT_S, max_pool_size=_API_THREADS * 4)
            self._api_client = client.api
        return self._api_client

    def _read_limits(self) -> Resources:
        info: Mapping[str, Any] = self._api.info()
        gpus = 0
        if "nvidia" in (info.get("Runtimes") or {}):
            with contextlib.suppress(OSError):
                gpus = sum(1 for name in os.listdir("/dev") if _NVIDIA_DEVICE.fullmatch(name))
        self._host_gpus = gpus
        cpus = self._host_cpus = float(info.get("NCPU") or os.cpu_count() or 1)
        vcpus = self._max_vcpus if self._max_vcpus is not None else cpus
        return Resources(vcpus=vcpus, memory_mib=int(info["MemTotal"]) // (1 << 20), gpus=gpus)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        task = self._require_open().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    def _require_open(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._report is None:
            raise RuntimeError("DockerRuntime.open() has not been called (or it was closed)")
        return self._loop


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Docker runtime task failed", exc_info=task.exception())


def _join(threads: Sequence[threading.Thread], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
