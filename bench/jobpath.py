"""Job-path benchmark: throughput and latency of `batchyard server` end to end, over boto3.

Starts real servers (subprocesses, ephemeral port, temp data dir) and measures, against a raw
asyncio loop spawning /bin/true at concurrency 8 measured in the same run:
  (a) one array job of N children running `true`: SubmitJob -> parent SUCCEEDED
  (b) M separate jobs from 8 concurrent boto3 clients: first SubmitJob -> all SUCCEEDED
  (c) on an idle server, sequential trivial jobs: submit -> RUNNING / SUCCEEDED latencies
  (d) SubmitJob of a 10,000-child array: idle, and while another array is running
Prints a table, then the numbers as JSON. `--quick` runs smaller sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

MAX_VCPUS = 8


# -- a server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`batchyard server` in a subprocess with its own temp data dir."""

    def __init__(self, root: Path, name: str) -> None:
        self.data_dir = root / name
        self.port = _free_port()
        self.log_path = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "batchyard", "server", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--log-level", "warning",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def client(self) -> Any:
        return _client(self.url)


def _client(url: str) -> Any:
    return boto3.client(
        "batch",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=4),
    )


@contextlib.contextmanager
def running_server(root: Path, name: str) -> Iterator[Server]:
    server = Server(root, name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait(probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_queue(batch: Any, name: str, max_vcpus: int = MAX_VCPUS) -> tuple[str, str]:
    """A process CE with maxvCpus and a queue on it, both VALID; returns (queue, definition)."""
    batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": max_vcpus, "subnets": []},
    )
    batch.create_job_queue(
        jobQueueName=f"{name}-q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": f"{name}-ce"}],
    )
    _wait(
        lambda: (
            batch.describe_job_queues(jobQueues=[f"{name}-q"])["jobQueues"][0]["status"] == "VALID"
        ),
        10,
        "queue VALID",
    )
    definition = batch.register_job_definition(
        jobDefinitionName=f"{name}-true",
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )["jobDefinitionArn"]
    return f"{name}-q", str(definition)


def status_of(batch: Any, job_id: str) -> dict[str, Any]:
    return dict(batch.describe_jobs(jobs=[job_id])["jobs"][0])


# -- the baseline --------------------------------------------------------------------------------


async def _spawn_true(count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            process = await asyncio.create_subprocess_exec("/bin/true")
            await process.wait()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


def baseline(count: int) -> float:
    """Processes per second a raw asyncio loop spawns /bin/true at, 8 at a time."""
    return asyncio.run(_spawn_true(count, MAX_VCPUS))


# -- scenarios -----------------------------------------------------------------------------------


def scenario_array(server: Server, size: int) -> dict[str, float]:
    """(a): one array of `size` children of `true`, submit -> parent SUCCEEDED."""
    batch = server.client()
    queue, definition = make_queue(batch, "a")
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    parent = batch.submit_job(
        jobName="array", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": size}
    )["jobId"]
    accepted = time.perf_counter() - started
    _wait(
        lambda: status_of(batch, parent)["status"] in ("SUCCEEDED", "FAILED"),
        timeout=max(120.0, size / 10),
        what="array parent to end",
        interval=0.05,
    )
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu
    final = status_of(batch, parent)
    if final["status"] != "SUCCEEDED":
        raise RuntimeError(f"array parent ended {final['status']}: {final.get('statusReason')}")
    return {
        "size": size,
        "seconds": elapsed,
        "jobs_per_s": size / elapsed,
        "submit_s": accepted,
        "server_cpu_ms_per_job": cpu / size * 1000,
    }


def submit_concurrently(
    url: str, queue: str, definition: str, total: int, clients: int = 8
) -> tuple[list[str], float, float]:
    """`total` SubmitJob calls from `clients` boto3 clients, each on a thread of this process
    (one interpreter lock between them, as in one client program), made once every client is
    ready: (job ids, perf_counter() at the first call, seconds to the last answer)."""
    per_client = total // clients
    ids: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def submitter() -> None:
        client = _client(url)
        barrier.wait()
        try:
            mine = [
                client.submit_job(jobName="one", jobQueue=queue, jobDefinition=definition)["jobId"]
                for _ in range(per_client)
            ]
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            return
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=submitter) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"submit failed: {errors[0]!r}")
    return ids, started, seconds


