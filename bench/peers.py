"""Scenario 8, peers: moto's server (`moto[server]`, installed from PyPI when missing) under the
same raw HTTP SubmitJob / DescribeJobs load as Batchyard in scenario 5, reported as
Batchyard/moto ratios. Only API acceptance is compared: what the jobs then do is not.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

import api_load
import jobpath
from report import Figure, ScenarioResult, package_version

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


def ensure_moto() -> tuple[bool, str]:
    if importlib.util.find_spec("moto") is not None and MOTO_SERVER.exists():
        return True, "found"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "moto[server]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not MOTO_SERVER.exists():
        return False, f"pip install 'moto[server]' failed: {done.stderr[-400:]}"
    return True, "installed with pip"


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = api_load.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/config", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text()[-500:]
                    raise RuntimeError(f"moto_server did not start: {tail}") from None
                time.sleep(0.1)

    def configure(self) -> str:
        """moto's documented Docker-free Batch backend (jobs are marked SUCCEEDED): its default
        starts a thread per job that runs the job's container on the shared Docker engine."""
        request = urllib.request.Request(
            f"{self.url}/moto-api/config",
            data=json.dumps({"batch": {"use_docker": False}}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _moto_queue(url: str) -> None:
    kw: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
    }
    role = boto3.client("iam", **kw).create_role(
        RoleName="bench-batch", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    batch = boto3.client("batch", **kw)
    batch.create_compute_environment(
        computeEnvironmentName="bench-ce", type="UNMANAGED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName=api_load.QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "bench-ce"}],
    )
    batch.register_job_definition(
        jobDefinitionName=api_load.DEFINITION,
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


def _batchyard_loads(wrk: str | None, seconds: float) -> tuple[float, float]:
    """Scenario 5's SubmitJob and DescribeJobs loads, for a run without scenario 5."""
    root = Path(tempfile.mkdtemp(prefix="batchyard-bench-s8-"))
    try:
        with jobpath.running_server(root, "s8") as server:
            api_load.make_disabled_queue(server.url)
            submit = api_load.run_load(
                wrk,
                server.url,
                "/v1/submitjob",
                api_load.submit_bodies(api_load.QUEUE, api_load.DEFINITION),
                seconds,
                collect_ids=True,
            )
            describe = api_load.run_load(
                wrk,
                server.url,
                "/v1/describejobs",
                api_load.describe_bodies(submit.ids),
                seconds,
            )
        return submit.rate, describe.rate
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_scenario(seconds: float, batchyard: dict[str, Any] | None) -> ScenarioResult:
    """`batchyard`: scenario 5's rates ("submit_rate", "describe_rate", "wrk"), or None to
    measure them here."""
    scenario = ScenarioResult("s8", "peers: moto_server under the same raw HTTP load")
    started = time.perf_counter()
    installed, how = ensure_moto()
    scenario.details["moto"] = {"install": how, "version": package_version("moto")}
    if not installed:
        scenario.status = "not available"
        scenario.notes.append(how)
        return scenario
    root = Path(tempfile.mkdtemp(prefix="batchyard-bench-moto-"))
    moto = MotoServer(root / "moto.log")
    try:
        if batchyard is None or "submit_rate" not in batchyard:
            wrk, _ = api_load.ensure_wrk()
            submit_rate, describe_rate = _batchyard_loads(wrk, seconds)
            batchyard = {"wrk": wrk, "submit_rate": submit_rate, "describe_rate": describe_rate}
        wrk = batchyard.get("wrk")
        moto.start()
        scenario.details["moto"]["config"] = json.loads(moto.configure())
        _moto_queue(moto.url)
        submit = api_load.run_load(
            wrk,
            moto.url,
            "/v1/submitjob",
            api_load.submit_bodies(api_load.QUEUE, api_load.DEFINITION),
            seconds,
            collect_ids=True,
        )
        if not submit.ids:
            raise RuntimeError(f"moto acknowledged no SubmitJob: {submit.as_json()}")
        describe = api_load.run_load(
            wrk, moto.url, "/v1/describejobs", api_load.describe_bodies(submit.ids), seconds
        )
        scenario.add(
            Figure(
                "SubmitJob req/s, Batchyard vs moto",
                float(batchyard["submit_rate"]),
                "req/s",
                baseline=submit.rate,
                baseline_name="moto_server",
            )
        )
        scenario.add(
            Figure(
                "DescribeJobs(100 ids) req/s, Batchyard vs moto",
                float(batchyard["describe_rate"]),
                "req/s",
                baseline=describe.rate,
                baseline_name="moto_server",
            )
        )
        scenario.details["moto_submitjob"] = submit.as_json()
        scenario.details["moto_describejobs"] = describe.as_json()
        scenario.details["moto_jobs_in_store"] = len(submit.ids)
        scenario.notes.append(
            "moto with its Docker-free Batch backend (moto-api config batch.use_docker=false): "
            "its default runs a thread and a container per job on the shared Docker engine. "
            "moto's werkzeug server closes the connection after each answer; moto's "
            "DescribeJobs scans all its jobs, so it slows as its store grows"
        )
    except Exception as error:
        scenario.status = "error"
        scenario.notes.append(f"{type(error).__name__}: {error}")
    finally:
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)
        scenario.seconds = time.perf_counter() - started
    return scenario
