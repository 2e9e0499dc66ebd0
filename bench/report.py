"""Benchmark results: figures with their baseline, ratio, target and verdict; the machine facts;
the table (rich) and the JSON file. Measures nothing itself.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (
    "batchyard",
    "boto3",
    "botocore",
    "starlette",
    "uvicorn",
    "h11",
    "httptools",
    "uvloop",
    "sqlalchemy",
    "docker",
    "moto",
    "py-spy",
    "rich",
)


@dataclass(slots=True)
class Figure:
    """One measured number. `ratio` is value / baseline when a baseline was measured."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    # Targets, any of them: on the ratio (value / baseline) or on the value itself.
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def target(self) -> str:
        parts = []
        if self.ratio_at_least is not None:
            parts.append(f">= {self.ratio_at_least:.0%} of baseline")
        if self.ratio_at_most is not None:
            parts.append(f"<= {self.ratio_at_most:.0%} of baseline")
        if self.at_least is not None:
            parts.append(f">= {_number(self.at_least)} {self.unit}")
        if self.at_most is not None:
            parts.append(f"<= {_number(self.at_most)} {self.unit}")
        return ", ".join(parts)

    @property
    def passed(self) -> bool | None:
        """None when the figure has no target (informational) or was not measured."""
        if not self.target:
            return None
        if self.value is None:
            return False
        ratio = self.ratio
        checks: list[bool] = []
        if self.ratio_at_least is not None:
            checks.append(ratio is not None and ratio >= self.ratio_at_least)
        if self.ratio_at_most is not None:
            checks.append(ratio is not None and ratio <= self.ratio_at_most)
        if self.at_least is not None:
            checks.append(self.value >= self.at_least)
        if self.at_most is not None:
            checks.append(self.value <= self.at_most)
        return all(checks)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, target=self.target or None, passed=self.passed)
        return data


@dataclass(slots=True)
class ScenarioResult:
    """A scenario's outcome: ok, not available (a missing engine or runtime), or error."""

    key: str
    title: str
    status: str = "ok"  # ok | not available | error
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "figures": [figure.as_json() for figure in self.figures],
            "notes": self.notes,
            "details": self.details,
            "profiles": self.profiles,
        }


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sample."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return float(ordered[index])


# -- machine facts ---------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command(*argv: str) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (done.stdout or done.stderr).strip()
    return out.splitlines()[0] if out else None


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or None,
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    sha = _command("git", "-C", str(REPO), "rev-parse", "HEAD")
    dirty = _command("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no")
    return {
        "nproc": os.cpu_count(),
        "memory_mib": mem_kib // 1024,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "os": _command("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": sys.version.split()[0],
        "batchyard_git_sha": sha,
        "batchyard_tree_dirty": bool(dirty),
        "packages": {name: package_version(name) for name in PACKAGES},
        "wrk": _command("sh", "-c", "wrk -v 2>&1 | head -1"),
        "docker_server": _command("docker", "version", "--format", "{{.Server.Version}}"),
        "load_average_at_start": list(os.getloadavg()),
    }


# -- output ----------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return ""
    return "[green]PASS[/green]" if passed else "[red]MISS[/red]"


def table(results: Iterable[ScenarioResult], title: str) -> Table:
    grid = Table(title=title, show_lines=False, expand=False)
    for column, justify in (
        ("scenario", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("baseline", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("", "left"),
    ):
        grid.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in results:
        if result.status != "ok" and not result.figures:
            reason = result.notes[-1] if result.notes else ""
            grid.add_row(result.key, f"{result.title}: {result.status}", "", "", "", reason, "")
            continue
        for index, figure in enumerate(result.figures):
            ratio = figure.ratio
            grid.add_row(
                result.key if index == 0 else "",
                figure.name,
                f"{_number(figure.value)} {figure.unit}",
                _number(figure.baseline) if figure.baseline is not None else "",
                f"{ratio:.0%}" if ratio is not None else "",
                figure.target,
                _verdict(figure.passed),
            )
    return grid


def print_report(results: Sequence[ScenarioResult], title: str) -> None:
    console = Console(width=160)
    console.print(table(results, title))
    for result in results:
        for note in result.notes:
            console.print(f"[dim]{result.key}: {note}[/dim]", highlight=False)


def write_json(
    path: Path,
    *,
    mode: str,
    facts: dict[str, Any],
    results: Sequence[ScenarioResult],
    started: float,
) -> None:
    figures = [f for r in results for f in r.figures]
    verdicts = [f.passed for f in figures if f.passed is not None]
    document = {
        "mode": mode,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": {**facts, "load_average_at_end": list(os.getloadavg())},
        "summary": {
            "targets": len(verdicts),
            "met": sum(1 for v in verdicts if v),
            "missed": sum(1 for v in verdicts if not v),
            "scenarios_not_ok": [r.key for r in results if r.status != "ok"],
        },
        "scenarios": [result.as_json() for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
