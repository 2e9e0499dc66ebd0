"""Scenario 5, the API under raw HTTP load (no boto3 in the client): SubmitJob over many
connections with every acknowledged job checked durable after a kill -9, DescribeJobs of 100
ids, each with one API process and with API_PROCESSES (`--api-processes`), and DescribeJobs /
ListJobs latency and server RSS with a very large store. Also the load generators (wrk with a
Lua script, or an asyncio fallback) that peers.py reuses.

    python bench/api_load.py fill DATA_DIR JOBS SAMPLE_JSON   # fill a store (a subprocess)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import http.client
import inspect
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3

import jobpath
import profiling
from report import REPO, Figure, ScenarioResult, median, percentile

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / "results" / "cache"
QUEUE = "bench-q"
DEFINITION = "bench-true"
CONNECTIONS = 64
DESCRIBE_IDS = 100
API_PROCESSES = 2  # the multi-process configuration measured beside the single process
# Same as any client's: Batchyard ignores it on loopback; moto's server routes by its scope.
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/batch/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0"
)
HEADERS = {"Content-Type": "application/json", "Authorization": AUTHORIZATION}


# -- load generators ------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Load:
    """What one load run got: answers by kind, the rate of 200s, latencies under load."""

    tool: str
    path: str
    connections: int
    seconds: float
    requests: int = 0
    non_2xx: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    ids: list[str] = dataclasses.field(default_factory=list)  # jobIds answered with a 200

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "path": self.path,
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "socket_errors": self.errors,
            "ok_per_s": round(self.rate, 1),
            "latency_p50_ms": self.p50_ms,
            "latency_p99_ms": self.p99_ms,
        }


def ensure_wrk() -> tuple[str | None, str]:
    """The wrk binary, installing Debian's package when it is missing; else why not."""
    found = shutil.which("wrk")
    if found:
        return found, "found"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "wrk absent and apt-get unavailable (not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=300, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            return None, f"apt-get could not install wrk: {error}"
    found = shutil.which("wrk")
    return (found, "installed with apt-get") if found else (None, "wrk not found after install")


