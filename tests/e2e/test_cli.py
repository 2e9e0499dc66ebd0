"""The `batchyard` user commands end to end: `python -m batchyard` subprocesses against a real
server, configured only through the AWS environment variables (or --endpoint-url)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import (
    CREDENTIALS,
    ServerProcess,
    define_job,
    describe_job,
    make_environment,
    submit_job,
    unique,
    wait_for,
    wait_status,
)


def environment(server: ServerProcess, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHYARD_"))}
    env.update(CREDENTIALS, AWS_ENDPOINT_URL=server.url, COLUMNS="200", **extra)
    return env


def batchyard(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchyard", *args],
        env=env if env is not None else environment(server),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def batchyard_all(
    server: ServerProcess, *commands: tuple[str, ...]
) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once: each one pays the interpreter's start-up."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: batchyard(server, *args), commands))


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def queue(server: ServerProcess) -> str:
    """One compute environment for the module: the server allows 50 in all."""
    return make_environment(server.client(), max_vcpus=4)[0]


def test_resources_as_json_and_tables(server: ServerProcess, batch: Any, queue: str) -> None:
    definition = define_job(batch, ["echo", "hi"])
    name = definition.rsplit("/", 1)[1].split(":")[0]
    queues, ces, defs, queues_table, defs_table = batchyard_all(
        server,
        ("queues", "--output", "json"),
        ("ces", "-o", "json"),
        ("defs", name, "-o", "json"),
        ("queues",),
        ("defs", name),
    )
    assert queue in {q["jobQueueName"] for q in json_of(queues)["jobQueues"]}
    assert "default" in {c["computeEnvironmentName"] for c in json_of(ces)["computeEnvironments"]}
    listed = json_of(defs)["jobDefinitions"]
    assert [(d["jobDefinitionName"], d["revision"]) for d in listed] == [(name, 1)]

    assert queues_table.returncode == 0, queues_table.stderr
    line = next(row for row in queues_table.stdout.splitlines() if row.startswith(queue + " "))
    assert line.split()[1:4] == ["ENABLED", "VALID", "1"]
    assert f"{name}  1  " in defs_table.stdout
    assert "echo hi" in defs_table.stdout


def test_submit_with_flags_then_wait_and_describe(
    server: ServerProcess, batch: Any, queue: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    definition = define_job(batch, ["false"])
    submitted = json_of(
        batchyard(
            server, "submit", "-o", "json", "--queue", queue, "--definition", definition,
            "--name", "flags", "--env", "COLOR=blue", "--parameter", "who=world",
            "--retries", "2", "--tag", "team=data",
            "--", "sh", "-c", f'echo "$COLOR $0" > {out}', "Ref::who",
        )
    )  # fmt: skip
    job_id = submitted["jobId"]
    assert submitted["jobName"] == "flags"

    waited = batchyard(server, "wait", job_id)
    assert waited.returncode == 0, waited.stderr
    assert f"{job_id} SUCCEEDED" in waited.stdout
    assert out.read_text().strip() == "blue world"

    (job,) = json_of(batchyard(server, "describe", job_id, "-o", "json"))["jobs"]
    assert job["jobName"] == "flags"
    assert job["retryStrategy"]["attempts"] == 2
    assert job["tags"] == {"team": "data"}
    assert job["container"]["command"][:2] == ["sh", "-c"]
    human = batchyard(server, "describe", job_id)
    assert human.returncode == 0, human.stderr
    assert "SUCCEEDED" in human.stdout
    assert job["container"]["logStreamName"] in human.stdout


def test_submit_from_a_json_file_with_flag_overrides(
    server: ServerProcess, batch: Any, queue: str, tmp_path: Path
) -> None:
    request = {
        "jobName": "from-file",
        "jobQueue": "no-such-queue",
        "jobDefinition": define_job(batch, ["true"]),
        "arrayProperties": {"size": 3},
        "containerOverrides": {"environment": [{"name": "A", "value": "1"}]},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(request))
    result = batchyard(server, "submit", "--file", str(path), "--queue", queue)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    job = wait_status(batch, job_id)
    assert job["jobName"] == "from-file"
    assert job["jobQueue"].endswith(f"/{queue}")
    assert job["arrayProperties"]["size"] == 3
    assert job["status"] == "SUCCEEDED"


def test_wait_exit_code_reflects_failure_and_shows_array_counts(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    definition = define_job(batch, ["sh", "-c", 'test "$AWS_BATCH_JOB_ARRAY_INDEX" != 1'])
    parent = submit_job(batch, queue, definition, arrayProperties={"size": 3})
    result = batchyard(server, "wait", parent, "--interval", "0.2")
    assert result.returncode == 1, result.stderr
    assert f"{parent} FAILED: Array Child Job failed" in result.stdout
    assert "SUCCEEDED 2" in result.stderr
    assert "FAILED 1" in result.stderr
    assert "3/3" in result.stderr  # the progress bar's children done / total

    as_json = batchyard(server, "wait", parent, "-o", "json")
    assert as_json.returncode == 1
    assert as_json.stderr == ""  # no progress display in JSON mode
    (job,) = json.loads(as_json.stdout)["jobs"]
    assert job["arrayProperties"]["statusSummary"]["FAILED"] == 1


def test_wait_times_out(server: ServerProcess, batch: Any, queue: str) -> None:
    job_id = submit_job(batch, queue, define_job(batch, ["sleep", "300"]))
    result = batchyard(server, "wait", job_id, "--timeout", "0.5", "--interval", "0.1")
    assert result.returncode == 3
    assert "timed out" in result.stderr
    batch.terminate_job(jobId=job_id, reason="cleanup")


def test_jobs_lists_by_queue_status_and_array(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    single = submit_job(batch, queue, define_job(batch, ["true"]))
    parent = submit_job(batch, queue, define_job(batch, ["true"]), arrayProperties={"size": 2})
    failed = submit_job(batch, queue, define_job(batch, ["false"]))
    for job_id in (single, parent, failed):
        wait_status(batch, job_id)

    everything, succeeded, failures, children, table = batchyard_all(
        server,
        ("jobs", "--queue", queue, "-o", "json"),  # every status by default
        ("jobs", "-q", queue, "--status", "succeeded", "-o", "json"),
        ("jobs", "-q", queue, "--status", "FAILED", "-o", "json"),
        ("jobs", "--array", parent, "-o", "json"),
        ("jobs", "--queue", queue),
    )

    def listed(result: subprocess.CompletedProcess[str]) -> set[str]:
        return {j["jobId"] for j in json_of(result)["jobSummaryList"]}

    assert {single, parent, failed} <= listed(everything)
    assert {single, parent} <= listed(succeeded)
    assert failed not in listed(succeeded)
    assert failed in listed(failures)
    assert listed(children) == {f"{parent}:0", f"{parent}:1"}

    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["JOB", "ID", "STATUS"]
    rows = {line.split()[0]: line.split()[1] for line in lines}
    assert (rows[single], rows[parent], rows[failed]) == ("SUCCEEDED", "SUCCEEDED", "FAILED")


def test_cancel_and_terminate(server: ServerProcess, batch: Any, queue: str) -> None:
    running = submit_job(
        batch, queue, define_job(batch, ["sleep", "300"], vcpus="4")
    )  # the whole CE
    wait_status(batch, running, ("RUNNING",))
    waiting = submit_job(batch, queue, define_job(batch, ["true"]))
    wait_status(batch, waiting, ("RUNNABLE",))

    cancelled = batchyard(server, "cancel", waiting, "--reason", "not needed")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"Cancelled {waiting}"
    job = wait_status(batch, waiting)
    assert (job["status"], job["statusReason"], job["isCancelled"]) == (
        "FAILED",
        "not needed",
        True,
    )

    terminated = json_of(batchyard(server, "terminate", running, "-o", "json"))
    assert terminated == {"jobs": [{"jobId": running, "reason": "Terminated by batchyard CLI"}]}
    job = wait_status(batch, running)
    assert (job["status"], job["isTerminated"]) == ("FAILED", True)


def test_logs_of_a_finished_job(server: ServerProcess, batch: Any, queue: str) -> None:
    script = 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; test "$AWS_BATCH_JOB_ATTEMPT" -ge 2'
    job_id = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", script]), retryStrategy={"attempts": 2}
    )
    job = wait_status(batch, job_id)
    result = batchyard(server, "logs", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["attempt 1", "attempt 2"]
    for number, attempt in enumerate(job["attempts"], start=1):
        assert f"==> attempt {number}: {attempt['container']['logStreamName']} <==" in result.stderr

    lines = [
        json.loads(line)
        for line in batchyard(server, "logs", job_id, "-o", "json").stdout.splitlines()
    ]
    assert [(line["attempt"], line["message"]) for line in lines] == [
        (1, "attempt 1"),
        (2, "attempt 2"),
    ]
    assert lines[0]["logGroupName"] == "/aws/batch/job"


def test_logs_follow_a_running_job(
    server: ServerProcess, batch: Any, queue: str, tmp_path: Path
) -> None:
    script = "for i in $(seq 1 10); do echo line $i; sleep 0.3; done"
    job_id = submit_job(batch, queue, define_job(batch, ["sh", "-c", script]))
    wait_status(batch, job_id, ("RUNNING",))
    errors = tmp_path / "stderr"
    with errors.open("w") as stderr:
        follower = subprocess.Popen(
            [sys.executable, "-m", "batchyard", "logs", "-f", job_id, "--interval", "0.2"],
            env=environment(server),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        still_running = describe_job(batch, job_id)["status"]
        rest = follower.stdout.read()  # to the end: the command exits once the job has ended
        follower.wait(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        if follower.stdout is not None:
            follower.stdout.close()
    assert still_running == "RUNNING"  # it was following, not reading a finished job
    assert follower.returncode == 0, errors.read_text()
    assert (first + rest).splitlines() == [f"line {i}" for i in range(1, 11)]
    assert describe_job(batch, job_id)["status"] == "SUCCEEDED"


def test_client_errors_exit_2_with_the_aws_error(server: ServerProcess, queue: str) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    ghost = unique("ghost")
    submitted, described, logs, waited, snapshot, resource = batchyard_all(
        server,
        ("submit", "--queue", queue, "--definition", unique("missing")),
        ("describe", unknown),
        ("logs", unknown),
        ("wait", unknown),
        ("queue", ghost),
        ("resource", ghost),
    )
    assert submitted.returncode == 2
    assert submitted.stderr.startswith("batchyard: ClientException: JobDefinition name missing-")
    assert submitted.stdout == ""
    assert (snapshot.returncode, snapshot.stdout) == (2, "")
    assert snapshot.stderr == f"batchyard: ClientException: JobQueue {ghost} not found.\n"
    assert (resource.returncode, resource.stdout) == (2, "")
    assert resource.stderr == (
        f"batchyard: ClientException: ConsumableResource {ghost} not found.\n"
    )
    for result in (described, logs, waited):
        assert result.returncode == 2
        assert result.stderr == f"batchyard: job not found: {unknown}\n"


def test_endpoint_url_flag_and_default_credentials(server: ServerProcess, queue: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = "/nonexistent"  # no ~/.aws files either
    result = batchyard(server, "queues", "--endpoint-url", server.url, "-o", "json", env=env)
    assert queue in {q["jobQueueName"] for q in json_of(result)["jobQueues"]}


# -- queue, resources, resource ---------------------------------------------------------------


def squeezed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stdout's lines with runs of spaces made one: table cells without their padding."""
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


