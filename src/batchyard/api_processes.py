"""The API-process supervisor: with `--api-processes N`, the main process spawns N - 1 fresh
interpreters that serve the same listening socket (API only, no dispatcher), wakes its
dispatcher on their writes, starts one again when it exits, and stops them all at shutdown.

Owns the processes and the spec handed to each (settings, inherited descriptors); what an API
process builds from it is the composition root's (server.py `ApiProcess`), and the bytes of
the wake-up channel are wakeup.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from batchyard import wakeup

log = logging.getLogger("batchyard.server")

LISTEN_BACKLOG = 2048  # uvicorn's default
STARTUP_FAILURE = 3  # uvicorn's exit status when it cannot start
API_PROCESS_FLAG = "--internal-api-process"  # `batchyard server` as an API-only process
_API_PROCESS_SPEC = "BATCHYARD_INTERNAL_API_PROCESS"  # its settings and inherited descriptors
_READY_TIMEOUT_SECONDS = 60.0
_RESTART_DELAY_SECONDS = 1.0
_STOP_TIMEOUT_SECONDS = 30.0


def listening_socket(host: str, port: int) -> socket.socket:
    """The TCP socket every process accepts on, bound by the main process, not by uvicorn, so
    that the API processes can inherit it. Not inheritable: only the API processes get it
    (pass_fds), not the job launcher or the jobs, which may outlive the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as error:
        log.error("Cannot listen on %s:%s: %s", host, port, error)
        raise SystemExit(STARTUP_FAILURE) from None


@dataclass(frozen=True, slots=True)
class ApiProcessSpec:
    """What an API process is handed by the main process (in its environment): its number,
    the descriptors it inherits, and the server's settings (Settings.to_json())."""

    number: int
    listen_fd: int
    channel_fd: int
    rate_limits_fd: int | None
    settings: dict[str, Any]


def read_spec() -> ApiProcessSpec:
    """This API process's spec, taken out of the environment (its jobs never see it)."""
    fields = json.loads(os.environ.pop(_API_PROCESS_SPEC))
    return ApiProcessSpec(
        number=int(fields["number"]),
        listen_fd=int(fields["listen_fd"]),
        channel_fd=int(fields["channel_fd"]),
        rate_limits_fd=fields.get("rate_limits_fd"),
        settings=fields["settings"],
    )


@dataclass(slots=True)
class _Slot:
    number: int  # 1 .. api_processes - 1 (the main process is 0)
    process: subprocess.Popen[bytes] | None = None
    listener: wakeup.Listener | None = None
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class ApiProcesses:
    """The main process's side of the API-only processes: spawns `api_processes - 1` fresh
    interpreters serving the listening socket, wakes the dispatcher on their writes, starts
    one again _RESTART_DELAY_SECONDS after it exits, stops them all at shutdown."""

    def __init__(
        self,
        api_processes: int,
        settings: dict[str, Any],
        listening: socket.socket,
        rate_limits_fd: int | None = None,
    ) -> None:
        self._settings = settings  # Settings.to_json(), passed on to each process
        self._rate_limits_fd = rate_limits_fd  # the shared buckets, passed on to each process
        # A descriptor of our own: uvicorn closes the one it serves on when it stops accepting,
        # while an API process that exits before shutdown is still started again.
        self._listening = listening.dup()
        self._slots = [_Slot(number) for number in range(1, api_processes)]
        self._on_write: Callable[[], None] = lambda: None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, on_write: Callable[[], None]) -> None:
        """Spawn them all and wait until each serves (or _READY_TIMEOUT_SECONDS passed)."""
        self._on_write = on_write
        for slot in self._slots:
            self._spawn(slot)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(slot.ready.wait() for slot in self._slots)),
                _READY_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            late = [slot.number for slot in self._slots if not slot.ready.is_set()]
            log.warning(
                "API processes %s not ready after %gs; serving without them meanwhile",
                late,
                _READY_TIMEOUT_SECONDS,
            )

    def _spawn(self, slot: _Slot) -> None:
        main_end, api_end = wakeup.channel()
        spec = {
            "number": slot.number,
            "listen_fd": self._listening.fileno(),
            "channel_fd": api_end.fileno(),
            "rate_limits_fd": self._rate_limits_fd,
            "settings": self._settings,
        }
        passed = [self._listening.fileno(), api_end.fileno()]
        if self._rate_limits_fd is not None:
            passed.append(self._rate_limits_fd)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "batchyard", "server", API_PROCESS_FLAG],
                env={**os.environ, _API_PROCESS_SPEC: json.dumps(spec)},
                pass_fds=passed,
                # Not in the terminal's process group: Ctrl-C reaches the main process only,
                # which stops them in order.
                process_group=0,
            )
        except OSError:
            log.exception("Starting API process %d failed", slot.number)
            main_end.close()
            self._later(self._restart(slot))
            return
        finally:
            api_end.close()
        slot.process = process
        slot.ready.clear()
        slot.listener = wakeup.Listener(
            main_end,
            on_wake=self._on_write,
            on_ready=lambda: self._ready(slot, process),
            on_gone=lambda: self._later(self._reap(slot, process)),
        )
        slot.listener.attach(asyncio.get_running_loop())

    def _ready(self, slot: _Slot, process: subprocess.Popen[bytes]) -> None:
        log.info("API process %d (pid %d) ready", slot.number, process.pid)
        slot.ready.set()

    def _later(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, slot: _Slot, process: subprocess.Popen[bytes]) -> None:
        """Its end of the channel closed: it is exiting (or gone)."""
        # A write may have committed just before it died without its wake-up being read.
        self._on_write()
        code = await asyncio.to_thread(process.wait)
        if self._stopping:
            return
        log.error(
            "API process %d (pid %d) exited with %s; starting it again in %gs",
            slot.number,
            process.pid,
            exit_status(code),
            _RESTART_DELAY_SECONDS,
        )
        await self._restart(slot)

    async def _restart(self, slot: _Slot) -> None:
        await asyncio.sleep(_RESTART_DELAY_SECONDS)
        if not self._stopping:
            self._spawn(slot)

    async def stop(self) -> None:
        """SIGTERM each (they finish their requests), SIGKILL what is left after a while."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        running = [s.process for s in self._slots if s.process and s.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                code = await asyncio.to_thread(process.wait, _STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("API process (pid %d) did not stop: killing it", process.pid)
                process.kill()
                code = await asyncio.to_thread(process.wait)
            if code != 0:
                log.warning("API process (pid %d) exited with %s", process.pid, exit_status(code))
        # What noticed them exit is done once they have: let it finish before the loop ends.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for slot in self._slots:
            if slot.listener is not None:
                slot.listener.close()
        self._listening.close()


def exit_status(code: int) -> str:
    """How a process ended, as a log line says it."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