_LUA = r"""
local bodies = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines("__BODIES__") do bodies[#bodies + 1] = line end
  index = tid
  ok = 0
  bad = 0
  if "__IDS__" ~= "" then
    out = io.open("__IDS__" .. "/ids-" .. tid .. ".txt", "w")
    out:setvbuf("line")
  end
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", "__PATH__", __HEADERS__, bodies[index])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if out then
      local id = string.match(body, '"jobId":%s*"([^"]+)"')
      if id then out:write(id, "\n") end
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("THREAD ok=%d bad=%d\n", t:get("ok"), t:get("bad")))
  end
end
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    wrk: str,
    url: str,
    path: str,
    bodies: Sequence[str],
    seconds: float,
    *,
    connections: int = CONNECTIONS,
    threads: int = 1,
    collect_ids: bool = False,
) -> Load:
    work = Path(tempfile.mkdtemp(prefix="batchyard-wrk-"))
    try:
        bodies_path = work / "bodies.txt"
        bodies_path.write_text("".join(body + "\n" for body in bodies))
        ids_dir = work / "ids" if collect_ids else None
        if ids_dir is not None:
            ids_dir.mkdir()
        headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in HEADERS.items()) + "}"
        script = (
            _LUA.replace("__BODIES__", str(bodies_path))
            .replace("__IDS__", str(ids_dir) if ids_dir else "")
            .replace("__PATH__", path)
            .replace("__HEADERS__", headers)
        )
        (work / "load.lua").write_text(script)
        command = [
            wrk, "--latency", "--timeout", "10s", "-t", str(threads), "-c", str(connections),
            "-d", f"{max(1, round(seconds))}s", "-s", str(work / "load.lua"), url,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        load = _parse_wrk(done.stdout, path, connections)
        if ids_dir is not None:
            for part in sorted(ids_dir.iterdir()):
                load.ids.extend(line for line in part.read_text().splitlines() if line)
        return load
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _parse_wrk(out: str, path: str, connections: int) -> Load:
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    load = Load("wrk", path, connections, _ms(total.group(2)) / 1000, int(total.group(1)))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    load.non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    load.errors = sum(int(n) for n in errors.groups()) if errors else 0
    for quantile, field in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s+{quantile}%\s+([\d.]+\w+)", out, re.MULTILINE)
        if found:
            setattr(load, field, round(_ms(found.group(1)), 3))
    return load


async def _python_load(
    host: str, port: int, path: str, bodies: Sequence[str], seconds: float, connections: int,
    collect_ids: bool,
) -> Load:  # fmt: skip
    load = Load("python-asyncio", path, connections, seconds)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            index = offset
            while time.perf_counter() < deadline:
                body = bodies[index % len(bodies)].encode()
                index += 1
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                sent = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                answer = await reader.readexactly(length)
                latencies.append((time.perf_counter() - sent) * 1000)
                load.requests += 1
                if status_line.split(b" ", 2)[1:2] != [b"200"]:
                    load.non_2xx += 1
                elif collect_ids:
                    job_id = json.loads(answer).get("jobId")
                    if job_id:
                        load.ids.append(job_id)
        except (OSError, asyncio.IncompleteReadError):
            load.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    load.seconds = time.perf_counter() - started
    if latencies:
        load.p50_ms = round(percentile(latencies, 0.5), 3)
        load.p99_ms = round(percentile(latencies, 0.99), 3)
    return load


def run_load(
    wrk: str | None,
    url: str,
    path: str,
    bodies: Sequence[str],
    seconds: float,
    *,
    connections: int = CONNECTIONS,
    collect_ids: bool = False,
) -> Load:
    """wrk when there is one, else the asyncio client (which shares the CPU with the server)."""
    if wrk is not None:
        return run_wrk(
            wrk, url, path, bodies, seconds, connections=connections, collect_ids=collect_ids
        )
    host, port = url.removeprefix("http://").split(":")
    return asyncio.run(
        _python_load(host, int(port), path, bodies, seconds, connections, collect_ids)
    )


def submit_bodies(queue: str, definition: str, count: int = 16) -> list[str]:
    return [
        json.dumps({"jobName": f"load-{i}", "jobQueue": queue, "jobDefinition": definition})
        for i in range(count)
    ]


def describe_bodies(ids: Sequence[str], count: int = 256, seed: int = 7) -> list[str]:
    chooser = random.Random(seed)
    pool = list(ids)
    size = min(DESCRIBE_IDS, len(pool))
    return [json.dumps({"jobs": chooser.sample(pool, size)}) for _ in range(count)]


# -- sequential latency over one keep-alive connection ----------------------------------------


def sequential_latencies(
    port: int, path: str, bodies: Sequence[str], count: int, check: str | None = None
) -> list[float]:
    """Milliseconds per request, one at a time; `check` is a key the answer must carry."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    try:
        for index in range(count):
            body = bodies[index % len(bodies)]
            started = time.perf_counter()
            connection.request("POST", path, body, HEADERS)
            response = connection.getresponse()
            data = response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {data[:300]!r}")
            if check is not None and index == 0 and not json.loads(data).get(check):
                raise RuntimeError(f"{path} answered without {check}: {data[:300]!r}")
    finally:
        connection.close()
    return latencies


def rss_mib(pid: int) -> dict[str, float]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_disabled_queue(url: str) -> None:
    """A queue on a DISABLED compute environment: SubmitJob is accepted, nothing runs, so the
    load measures the API and the dispatcher's bookkeeping, not process spawning."""
    batch = boto3.client(
        "batch",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    batch.create_compute_environment(
        computeEnvironmentName="bench-ce",
        type="MANAGED",
        state="DISABLED",
        computeResources={"type": "EC2", "maxvCpus": 8, "subnets": []},
    )
    batch.create_job_queue(
        jobQueueName=QUEUE,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "bench-ce"}],
    )
    batch.register_job_definition(
        jobDefinitionName=DEFINITION,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )


@contextlib.contextmanager
def http_baseline_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "http_baseline.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP baseline server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def durable_count(data_dir: Path, ids: Sequence[str]) -> int:
    """How many of ids the store holds, read with the server down."""
    from batchyard.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{(data_dir / 'batchyard.db').resolve()}")
    try:
        found = 0
        for first in range(0, len(ids), 5000):
            found += len(store.get_jobs(ids[first : first + 5000]))
        return found
    finally:
        store.close()