def clients_alone(url: str, total: int, clients: int = 8) -> dict[str, float]:
    """The clients of (b) against a server that answers SubmitJob with no work behind it
    (bench/http_baseline.py): what they cost alone bounds the jobs/s (b) can reach."""
    ids, _, seconds = submit_concurrently(url, "q", "d", total, clients)
    return {"submits": len(ids), "submit_per_s": len(ids) / seconds}


def scenario_separate(server: Server, total: int, clients: int = 8) -> dict[str, float]:
    """(b): `total` separate jobs from `clients` concurrent boto3 clients, all SUCCEEDED."""
    batch = server.client()
    queue, definition = make_queue(batch, "b")
    cpu = server.cpu_seconds()
    ids, started, submitted = submit_concurrently(server.url, queue, definition, total, clients)

    def count(status: str) -> int:
        seen = 0
        for page in batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, jobStatus=status, PaginationConfig={"PageSize": 1000}
        ):
            seen += len(page["jobSummaryList"])
        return seen

    def drained() -> bool:
        # One job of each unfinished status at most: cheap for the server being measured.
        return not any(
            batch.list_jobs(jobQueue=queue, jobStatus=status, maxResults=1)["jobSummaryList"]
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        )

    done = len(ids)
    _wait(drained, timeout=max(120.0, done / 5), what="separate jobs to end", interval=0.05)
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu
    failed, succeeded = count("FAILED"), count("SUCCEEDED")
    if failed or succeeded != done:
        raise RuntimeError(f"of {done} separate jobs, {succeeded} SUCCEEDED and {failed} FAILED")
    return {
        "jobs": done,
        "seconds": elapsed,
        "jobs_per_s": done / elapsed,
        "submit_per_s": done / submitted,
        "server_cpu_ms_per_job": cpu / done * 1000,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def scenario_latency(server: Server, count: int) -> dict[str, float]:
    """(c): sequential trivial jobs on an idle server.

    submit -> RUNNING is the server's startedAt - createdAt (RUNNING of a `true` job lasts about
    a millisecond, too short to observe by polling); submit -> SUCCEEDED is what the client
    sees: from sending SubmitJob to the first DescribeJobs answering SUCCEEDED.
    """
    batch = server.client()
    queue, definition = make_queue(batch, "c")
    to_running: list[float] = []
    to_succeeded: list[float] = []
    to_stopped: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        job_id = batch.submit_job(jobName="one", jobQueue=queue, jobDefinition=definition)["jobId"]
        while True:
            job = status_of(batch, job_id)
            if job["status"] in ("SUCCEEDED", "FAILED"):
                break
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"job {job_id} stuck in {job['status']}")
            time.sleep(0.001)
        to_succeeded.append((time.perf_counter() - started) * 1000)
        if job["status"] != "SUCCEEDED":
            raise RuntimeError(f"job {job_id} ended {job['status']}")
        to_running.append(job["startedAt"] - job["createdAt"])
        to_stopped.append(job["stoppedAt"] - job["createdAt"])
    return {
        "jobs": count,
        "running_p50_ms": _percentile(to_running, 0.5),
        "running_p99_ms": _percentile(to_running, 0.99),
        "succeeded_p50_ms": _percentile(to_succeeded, 0.5),
        "succeeded_p99_ms": _percentile(to_succeeded, 0.99),
        "stopped_p50_ms": _percentile(to_stopped, 0.5),
        "mean_succeeded_ms": statistics.fmean(to_succeeded),
    }