def local_time(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    )


def end_jobs(batch: Any, *job_ids: str) -> None:
    """Terminate jobs in this order (waiting ones first, so none starts) and wait for the end."""
    for job_id in job_ids:
        batch.terminate_job(jobId=job_id, reason="cleanup")
    for job_id in job_ids:
        wait_status(batch, job_id)


def queue_status(batch: Any, name: str) -> str | None:
    found = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    return str(found[0]["status"]) if found else None


@pytest.fixture
def fair_queue(server: ServerProcess, batch: Any, queue: str) -> Iterator[str]:
    """A fair-share queue on the module's compute environment (no compute environment of its
    own), removed afterwards."""
    (order,) = batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0][
        "computeEnvironmentOrder"
    ]
    policy = batch.create_scheduling_policy(
        name=unique("fsp"), fairsharePolicy={"shareDecaySeconds": 600}
    )["arn"]
    name = unique("fair")
    batch.create_job_queue(
        jobQueueName=name,
        priority=2,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": order["computeEnvironment"]}],
        schedulingPolicyArn=policy,
    )
    wait_for(lambda: queue_status(batch, name) == "VALID", what="queue VALID")
    yield name
    batch.update_job_queue(jobQueue=name, state="DISABLED")
    wait_for(lambda: queue_status(batch, name) == "VALID", what="queue VALID")
    batch.delete_job_queue(jobQueue=name)
    wait_for(lambda: queue_status(batch, name) is None, what="queue deleted")
    batch.delete_scheduling_policy(arn=policy)


