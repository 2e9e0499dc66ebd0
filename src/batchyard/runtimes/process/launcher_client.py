"""The server's end of the launcher (launcher.py): starting its interpreter, and JSON lines both
ways over two pipes, read and written on the event loop without blocking it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import batchyard
from batchyard.runtimes.process.launch_records import BLANK_RECORD, EXIT_CODE, LAUNCH_LOCK, OUTPUT

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SPARE = ".spare"  # under the work directory: the launcher's pool of empty attempt directories
LAUNCHER_EXITED = "the process launcher exited"

# Isolated (-I) and without site (-S): the launcher sees no PYTHON* variables, user site or
# site-packages, and starts sooner. The directory Batchyard is imported from is all it adds to
# the standard library's path, for launcher.py and containment.py.
_ROOT = str(Path(batchyard.__file__).resolve().parent.parent)
_BOOTSTRAP = (
    f"import sys; sys.path.insert(0, {_ROOT!r}); "
    "from batchyard.runtimes.process.launcher import main; main()"
)


def launcher_command(work_dir: str, attempts_cgroup: str | None) -> list[str]:
    """The launcher's command line for a work directory (launcher.main says what it takes)."""
    return [
        *(sys.executable, "-I", "-S", "-c", _BOOTSTRAP),
        *(OUTPUT, EXIT_CODE, BLANK_RECORD.decode()),
        os.path.join(work_dir, SPARE),
        os.path.join(work_dir, LAUNCH_LOCK),
        attempts_cgroup or "",
    ]


class LauncherClient:
    """The server's end of one launcher process: JSON lines both ways over two pipes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[dict[str, Any]], None],
        on_gone: Callable[[LauncherClient], None],
        work_dir: str,
        attempts_cgroup: str | None,
    ) -> None:
        self._loop = loop
        self._on_message = on_message
        self._on_gone = on_gone
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                launcher_command(work_dir, attempts_cgroup),
                {"PATH": os.environ.get("PATH", DEFAULT_PATH)},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, request_r, 0),
                    (os.POSIX_SPAWN_DUP2, reply_w, 1),
                ],
                setsid=True,  # out of the server's terminal session: Ctrl-C is the server's
            )
        finally:
            os.close(request_r)
            os.close(reply_w)
        # The launcher is our child: reap it whenever it ends, even after we closed.
        threading.Thread(target=self._reap, daemon=True, name="launcher-reaper").start()
        os.set_blocking(self._request_w, False)
        os.set_blocking(self._reply_r, False)
        self._unsent = bytearray()
        self._flush_due = False
        self._received = b""
        self.alive = True
        loop.add_reader(self._reply_r, self._read)

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            raise RuntimeError(LAUNCHER_EXITED)
        self._unsent.extend(json.dumps(message).encode() + b"\n")
        # Written once the loop has run what is ready: the starts of one dispatch round go
        # to the launcher in one write, which wakes it once.
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = False
        if self.alive:
            self._flush()

    def _flush(self) -> None:
        try:
            while self._unsent:
                del self._unsent[: os.write(self._request_w, self._unsent)]
        except BlockingIOError:
            self._loop.add_writer(self._request_w, self._flush)
            return
        except OSError:
            self._unsent.clear()  # gone: _read sees the end of its output and reports it
        self._loop.remove_writer(self._request_w)

    def _read(self) -> None:
        try:
            data = os.read(self._reply_r, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self._shutdown()
            self._on_gone(self)
            return
        *lines, self._received = (self._received + data).split(b"\n")
        for line in lines:
            try:
                self._on_message(json.loads(line))
            except Exception:
                log.exception("Handling launcher message %r failed", line)

    def close(self) -> None:
        """Let the launcher finish: it exits once its attempts have ended. Requests not yet
        written are dropped: those attempts never start, and recovery reports them lost."""
        self._shutdown()

    def _shutdown(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self._loop.remove_reader(self._reply_r)
        self._loop.remove_writer(self._request_w)
        os.close(self._reply_r)
        os.close(self._request_w)