def scenario_submit_busy(server: Server, size: int, samples: int) -> dict[str, float]:
    """(d): SubmitJob of a 10,000-child array on an idle server, then of `size`-child arrays
    while that one is being dispatched."""
    batch = server.client()
    queue, definition = make_queue(batch, "d")
    started = time.perf_counter()
    busy = batch.submit_job(
        jobName="busy", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": 10_000}
    )["jobId"]
    idle = time.perf_counter() - started
    _wait(
        lambda: status_of(batch, busy)["arrayProperties"]["statusSummary"]["SUCCEEDED"] > 100,
        timeout=60,
        what="the busy array to run",
    )
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        batch.submit_job(
            jobName="late", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": size}
        )
        latencies.append(time.perf_counter() - started)
        time.sleep(0.5)
    summary = status_of(batch, busy)["arrayProperties"]["statusSummary"]
    if summary["SUCCEEDED"] >= 10_000:
        raise RuntimeError("the busy array ended before the samples: not measured while busy")
    return {
        "size": size,
        "idle_s": idle,
        "max_s": max(latencies),
        "median_s": statistics.median(latencies),
    }


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--array", type=int, help="children of the array of (a)")
    parser.add_argument("--separate", type=int, help="jobs of (b)")
    parser.add_argument("--sequential", type=int, help="jobs of (c)")
    parser.add_argument(
        "--only", default="abcd", help="scenarios to run, e.g. 'ac' (default: abcd)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp data dirs and logs")
    args = parser.parse_args(argv)
    array = args.array or (2_000 if args.quick else 10_000)
    separate = args.separate or (400 if args.quick else 2_000)
    sequential = args.sequential or (50 if args.quick else 200)
    spawns = 2_000 if args.quick else 5_000

    root = Path(tempfile.mkdtemp(prefix="batchyard-bench-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "quick": args.quick}

    def bracketed(name: str, run: Callable[[Server], dict[str, Any]]) -> None:
        """Run a scenario on a fresh server between two baseline measurements: on a shared
        machine the baseline moves, and a ratio means something only against its neighbours."""
        before = baseline(spawns)
        with running_server(root, f"{name}-{uuid.uuid4().hex[:6]}") as server:
            result = run(server)
        time.sleep(1)  # let the server's launcher wind down
        after = baseline(spawns)
        result["baseline_per_s"] = (before + after) / 2
        result["baselines"] = [before, after]
        results[name] = result
        print(f"({name}) {result}", flush=True)

    try:
        if "a" in args.only:
            bracketed("a", lambda server: scenario_array(server, array))
        if "b" in args.only:
            bracketed("b", lambda server: scenario_separate(server, separate))
        if "c" in args.only:
            with running_server(root, "c") as server:
                results["c"] = scenario_latency(server, sequential)
            print(f"(c) {results['c']}", flush=True)
        if "d" in args.only:
            with running_server(root, "d") as server:
                results["d"] = scenario_submit_busy(server, 10_000, 2 if args.quick else 4)
            print(f"(d) {results['d']}", flush=True)
    finally:
        if args.keep:
            print(f"data and logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'scenario':<46} {'value':>10} {'target':>12}")
    if "a" in results:
        a = results["a"]
        ratio = a["jobs_per_s"] / a["baseline_per_s"]
        print(f"{'(a) array ' + str(a['size']) + ' jobs/s':<46} {a['jobs_per_s']:>10.0f} "
              f"{'>= 50%':>12}  ({ratio:.0%} of baseline {a['baseline_per_s']:.0f}/s)")  # fmt: skip
    if "b" in results:
        b = results["b"]
        ratio = b["jobs_per_s"] / b["baseline_per_s"]
        print(f"{'(b) separate ' + str(b['jobs']) + ' x8 clients jobs/s':<46} "
              f"{b['jobs_per_s']:>10.0f} {'>= 40%':>12}  ({ratio:.0%} of baseline "
              f"{b['baseline_per_s']:.0f}/s)")  # fmt: skip
    if "c" in results:
        c = results["c"]
        print(f"{'(c) submit->RUNNING p50 (ms)':<46} {c['running_p50_ms']:>10.1f} {'<= 20':>12}")
        print(f"{'(c) submit->RUNNING p99 (ms)':<46} {c['running_p99_ms']:>10.1f} {'<= 100':>12}")
        print(f"{'(c) submit->SUCCEEDED p50 (ms)':<46} {c['succeeded_p50_ms']:>10.1f} "
              f"{'<= 60':>12}")  # fmt: skip
    if "d" in results:
        d = results["d"]
        print(f"{'(d) SubmitJob 10k array, idle (s)':<46} {d['idle_s']:>10.3f} {'< 1':>12}")
        print(f"{'(d) SubmitJob 10k array, busy, max (s)':<46} {d['max_s']:>10.3f} {'< 1':>12}")
    print()
    print(json.dumps(results, indent=None, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