class ApiServer(jobpath.Server):
    """jobpath's server with `--api-processes N` (through BATCHYARD_API_PROCESSES)."""

    def __init__(self, root: Path, name: str, api_processes: int) -> None:
        super().__init__(root, name)
        self.api_processes = api_processes

    def start(self) -> None:
        before = os.environ.get("BATCHYARD_API_PROCESSES")
        os.environ["BATCHYARD_API_PROCESSES"] = str(self.api_processes)
        try:
            super().start()
        finally:
            if before is None:
                del os.environ["BATCHYARD_API_PROCESSES"]
            else:
                os.environ["BATCHYARD_API_PROCESSES"] = before

    def pids(self) -> list[int]:
        """The main process and its API-only processes."""
        assert self.process is not None
        main = self.process.pid
        found = [main]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (
                int(stat.rsplit(")", 1)[1].split()[1]) == main
                and b"--internal-api-process" in cmdline
            ):
                found.append(int(entry.name))
        return found

    def kill_all(self) -> None:
        """kill -9 every process of the server at once, and wait until they are gone (the
        API processes hold the port until then)."""
        assert self.process is not None
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids[1:]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"API processes {pids[1:]} still alive after kill -9")
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- filling a big store --------------------------------------------------------------------


def _fill_key(jobs: int) -> str:
    digest = hashlib.sha256(f"{jobs}\n".encode())
    digest.update(inspect.getsource(fill).encode())
    store = REPO / "src" / "batchyard" / "store"
    for path in sorted([*store.rglob("*.py"), REPO / "src/batchyard/domain/model.py"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def filled_store(jobs: int, data_dir: Path, *, use_cache: bool = True) -> tuple[list[str], float]:
    """A store of `jobs` jobs at data_dir/batchyard.db; returns (sample of top-level ids, fill
    seconds). Filled by a subprocess; kept in bench/results/cache keyed by the store's code."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"store-{jobs}-{_fill_key(jobs)}"
    started = time.perf_counter()
    if not (use_cache and (cached / "sample.json").exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="fill-", dir=CACHE))
        try:
            subprocess.run(
                [sys.executable, __file__, "fill", str(work), str(jobs), str(work / "sample.json")],
                check=True,
                timeout=3600,
            )
            if use_cache:
                shutil.rmtree(cached, ignore_errors=True)
                for old in CACHE.glob(f"store-{jobs}-*"):
                    shutil.rmtree(old, ignore_errors=True)
                CACHE.mkdir(parents=True, exist_ok=True)
                work.rename(cached)
            else:
                cached = work
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    fill_seconds = time.perf_counter() - started
    for suffix in ("", "-wal"):  # a WAL left behind holds committed pages too
        if (cached / f"batchyard.db{suffix}").exists():
            shutil.copyfile(cached / f"batchyard.db{suffix}", data_dir / f"batchyard.db{suffix}")
    sample = json.loads((cached / "sample.json").read_text())
    if not use_cache:
        shutil.rmtree(cached, ignore_errors=True)
    return sample, fill_seconds


def fill(data_dir: Path, jobs: int, sample_path: Path) -> None:
    """Store `jobs` jobs: 10% children of 1,000-child arrays, the rest single jobs (90%
    SUCCEEDED, 5% FAILED, 5% RUNNABLE on a DISABLED compute environment), all decided already."""
    from batchyard.domain.model import Attempt, Job, JobStatus
    from batchyard.scheduling.snapshot import Plan
    from batchyard.service import compute_environments, job_definitions, job_queues
    from batchyard.service import jobs as job_service
    from batchyard.service.context import ServiceContext
    from batchyard.store.sql import SqlStore

    class Clock:
        def now_ms(self) -> int:
            return time.time_ns() // 1_000_000

    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(f"sqlite:///{(data_dir / 'batchyard.db').resolve()}")
    ctx = ServiceContext(store=store, clock=Clock())
    compute_environments.create_compute_environment(
        ctx,
        compute_environment_name="bench-ce",
        type="MANAGED",
        state="DISABLED",
        compute_resources={"type": "EC2", "maxvCpus": 8, "subnets": []},
    )
    job_queues.create_job_queue(
        ctx,
        job_queue_name=QUEUE,
        priority=1,
        compute_environment_order=[{"order": 1, "computeEnvironment": "bench-ce"}],
    )
    definition = job_definitions.register_job_definition(
        ctx,
        job_definition_name=DEFINITION,
        type="container",
        container_properties={
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )
    template = job_service.submit_job(
        ctx, job_name="template", job_queue=QUEUE, job_definition=definition.arn
    )
    now = Clock().now_ms()
    arrays = jobs // 10_000
    singles = jobs - 1 - arrays * 1001
    step_ms = 50
    first_created = now - (jobs + 10) * step_ms
    sample: list[str] = []
    every = max(1, singles // 20_000)
    made = 0

    def finished(job: Job, index: int, failed: bool) -> Job:
        created = first_created + index * step_ms
        task_id = uuid.uuid4().hex
        attempt = Attempt(
            task_id=task_id,
            compute_environment="bench-ce",
            placed_at=created + 100,
            started_at=created + 200,
            stopped_at=created + 1200,
            exit_code=1 if failed else 0,
            status_reason="Essential container in task exited",
            log_stream_name=f"{DEFINITION}/default/{task_id}",
            runtime_handle="bench",
        )
        return dataclasses.replace(
            job,
            status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
            status_reason="Essential container in task exited",
            created_at=created,
            started_at=created + 200,
            stopped_at=created + 1200,
            attempts=(attempt,),
            compute_environment="bench-ce",
        )

    def store_batch(batch: list[Job]) -> None:
        stored = store.insert_jobs(batch)
        store.commit(Plan(evaluated=tuple((job.job_id, job.version) for job in stored)))

    batch: list[Job] = []
    array_every = singles // arrays if arrays else 0
    for index in range(singles):
        job_id = str(uuid.uuid4())
        kind = index % 20
        if kind == 1:
            job = dataclasses.replace(
                template,
                job_id=job_id,
                status=JobStatus.RUNNABLE,
                created_at=first_created + index * step_ms,
            )
        else:
            job = finished(dataclasses.replace(template, job_id=job_id), index, kind == 0)
        batch.append(job)
        if index % every == 0:
            sample.append(job_id)
        if array_every and index % array_every == 0 and made < arrays:
            made += 1
            parent_id = str(uuid.uuid4())
            parent = finished(
                dataclasses.replace(template, job_id=parent_id, array_size=1000), index, False
            )
            batch.append(dataclasses.replace(parent, attempts=(), started_at=None))
            batch.extend(
                finished(
                    dataclasses.replace(
                        template,
                        job_id=f"{parent_id}:{child}",
                        array_index=child,
                        array_parent_id=parent_id,
                    ),
                    index,
                    False,
                )
                for child in range(1000)
            )
        if len(batch) >= 10_000:
            store_batch(batch)
            batch = []
    if batch:
        store_batch(batch)
    store.close()
    sample_path.write_text(json.dumps(sample))


# -- the scenario -------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class ApiSettings:
    seconds: float  # per load run
    big_store: int  # jobs in the store for the latency / RSS part
    small_store: int
    latency_samples: int
    repeats: int


def run_scenario(
    settings: ApiSettings, *, profile: bool = False, use_cache: bool = True
) -> tuple[ScenarioResult, dict[str, Any]]:
    """Scenario 5. Returns the result and what peers.py compares against (the loads)."""
    scenario = ScenarioResult("s5", "API under raw HTTP load; DescribeJobs/ListJobs at scale")
    shared: dict[str, Any] = {}
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="batchyard-bench-s5-"))
    try:
        wrk, how = ensure_wrk()
        scenario.details["load_generator"] = {
            "tool": "wrk" if wrk else "python-asyncio",
            "wrk": how,
            "connections": CONNECTIONS,
            "seconds_per_run": settings.seconds,
        }
        shared["wrk"] = wrk
        _throughput(scenario, shared, root, wrk, settings, profile)
        _at_scale(scenario, root, settings, profile, use_cache)
    except Exception as error:
        scenario.status = "error"
        scenario.notes.append(f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    scenario.seconds = time.perf_counter() - started
    return scenario, shared


def _throughput(
    scenario: ScenarioResult,
    shared: dict[str, Any],
    root: Path,
    wrk: str | None,
    settings: ApiSettings,
    profile: bool,
) -> None:
    floors = []
    with http_baseline_server() as url:
        for _ in range(settings.repeats):
            floors.append(
                run_load(wrk, url, "/v1/submitjob", submit_bodies(QUEUE, DEFINITION), 3).rate
            )
    floor = median(floors)
    shared["http_floor"] = floor

    configs = (1, API_PROCESSES)
    submits: dict[int, list[Load]] = {n: [] for n in configs}
    describes: dict[int, list[Load]] = {n: [] for n in configs}
    durable: dict[int, list[tuple[int, int]]] = {n: [] for n in configs}
    for attempt in range(settings.repeats):
        for processes in configs:  # side by side in every repeat: the machine's load varies
            _load_server(
                root,
                f"load-{attempt}-p{processes}",
                processes,
                wrk,
                settings,
                scenario,
                profile=profile and attempt == 0 and processes == 1,
                submits=submits[processes],
                describes=describes[processes],
                durable=durable[processes],
            )
    submit_rate = {n: median([load.rate for load in submits[n]]) for n in configs}
    describe_rate = {n: median([load.rate for load in describes[n]]) for n in configs}
    # peers.py compares one Batchyard process with one moto process.
    shared["submit_rate"] = submit_rate[1]
    shared["describe_rate"] = describe_rate[1]
    shared["store_jobs"] = [len(load.ids) for load in submits[1]]
    floor_name = "HTTP floor (same uvicorn, no work)"
    single_name = "1 API process, same run"
    many = f"{API_PROCESSES} API processes"
    scenario.add(
        Figure(
            f"SubmitJob, {CONNECTIONS} connections, 1 API process",
            submit_rate[1],
            "req/s",
            baseline=floor,
            baseline_name=floor_name,
        )
    )
    scenario.add(
        Figure(
            f"SubmitJob, {CONNECTIONS} connections, {many}",
            submit_rate[API_PROCESSES],
            "req/s",
            baseline=submit_rate[1],
            baseline_name=single_name,
            at_least=2000.0,
        )
    )
    acked = sum(a for n in configs for a, _ in durable[n])
    kept = sum(k for n in configs for _, k in durable[n])
    per_config = "; ".join(
        f"{n} process{'es' if n > 1 else ''}: {sum(k for _, k in durable[n]):,} of "
        f"{sum(a for a, _ in durable[n]):,}"
        for n in configs
    )
    scenario.add(
        Figure(
            "acknowledged jobs found after kill -9 + restart",
            100.0 * kept / acked if acked else None,
            "%",
            at_least=100.0,
            note=f"{kept:,} of {acked:,} acknowledged job ids in the store ({per_config})",
        )
    )
    scenario.add(
        Figure(
            f"DescribeJobs of {DESCRIBE_IDS} ids, {CONNECTIONS} connections, 1 API process",
            describe_rate[1],
            "req/s",
            baseline=floor,
            baseline_name=floor_name,
        )
    )
    scenario.add(
        Figure(
            f"DescribeJobs of {DESCRIBE_IDS} ids, {CONNECTIONS} connections, {many}",
            describe_rate[API_PROCESSES],
            "req/s",
            baseline=describe_rate[1],
            baseline_name=single_name,
            at_least=300.0,
        )
    )
    scenario.details["http_floor_per_s"] = [round(f, 1) for f in floors]
    for n in configs:
        suffix = "" if n == 1 else f"_{n}_processes"
        scenario.details[f"submitjob{suffix}"] = [load.as_json() for load in submits[n]]
        scenario.details[f"describejobs{suffix}"] = [load.as_json() for load in describes[n]]
        scenario.details[f"durability{suffix}"] = [
            {"acknowledged": a, "in_store": k} for a, k in durable[n]
        ]
    scenario.notes.append(
        "SubmitJob goes to a queue whose compute environment is DISABLED: jobs are accepted and "
        "made RUNNABLE by the dispatcher, none runs (the job path is s2-s4)"
    )
    scenario.notes.append(
        f"with {API_PROCESSES} API processes (`--api-processes {API_PROCESSES}`) the main "
        "process (API, dispatcher) and the API-only processes serve one listening socket; "
        "kill -9 goes to every one of them at once before the store is checked"
    )


def _load_server(
    root: Path,
    name: str,
    processes: int,
    wrk: str | None,
    settings: ApiSettings,
    scenario: ScenarioResult,
    *,
    profile: bool,
    submits: list[Load],
    describes: list[Load],
    durable: list[tuple[int, int]],
) -> None:
    """SubmitJob under load, kill -9, durability check, restart, DescribeJobs under load."""
    server = ApiServer(root, name, processes)
    try:
        server.start()
        make_disabled_queue(server.url)
        process = server.process
        assert process is not None
        sampled = profiling.Profile(process.pid, "s5-submit") if profile else None
        with sampled or contextlib.nullcontext():
            load = run_load(
                wrk,
                server.url,
                "/v1/submitjob",
                submit_bodies(QUEUE, DEFINITION),
                settings.seconds,
                collect_ids=True,
            )
        if sampled is not None:
            scenario.profiles["submitjob-server"] = sampled.summary()
            sampled.cleanup()
        submits.append(load)
        # kill -9 at once: what was acknowledged must be in the store.
        server.kill_all()
        ids = list(dict.fromkeys(load.ids))
        durable.append((len(ids), durable_count(server.data_dir, ids)))
        server.start()  # the same data dir, after the kill
        process = server.process
        assert process is not None
        bodies = describe_bodies(ids)
        sampled = profiling.Profile(process.pid, "s5-describe") if profile else None
        with sampled or contextlib.nullcontext():
            describes.append(
                run_load(wrk, server.url, "/v1/describejobs", bodies, settings.seconds)
            )
        if sampled is not None:
            scenario.profiles["describejobs-server"] = sampled.summary()
            sampled.cleanup()
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def _at_scale(
    scenario: ScenarioResult, root: Path, settings: ApiSettings, profile: bool, use_cache: bool
) -> None:
    measured: dict[int, dict[str, Any]] = {}
    for jobs in (settings.small_store, settings.big_store):
        name = f"store-{jobs}"
        server = jobpath.Server(root, name)
        try:
            sample, fill_seconds = filled_store(jobs, server.data_dir, use_cache=use_cache)
            server.start()
            process = server.process
            assert process is not None
            time.sleep(1.0)  # the first dispatcher round and the retention sweep
            describe = describe_bodies(sample, count=max(64, settings.latency_samples))
            list_body = [json.dumps({"jobQueue": QUEUE, "jobStatus": "SUCCEEDED"})]
            is_big = jobs == settings.big_store
            sampled = profiling.Profile(process.pid, name) if profile and is_big else None
            with sampled or contextlib.nullcontext():
                described = sequential_latencies(
                    server.port, "/v1/describejobs", describe, settings.latency_samples, "jobs"
                )
                listed = sequential_latencies(
                    server.port,
                    "/v1/listjobs",
                    list_body,
                    settings.latency_samples,
                    "jobSummaryList",
                )
            if sampled is not None:
                scenario.profiles["at-scale-server"] = sampled.summary()
                sampled.cleanup()
            memory = rss_mib(process.pid)
            measured[jobs] = {
                "jobs": jobs,
                "fill_or_cache_seconds": round(fill_seconds, 1),
                "describe_p50_ms": round(percentile(described, 0.5), 3),
                "describe_p99_ms": round(percentile(described, 0.99), 3),
                "list_p50_ms": round(percentile(listed, 0.5), 3),
                "list_p99_ms": round(percentile(listed, 0.99), 3),
                "rss_mib": round(memory.get("VmRSS", 0.0), 1),
                "peak_rss_mib": round(memory.get("VmHWM", 0.0), 1),
                "samples": settings.latency_samples,
            }
        finally:
            server.stop()
            shutil.rmtree(server.data_dir, ignore_errors=True)
    small, big = measured[settings.small_store], measured[settings.big_store]
    label = f"{settings.big_store:,} jobs"
    base = f"same, {settings.small_store:,} jobs"
    scenario.add(
        Figure(
            f"DescribeJobs({DESCRIBE_IDS} ids) p99, {label}",
            big["describe_p99_ms"],
            "ms",
            baseline=small["describe_p99_ms"],
            baseline_name=base,
            at_most=10.0,
        )
    )
    scenario.add(
        Figure(
            f"ListJobs first page p99, {label}",
            big["list_p99_ms"],
            "ms",
            baseline=small["list_p99_ms"],
            baseline_name=base,
            at_most=50.0,
        )
    )
    scenario.add(
        Figure(
            f"server RSS, {label}",
            big["rss_mib"],
            "MiB",
            baseline=small["rss_mib"],
            baseline_name=base,
            at_most=500.0,
        )
    )
    scenario.details["at_scale"] = measured
    if settings.big_store < 1_000_000:
        scenario.notes.append(
            f"quick mode: the large store holds {settings.big_store:,} jobs, not 1,000,000 "
            "(make bench-full measures 1,000,000)"
        )
    scenario.notes.append(
        "latencies: one keep-alive connection, one request at a time, random ids across the "
        "store; ListJobs(jobQueue, jobStatus=SUCCEEDED) first page of 100"
    )


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "fill":
        fill(Path(argv[1]), int(argv[2]), Path(argv[3]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
