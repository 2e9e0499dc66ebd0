"""Jobs end to end: boto3 against a real server running jobs as local processes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    make_environment,
    submit_job,
    unique,
    wait_for,
    wait_status,
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture(scope="module")
def queue(server: ServerProcess) -> str:
    """One queue on one compute environment for the tests that need no special capacity
    (a shared server holds at most 50 compute environments, as AWS does)."""
    return make_environment(server.client(), max_vcpus=4)[0]


# -- outcomes ----------------------------------------------------------------------------


def test_job_succeeds_and_reports_its_attempt(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["sh", "-c", "echo hello"])
    job_id = submit_job(batch, queue, definition)
    job = wait_status(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["statusReason"] == "Essential container in task exited"
    assert job["jobQueue"].endswith(f":job-queue/{queue}")
    assert job["createdAt"] <= job["startedAt"] <= job["stoppedAt"]
    (attempt,) = job["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["logStreamName"].split("/")[1] == "default"
    assert attempt["container"]["taskArn"].startswith("arn:aws:ecs:")
    assert job["container"]["exitCode"] == 0
    assert job["container"]["logStreamName"] == attempt["container"]["logStreamName"]


def test_exit_code_fails_the_job(batch: Any, queue: str) -> None:
    job_id = submit_job(batch, queue, define_job(batch, ["sh", "-c", "exit 3"]))
    job = wait_status(batch, job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3]


def test_missing_executable_is_a_task_that_failed_to_start(batch: Any, queue: str) -> None:
    job_id = submit_job(batch, queue, define_job(batch, ["/no/such/program"]))
    job = wait_status(batch, job_id)
    assert job["status"] == "FAILED"
    (attempt,) = job["attempts"]
    assert attempt["statusReason"] == "Task failed to start"
    assert "exitCode" not in attempt["container"]


def test_environment_and_working_directory(batch: Any, queue: str, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = f"env > {out}; pwd >> {out}"
    definition = define_job(batch, ["sh", "-c", script])
    job_id = submit_job(
        batch,
        queue,
        definition,
        containerOverrides={"environment": [{"name": "COLOR", "value": "blue"}]},
    )
    wait_status(batch, job_id)
    lines = out.read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env["AWS_BATCH_JOB_ID"] == job_id
    assert env["AWS_BATCH_JQ_NAME"] == queue
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_CE_NAME"]
    assert env["COLOR"] == "blue"
    assert lines[-1] != os.getcwd()


# -- retries -----------------------------------------------------------------------------


def test_retry_until_success(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["sh", "-c", 'test "$AWS_BATCH_JOB_ATTEMPT" -ge 3'])
    job_id = submit_job(batch, queue, definition, retryStrategy={"attempts": 5})
    job = wait_status(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 1, 0]
    assert len({a["container"]["logStreamName"] for a in job["attempts"]}) == 3


def test_evaluate_on_exit_first_match_wins(batch: Any, queue: str) -> None:
    strategy = {
        "attempts": 4,
        "evaluateOnExit": [
            {"onExitCode": "4*", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
        ],
    }
    retried = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", "exit 42"]), retryStrategy=strategy
    )
    exited = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", "exit 7"]), retryStrategy=strategy
    )
    assert len(wait_status(batch, retried)["attempts"]) == 4
    job = wait_status(batch, exited)
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 1


def test_evaluate_on_exit_matches_status_reason(batch: Any, queue: str) -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [{"onStatusReason": "Task failed*", "action": "EXIT"}],
    }
    job = wait_status(
        batch, submit_job(batch, queue, define_job(batch, ["/missing"]), retryStrategy=strategy)
    )
    assert len(job["attempts"]) == 1


# -- dependencies and arrays -------------------------------------------------------------


def test_dependency_waits_for_success(batch: Any, queue: str) -> None:
    first = submit_job(batch, queue, define_job(batch, ["sleep", "0.5"]))
    second = submit_job(batch, queue, define_job(batch, ["true"]), dependsOn=[{"jobId": first}])
    assert describe_job(batch, second)["status"] in ("SUBMITTED", "PENDING")
    a, b = wait_status(batch, first), wait_status(batch, second)
    assert b["status"] == "SUCCEEDED"
    assert b["startedAt"] >= a["stoppedAt"]
    assert b["dependsOn"] == [{"jobId": first}]


def test_failed_dependency_cascades(batch: Any, queue: str) -> None:
    first = submit_job(batch, queue, define_job(batch, ["false"]))
    second = submit_job(batch, queue, define_job(batch, ["true"]), dependsOn=[{"jobId": first}])
    third = submit_job(batch, queue, define_job(batch, ["true"]), dependsOn=[{"jobId": second}])
    for job_id in (second, third):
        job = wait_status(batch, job_id)
        assert job["status"] == "FAILED"
        assert job["statusReason"] == "Dependent Job failed"
        assert job["attempts"] == []


def test_array_job_children_and_parent(batch: Any, queue: str, tmp_path: Path) -> None:
    script = "echo $AWS_BATCH_JOB_ARRAY_INDEX/$AWS_BATCH_JOB_ARRAY_SIZE"
    definition = define_job(
        batch, ["sh", "-c", f"{script} > {tmp_path}/$AWS_BATCH_JOB_ARRAY_INDEX"]
    )
    parent = submit_job(batch, queue, definition, arrayProperties={"size": 5})
    job = wait_status(batch, parent)
    assert job["status"] == "SUCCEEDED"
    summary = job["arrayProperties"]["statusSummary"]
    assert summary["SUCCEEDED"] == 5
    assert set(summary) == {
        "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED",
    }  # fmt: skip
    assert sorted(p.read_text().strip() for p in tmp_path.iterdir()) == [f"{i}/5" for i in range(5)]
    children = batch.list_jobs(arrayJobId=parent, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["arrayProperties"]["index"] for c in children) == list(range(5))
    child = describe_job(batch, f"{parent}:3")
    assert child["arrayProperties"]["index"] == 3


def test_array_child_failure_fails_parent(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["sh", "-c", 'test "$AWS_BATCH_JOB_ARRAY_INDEX" != 1'])
    parent = submit_job(batch, queue, definition, arrayProperties={"size": 3})
    job = wait_status(batch, parent)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Array Child Job failed"
    assert job["arrayProperties"]["statusSummary"]["FAILED"] == 1
    assert job["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 2


def test_sequential_array_runs_in_index_order(batch: Any, queue: str) -> None:
    parent = submit_job(
        batch,
        queue,
        define_job(batch, ["sleep", "0.2"]),
        arrayProperties={"size": 4},
        dependsOn=[{"type": "SEQUENTIAL"}],
    )
    assert wait_status(batch, parent)["status"] == "SUCCEEDED"
    children = [describe_job(batch, f"{parent}:{i}") for i in range(4)]
    for before, after in itertools.pairwise(children):
        assert after["startedAt"] >= before["stoppedAt"]


def test_n_to_n_dependency_pairs_children(batch: Any, queue: str) -> None:
    first = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", "sleep 0.$((3 - AWS_BATCH_JOB_ARRAY_INDEX))"]),
        arrayProperties={"size": 3},
    )  # fmt: skip
    second = submit_job(
        batch,
        queue,
        define_job(batch, ["true"]),
        arrayProperties={"size": 3},
        dependsOn=[{"jobId": first, "type": "N_TO_N"}],
    )
    assert wait_status(batch, second)["status"] == "SUCCEEDED"
    for i in range(3):
        assert (
            describe_job(batch, f"{second}:{i}")["startedAt"]
            >= describe_job(batch, f"{first}:{i}")["stoppedAt"]
        )


# -- parameters and overrides ------------------------------------------------------------


def test_parameters_are_substituted(batch: Any, queue: str, tmp_path: Path) -> None:
    definition = define_job(
        batch,
        ["sh", "-c", "Ref::script", "Ref::name"],
        parameters={"script": "echo default", "name": "unused"},
    )
    out = tmp_path / "out"
    job_id = submit_job(batch, queue, definition, parameters={"script": f"echo $0 > {out}"})
    job = wait_status(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["container"]["command"] == ["sh", "-c", f"echo $0 > {out}", "unused"]
    assert out.read_text().strip() == "unused"


def test_missing_parameter_rejects_submit(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["echo", "Ref::missing"])
    with pytest.raises(ClientError) as caught:
        submit_job(batch, queue, definition)
    assert caught.value.response["Error"]["Message"] == (
        "Unable to substitute value. No parameter found for reference missing"
    )


def test_command_override(batch: Any, queue: str) -> None:
    job_id = submit_job(
        batch, queue, define_job(batch, ["false"]), containerOverrides={"command": ["true"]}
    )
    job = wait_status(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["container"]["command"] == ["true"]


# -- cancel and terminate ----------------------------------------------------------------


def test_terminate_running_job_kills_its_processes(batch: Any, queue: str, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    job_id = submit_job(batch, queue, define_job(batch, ["sh", "-c", script]))
    wait_status(batch, job_id, ("RUNNING",))
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, what="pids written")
    numbers = [int(p) for p in pids.read_text().split()]
    assert all(pid_alive(pid) for pid in numbers)
    batch.terminate_job(jobId=job_id, reason="Stopped by test")
    job = wait_status(batch, job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Stopped by test"
    assert job["isTerminated"] is True
    wait_for(lambda: not any(pid_alive(pid) for pid in numbers), what="processes gone")


def test_cancel_runnable_job(batch: Any) -> None:
    (queue,) = make_environment(batch, max_vcpus=1)
    blocker = submit_job(batch, queue, define_job(batch, ["sleep", "300"]))
    wait_status(batch, blocker, ("RUNNING",))
    waiting = submit_job(batch, queue, define_job(batch, ["true"]))
    wait_status(batch, waiting, ("RUNNABLE",))
    batch.cancel_job(jobId=waiting, reason="Not needed")
    job = wait_status(batch, waiting)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Not needed"
    assert job["isCancelled"] is True
    assert job["attempts"] == []
    # CancelJob has no effect on a running job
    batch.cancel_job(jobId=blocker, reason="ignored")
    assert describe_job(batch, blocker)["status"] == "RUNNING"
    batch.terminate_job(jobId=blocker, reason="cleanup")
    wait_status(batch, blocker)


def test_cancel_pending_job(batch: Any, queue: str) -> None:
    upstream = submit_job(batch, queue, define_job(batch, ["sleep", "300"]))
    pending = submit_job(batch, queue, define_job(batch, ["true"]), dependsOn=[{"jobId": upstream}])
    wait_status(batch, pending, ("PENDING",))
    batch.cancel_job(jobId=pending, reason="Changed my mind")
    batch.terminate_job(jobId=upstream, reason="cleanup")
    job = wait_status(batch, pending)
    assert job["status"] == "FAILED"
    assert job["isCancelled"] is True
    assert job["attempts"] == []


# -- scheduling --------------------------------------------------------------------------


def test_higher_priority_queue_goes_first(batch: Any) -> None:
    low, high = make_environment(batch, max_vcpus=1, priorities=(1, 10))
    blocker = submit_job(batch, low, define_job(batch, ["sleep", "1"]))
    wait_status(batch, blocker, ("RUNNING",))
    quick = define_job(batch, ["sleep", "0.1"])
    low_jobs = [submit_job(batch, low, quick) for _ in range(2)]
    high_jobs = [submit_job(batch, high, quick) for _ in range(2)]
    finished = {j: wait_status(batch, j) for j in low_jobs + high_jobs}
    last_high = max(finished[j]["startedAt"] for j in high_jobs)
    first_low = min(finished[j]["startedAt"] for j in low_jobs)
    assert last_high <= first_low


def test_capacity_is_never_exceeded(batch: Any) -> None:
    (queue,) = make_environment(batch, max_vcpus=2)
    definition = define_job(batch, ["sleep", "0.3"])
    job_ids = [submit_job(batch, queue, definition) for _ in range(6)]
    jobs = [wait_status(batch, j) for j in job_ids]
    assert all(j["status"] == "SUCCEEDED" for j in jobs)
    events = sorted(
        [(j["startedAt"], 1) for j in jobs] + [(j["stoppedAt"], -1) for j in jobs],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2


def test_job_that_can_never_fit_stays_runnable_with_reason(batch: Any) -> None:
    (queue,) = make_environment(batch, max_vcpus=2)
    job_id = submit_job(batch, queue, define_job(batch, ["true"], vcpus="8"))
    job = wait_status(batch, job_id, ("RUNNABLE",))
    wait_for(
        lambda: describe_job(batch, job_id).get("statusReason", "").startswith("MISCONFIGURATION:"),
        what="blocked reason",
    )
    batch.cancel_job(jobId=job_id, reason="cleanup")
    assert job["status"] == "RUNNABLE"


# -- list jobs ---------------------------------------------------------------------------


def test_list_jobs_by_status_and_filters(batch: Any, queue: str) -> None:
    definition = define_job(batch, ["true"])
    name = unique("listed")
    ids = [
        batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)["jobId"]
        for _ in range(3)
    ]
    for job_id in ids:
        wait_status(batch, job_id)
    listed = batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert set(ids) <= {j["jobId"] for j in listed}
    by_name = batch.list_jobs(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name.upper()]}]
    )["jobSummaryList"]
    assert sorted(j["jobId"] for j in by_name) == sorted(ids)
    page = batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED", maxResults=2)
    assert len(page["jobSummaryList"]) == 2
    assert page["nextToken"]


# -- timeouts (slow) ---------------------------------------------------------------------


@pytest.mark.slow
def test_attempt_timeout(batch: Any, queue: str) -> None:
    job_id = submit_job(
        batch,
        queue,
        define_job(batch, ["sleep", "300"]),
        timeout={"attemptDurationSeconds": 60},
        retryStrategy={"attempts": 3},
    )
    job = wait_status(batch, job_id, timeout=120)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(job["attempts"]) == 1  # a timed-out job is never retried
    duration = job["stoppedAt"] - job["startedAt"]
    assert 60_000 <= duration < 90_000


# -- restart recovery --------------------------------------------------------------------


def test_kill_9_recovery(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--stop-timeout", "2")
    server.start()
    batch = server.client()
    (queue,) = make_environment(batch, max_vcpus=1)
    marker = tmp_path / "runs"
    running = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", f"echo run >> {marker}; sleep 2; echo done"])
    )
    waiting = submit_job(batch, queue, define_job(batch, ["true"]))
    wait_status(batch, running, ("RUNNING",))
    server.kill9()

    server.start()
    batch = server.client()
    job = wait_status(batch, running, timeout=30)
    assert job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 1
    assert marker.read_text().splitlines() == ["run"]  # ran exactly once
    assert wait_status(batch, waiting)["status"] == "SUCCEEDED"
    server.stop()