def test_queue_of_a_fair_share_queue(server: ServerProcess, batch: Any, fair_queue: str) -> None:
    blocker = submit_job(
        batch, fair_queue, define_job(batch, ["sleep", "300"], vcpus="4"), shareIdentifier="a"
    )  # the whole compute environment
    quick = define_job(batch, ["true"])
    later_a = submit_job(batch, fair_queue, quick, shareIdentifier="a")
    first_b = submit_job(batch, fair_queue, quick, shareIdentifier="b")
    try:
        wait_status(batch, blocker, ("RUNNING",))
        waiting = {j: wait_status(batch, j, ("RUNNABLE",)) for j in (later_a, first_b)}
        as_json, table = batchyard_all(
            server, ("queue", fair_queue, "-o", "json"), ("queue", fair_queue)
        )
    finally:
        end_jobs(batch, later_a, first_b, blocker)

    snapshot = json_of(as_json)
    # b holds nothing and a holds the whole CE: b's job goes first though submitted last, and
    # the command keeps the API's order rather than sorting.
    front = snapshot["frontOfQueue"]["jobs"]
    assert [j["jobArn"].rsplit("/", 1)[1] for j in front] == [first_b, later_a]
    utilization = snapshot["queueUtilization"]
    assert utilization["totalCapacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 4.0}]
    assert utilization["fairshareUtilization"] == {
        "activeShareCount": 1,
        "topCapacityUtilization": [
            {"shareIdentifier": "a", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 4.0}]}
        ],
    }

    lines = squeezed(table)
    assert lines[0] == fair_queue
    assert "Capacity in use 4 VCPU" in lines
    assert "Active shares 1" in lines
    assert lines.index("SHARE IN USE") + 1 == lines.index("a 4 VCPU")
    header = lines.index("POSITION JOB ID NAME SHARE SINCE")
    assert lines[header + 1 :] == [
        f"{position} {entry['jobArn'].rsplit('/', 1)[1]} {job['jobName']} {job['shareIdentifier']} "
        f"{local_time(entry['earliestTimeAtPosition'])}"
        for position, entry, job in zip(
            (1, 2), front, (waiting[first_b], waiting[later_a]), strict=True
        )
    ]


