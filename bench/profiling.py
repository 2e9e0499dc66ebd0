"""py-spy profiles of a process while a scenario runs, summarized as its top frames (where the
samples are, by own time and by inclusive time). Never changes what it profiles.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 97  # samples per second; off the beat of periodic work


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


class Profile:
    """`with Profile(pid, "what") as p: ...` samples pid for the block; p.summary() after."""

    def __init__(self, pid: int, label: str, *, subprocesses: bool = False) -> None:
        self.pid = pid
        self.label = label
        self.subprocesses = subprocesses
        self._dir = Path(tempfile.mkdtemp(prefix="batchyard-pyspy-"))
        self.raw_path = self._dir / f"{label}.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def __enter__(self) -> Profile:
        exe = str(PY_SPY) if PY_SPY.exists() else (shutil.which("py-spy") or "py-spy")
        command = [
            exe, "record", "--format", "raw", "--nonblocking", "--rate", str(RATE),
            "--pid", str(self.pid), "--output", str(self.raw_path),
        ]  # fmt: skip
        if self.subprocesses:
            command.append("--subprocesses")
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if not self.raw_path.exists():
            self.error = (err or b"").decode(errors="replace").strip()[-500:] or "no output"

    def stacks(self) -> list[tuple[list[str], int]]:
        if not self.raw_path.exists():
            return []
        found = []
        for line in self.raw_path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                found.append((stack.split(";"), int(count)))
        return found

    def summary(self, top: int = 12) -> dict[str, Any]:
        return summarize(self.stacks(), top, error=self.error)

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _function(frame: str) -> str:
    """'name (path/to/file.py:123)' -> 'name (file.py)': lines differ inside one function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    if "site-packages" in parts:
        short = "/".join(parts[parts.index("site-packages") + 1 :])
    elif "batchyard" in parts:
        short = "/".join(parts[parts.index("batchyard") :])
    else:
        short = Path(path).name
    return f"{name} ({short})"


def summarize(
    stacks: list[tuple[list[str], int]], top: int = 12, *, error: str | None = None
) -> dict[str, Any]:
    """Top functions by own samples (leaf) and by inclusive samples, as % of all samples."""
    total = sum(count for _, count in stacks)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        names = [_function(frame) for frame in frames if not frame.startswith("process ")]
        if not names:
            continue
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count

    def shares(counter: collections.Counter[str], count: int, keep: str = "") -> list[Any]:
        if not total:
            return []
        chosen = [(name, n) for name, n in counter.most_common() if keep in name][:count]
        return [(name, round(100 * n / total, 1)) for name, n in chosen]

    return {
        "samples": total,
        "error": error,
        "own": shares(own, top),
        # Where the project's own code spends it: the frames worth reading first.
        "inclusive_batchyard": shares(inclusive, top * 2, "batchyard/"),
        "inclusive": shares(inclusive, top * 3),
    }
