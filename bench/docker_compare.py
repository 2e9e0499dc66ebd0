"""Scenario 7: trivial containers at concurrency 4 through Batchyard's docker runtime against
the Docker SDK running the same containers directly (create, start, wait, remove), in the same
run, alternating. Reports "not available" when the engine or the docker runtime is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jobpath
import profiling
from report import REPO, Figure, ScenarioResult, median

IMAGE = "batchyard-test:busybox"
CONCURRENCY = 4
BENCH_LABEL = "batchyard.bench"


def _engine() -> tuple[Any | None, str]:
    """A Docker SDK client with the test image present, or why not."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError as error:
        return None, f"the Docker SDK is not installed: {error}"
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException as error:
        return None, f"no Docker engine answers: {error}"
    try:
        client.images.get(IMAGE)
    except ImageNotFound:
        # The project's own recipe builds it from Debian's busybox-static.
        done = subprocess.run(
            [str(REPO / "scripts" / "provision")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        try:
            client.images.get(IMAGE)
        except ImageNotFound:
            return None, f"{IMAGE} is missing and scripts/provision failed: {done.stderr[-300:]}"
    return client, "ok"


def direct(client: Any, count: int) -> float:
    """Seconds for `count` containers of `true` run by the SDK, CONCURRENCY at a time."""

    def one(_: int) -> None:
        container = client.containers.create(
            IMAGE, ["true"], network_mode="none", labels={BENCH_LABEL: "direct"}
        )
        try:
            container.start()
            result = container.wait(timeout=120)
            if result.get("StatusCode") != 0:
                raise RuntimeError(f"container exited {result}")
        finally:
            container.remove(force=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def _batchyard_queue(batch: Any, name: str) -> tuple[str, str, str | None]:
    """(queue, definition, why the docker runtime is unavailable or None)."""
    batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": CONCURRENCY, "subnets": []},
        tags={"batchyard:runtime": "docker", "batchyard:network-mode": "none"},
    )
    deadline = time.monotonic() + 30
    while True:
        ce = batch.describe_compute_environments(computeEnvironments=[f"{name}-ce"])
        status = ce["computeEnvironments"][0]
        if status["status"] in ("VALID", "INVALID"):
            break
        if time.monotonic() > deadline:
            return "", "", f"compute environment stuck in {status['status']}"
        time.sleep(0.05)
    if status["status"] == "INVALID":
        return "", "", f"docker compute environment INVALID: {status.get('statusReason')}"
    batch.create_job_queue(
        jobQueueName=f"{name}-q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": f"{name}-ce"}],
    )
    definition = batch.register_job_definition(
        jobDefinitionName=f"{name}-true",
        type="container",
        containerProperties={
            "image": IMAGE,
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )["jobDefinitionArn"]
    deadline = time.monotonic() + 10
    while batch.describe_job_queues(jobQueues=[f"{name}-q"])["jobQueues"][0]["status"] != "VALID":
        if time.monotonic() > deadline:
            return "", "", "job queue did not turn VALID"
        time.sleep(0.05)
    return f"{name}-q", str(definition), None


def through_batchyard(
    server: jobpath.Server, count: int, name: str, profile: bool
) -> tuple[float | None, str | None, dict[str, Any] | None]:
    """(seconds for an array of `count` children, submit -> parent SUCCEEDED; or None and why;
    a profile of the server when asked)."""
    batch = server.client()
    queue, definition, unavailable = _batchyard_queue(batch, name)
    if unavailable is not None:
        return None, unavailable, None
    process = server.process
    assert process is not None
    sampled = profiling.Profile(process.pid, name) if profile else None
    with sampled or contextlib.nullcontext():
        started = time.perf_counter()
        parent = batch.submit_job(
            jobName="docker",
            jobQueue=queue,
            jobDefinition=definition,
            arrayProperties={"size": count},
        )["jobId"]
        deadline = started + max(120.0, count * 2.0)
        while True:
            job = batch.describe_jobs(jobs=[parent])["jobs"][0]
            if job["status"] in ("SUCCEEDED", "FAILED"):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"array still {job['status']}: {job['arrayProperties']}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    summary = None
    if sampled is not None:
        summary = sampled.summary()
        sampled.cleanup()
    if job["status"] != "SUCCEEDED":
        raise RuntimeError(f"array ended {job['status']}: {job['arrayProperties']}")
    return elapsed, None, summary


def _remove_leftovers(client: Any, owner: str | None) -> None:
    filters = [f"{BENCH_LABEL}=direct"]
    if owner is not None:
        filters.append(f"batchyard.owner={owner}")
    for label in filters:
        with contextlib.suppress(Exception):
            for container in client.containers.list(all=True, filters={"label": label}):
                with contextlib.suppress(Exception):
                    container.remove(force=True)


def run_scenario(count: int, repeats: int, *, profile: bool = False) -> ScenarioResult:
    scenario = ScenarioResult(
        "s7", f"Docker: {count} containers of `true` at concurrency {CONCURRENCY}"
    )
    started = time.perf_counter()
    client, why = _engine()
    if client is None:
        scenario.status = "not available"
        scenario.notes.append(why)
        return scenario
    root = Path(tempfile.mkdtemp(prefix="batchyard-bench-s7-"))
    owner: str | None = None
    directs: list[float] = []
    throughs: list[float] = []
    try:
        direct(client, CONCURRENCY)  # warm the engine: first containers are slower
        directs.append(count / direct(client, count))
        with jobpath.running_server(root, "s7") as server:
            with contextlib.suppress(ImportError):
                from batchyard.runtimes.docker import owner_label

                owner = owner_label(f"sqlite:///{(server.data_dir / 'batchyard.db').resolve()}")
            for index in range(repeats):
                seconds, unavailable, summary = through_batchyard(
                    server, count, f"d{index}", profile and index == 0
                )
                if seconds is None:
                    scenario.status = "not available"
                    scenario.notes.append(f"Batchyard's docker runtime: {unavailable}")
                    return scenario
                if summary is not None:
                    scenario.profiles["server"] = summary
                throughs.append(count / seconds)
                directs.append(count / direct(client, count))
    except Exception as error:
        scenario.status = "error"
        scenario.notes.append(f"{type(error).__name__}: {error}")
    finally:
        _remove_leftovers(client, owner)
        shutil.rmtree(root, ignore_errors=True)
        scenario.seconds = time.perf_counter() - started
    if throughs:
        sdk = median(directs)
        scenario.add(
            Figure(
                "through Batchyard: containers/s, submit -> array SUCCEEDED",
                median(throughs),
                "ctr/s",
                baseline=sdk,
                baseline_name="Docker SDK direct, same concurrency",
                ratio_at_least=0.80,
            )
        )
        scenario.add(Figure("Docker SDK direct: containers/s", sdk, "ctr/s"))
    scenario.details = {
        "containers": count,
        "concurrency": CONCURRENCY,
        "image": IMAGE,
        "network_mode": "none",
        "direct_per_s": [round(r, 2) for r in directs],
        "batchyard_per_s": [round(r, 2) for r in throughs],
    }
    scenario.notes.append(
        "runs alternate SDK, Batchyard, SDK, ...; medians. Batchyard: one array job, CE tagged "
        "batchyard:runtime=docker, batchyard:network-mode=none, maxvCpus 4, 1 vCPU per job"
    )
    return scenario
