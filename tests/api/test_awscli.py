"""The AWS CLI, unchanged, against a real server."""

from __future__ import annotations

import json

from tests.fixtures import ServerProcess, aws, unique


def test_describe_job_queues(server: ServerProcess) -> None:
    result = aws(server, "batch", "describe-job-queues")
    assert result.returncode == 0, result.stderr
    names = [q["jobQueueName"] for q in json.loads(result.stdout)["jobQueues"]]
    assert "default" in names


def test_register_job_definition(server: ServerProcess) -> None:
    name = unique("cli")
    result = aws(
        server, "batch", "register-job-definition",
        "--job-definition-name", name, "--type", "container",
        "--container-properties", json.dumps({"image": "busybox", "command": ["true"]}),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["revision"] == 1


def test_cli_reports_client_errors(server: ServerProcess) -> None:
    result = aws(server, "batch", "delete-job-queue", "--job-queue", "no-such-queue")
    assert result.returncode != 0
    assert "ClientException" in result.stderr
    assert "no-such-queue" in result.stderr