def test_queue_of_a_fifo_queue(server: ServerProcess, batch: Any, queue: str) -> None:
    blocker = submit_job(batch, queue, define_job(batch, ["sleep", "300"], vcpus="4"))
    quick = define_job(batch, ["true"])
    first, second = submit_job(batch, queue, quick), submit_job(batch, queue, quick)
    try:
        wait_status(batch, blocker, ("RUNNING",))
        names = {j: wait_status(batch, j, ("RUNNABLE",))["jobName"] for j in (first, second)}
        as_json, table = batchyard_all(server, ("queue", queue, "-o", "json"), ("queue", queue))
    finally:
        end_jobs(batch, second, first, blocker)
    empty = batchyard(server, "queue", queue)

    snapshot = json_of(as_json)
    assert [j["jobArn"].rsplit("/", 1)[1] for j in snapshot["frontOfQueue"]["jobs"]] == [
        first,
        second,
    ]
    assert "fairshareUtilization" not in snapshot["queueUtilization"]
    lines = squeezed(table)
    assert "Capacity in use 4 VCPU" in lines
    assert not any(line.startswith(("Active shares", "SHARE")) for line in lines)
    header = lines.index("POSITION JOB ID NAME SINCE")  # no SHARE column on a FIFO queue
    rows = [line.split()[:3] for line in lines[header + 1 :]]
    assert rows == [["1", first, names[first]], ["2", second, names[second]]]

    assert squeezed(empty)[1] == "Capacity in use 0 VCPU"
    assert empty.stderr == f"No RUNNABLE jobs at the front of {queue}.\n"


