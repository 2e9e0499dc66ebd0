"""The wake-up channel between the main server process and one API-only process: a Unix socket
pair. The API process sends one byte after each committed write (and one when it is ready);
either side reads EOF when the other is gone. Bytes only: spawning and restarts are
api_processes.py's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

WAKE = b"w"  # the API process committed a write: the dispatcher has something to decide
READY = b"r"  # the API process serves requests


def channel() -> tuple[socket.socket, socket.socket]:
    """(the main process's end, the API process's end), both non-blocking and not inherited
    (the API process's end is passed to it explicitly)."""
    main_end, api_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    main_end.setblocking(False)
    api_end.setblocking(False)
    return main_end, api_end


class Notifier:
    """The API process's end: tells the main process about writes; notices when it is gone."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Called after every committed write, from any thread; never blocks."""
        self._send(WAKE)

    def ready(self) -> None:
        self._send(READY)

    def _send(self, signal: bytes) -> None:
        try:
            self._sock.send(signal)
        except BlockingIOError:
            pass  # the buffer holds unread bytes already: the main process will wake anyway
        except OSError:
            pass  # the main process is gone; watch_main's callback stops this process

    def watch_main(self, loop: asyncio.AbstractEventLoop, on_gone: Callable[[], None]) -> None:
        """Call on_gone once the main process has closed its end (it exited or died)."""

        def readable() -> None:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the main process never sends: only EOF or an error comes
                loop.remove_reader(self._sock.fileno())
                on_gone()

        self._loop = loop
        loop.add_reader(self._sock.fileno(), readable)

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class Listener:
    """The main process's end for one API process: wake-ups, readiness, and its exit (EOF)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        on_wake: Callable[[], None],
        on_ready: Callable[[], None],
        on_gone: Callable[[], None],
    ) -> None:
        self._sock = sock
        self._on_wake = on_wake
        self._on_ready = on_ready
        self._on_gone = on_gone
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        woke = ready = gone = False
        while True:  # drain: the writes since the last turn of the loop wake the dispatcher once
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                gone = True
                break
            woke = woke or WAKE in data
            ready = ready or READY in data
        if ready:
            self._on_ready()
        if woke:
            self._on_wake()
        if gone:
            self.close()
            self._on_gone()

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