def test_resources_and_resource(server: ServerProcess, batch: Any, queue: str) -> None:
    licence, tokens = unique("licence"), unique("tokens")
    batch.create_consumable_resource(consumableResourceName=licence, totalQuantity=2)
    batch.create_consumable_resource(
        consumableResourceName=tokens,
        totalQuantity=5,
        resourceType="NON_REPLENISHABLE",
        tags={"team": "data"},
    )

    def needing(quantity: int, command: list[str]) -> str:
        needs = [{"consumableResource": licence, "quantity": quantity}]
        return define_job(
            batch, command, consumableResourceProperties={"consumableResourceList": needs}
        )

    holder = submit_job(batch, queue, needing(2, ["sleep", "300"]))
    waiter = submit_job(batch, queue, needing(1, ["true"]))
    try:
        wait_status(batch, holder, ("RUNNING",))
        wait_status(batch, waiter, ("RUNNABLE",))
        listed, table, detail, runnable, detail_table, unused = batchyard_all(
            server,
            ("resources", "-o", "json"),
            ("resources",),
            ("resource", licence, "-o", "json"),
            ("resource", licence, "--status", "runnable", "-o", "json"),
            ("resource", licence),
            ("resource", tokens),
        )
    finally:
        end_jobs(batch, waiter, holder)
        for name in (licence, tokens):
            batch.delete_consumable_resource(consumableResource=name)

    mine = {
        r["consumableResourceName"]: (r["resourceType"], r["totalQuantity"], r["inUseQuantity"])
        for r in json_of(listed)["consumableResources"]
        if r["consumableResourceName"] in (licence, tokens)
    }
    assert mine == {licence: ("REPLENISHABLE", 2, 2), tokens: ("NON_REPLENISHABLE", 5, 0)}
    lines = squeezed(table)
    assert lines[0] == "NAME TYPE TOTAL IN USE AVAILABLE"
    assert f"{licence} REPLENISHABLE 2 2 0" in lines
    assert f"{tokens} NON_REPLENISHABLE 5 0 5" in lines

    described = json_of(detail)
    assert (described["consumableResourceName"], described["availableQuantity"]) == (licence, 0)
    assert {
        j["jobArn"].rsplit("/", 1)[1]: (j["jobStatus"], j["quantity"]) for j in described["jobs"]
    } == {holder: ("RUNNING", 2), waiter: ("RUNNABLE", 1)}
    assert [j["jobArn"].rsplit("/", 1)[1] for j in json_of(runnable)["jobs"]] == [waiter]

    lines = squeezed(detail_table)
    assert lines[0] == licence
    assert {"Type REPLENISHABLE", "Total 2", "In use 2", "Available 0"} <= set(lines)
    header = lines.index("JOB ID STATUS NAME QUANTITY QUEUE CREATED REASON")
    rows = {line.split()[0]: line.split()[1:5] for line in lines[header + 1 :]}
    holder_name, waiter_name = (describe_job(batch, j)["jobName"] for j in (holder, waiter))
    assert rows == {
        holder: ["RUNNING", holder_name, "2", queue],
        waiter: ["RUNNABLE", waiter_name, "1", queue],
    }

    assert {"Type NON_REPLENISHABLE", "Available 5", "Tags team=data"} <= set(squeezed(unused))
    assert unused.stderr == f"No jobs require {tokens}.\n"
