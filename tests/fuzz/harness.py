"""The fuzz tier's server under test and its properties.

Owns: the objects a fuzzed server holds before fuzzing (kept ones, whose Describe* output must
not change; targets the fuzzer names freely; a probe queue it never names, for the health
check), sending requests raw (httpx) and through boto3, what every response must satisfy (no
5xx; a 4xx in AWS's error shape), and the checks after fuzzing: /health answers, a normal job
succeeds, kept objects are as they were unless a successful request named them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from botocore import xform_name
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings

from tests.fixtures import ServerProcess, submit_job, unique, wait_for, wait_status
from tests.fuzz.strategies import Operation, RawRequest, Vocabulary

SEED = int(os.environ.get("BATCHYARD_FUZZ_SEED", "20261208"))
"""The seed of every fuzz test: the same requests on every run unless it is changed."""
EXAMPLES = int(os.environ.get("BATCHYARD_FUZZ_EXAMPLES", "30"))
"""Raw requests per operation and phase; boto3 requests are half as many."""

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def seed_line() -> str:
    return (
        f"fuzz tier: seed {SEED} (BATCHYARD_FUZZ_SEED), {EXAMPLES} raw requests per operation "
        "and phase (BATCHYARD_FUZZ_EXAMPLES)"
    )


# -- what every response must be -----------------------------------------------------------------


def check_response(what: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """No 5xx; an error is AWS's shape (x-amzn-ErrorType, a JSON object with __type and a
    message); a success is a JSON object."""
    shown = body[:300].decode(errors="replace")
    assert status < 500, f"{what} answered {status}: {shown}"
    try:
        decoded = json.loads(body) if body else {}
    except ValueError as error:
        raise AssertionError(
            f"{what} answered {status} with a body that is not JSON: {shown}"
        ) from error
    assert isinstance(decoded, dict), f"{what} answered {status} with {shown}"
    if status >= 400:
        error_type = headers.get("x-amzn-ErrorType")
        assert error_type, f"{what} answered {status} without x-amzn-ErrorType: {shown}"
        assert decoded.get("__type") == error_type, f"{what} answered {status}: {shown}"
        message = decoded.get("message")
        assert isinstance(message, str), f"{what}: no message in {shown}"
        assert message.strip(), f"{what}: an empty message in {shown}"


def send(http: httpx.Client, request: RawRequest) -> httpx.Response:
    return http.request(
        request.method, request.path, content=request.body, headers=list(request.headers)
    )


def send_and_check(http: httpx.Client, operation: Operation, request: RawRequest) -> httpx.Response:
    response = send(http, request)
    check_response(
        f"{operation!r} {request.method} {request.path[:200]}",
        response.status_code,
        response.headers,
        response.content,
    )
    return response


# -- objects on the server ------------------------------------------------------------------------

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
COUNTS = frozenset({"inUseQuantity", "availableQuantity"})
"""Members that change while any job holding the resource runs: not compared."""
DESTRUCTIVE_PREFIXES = ("Delete", "Deregister")


@dataclass
class KeptObject:
    """An object created before fuzzing whose Describe* output must not change but by a
    successful request that names it."""

    kind: str
    names: tuple[str, ...]
    """Everything a request can name it by (name, ARN, id)."""
    read: Callable[[Any, Any], Any] = field(repr=False)
    """(batch client, logs client) -> its description, as the Describe* call answers."""

    def describe(self, batch: Any, logs: Any) -> Any:
        try:
            return _comparable(self.read(batch, logs))
        except ClientError as error:
            return {"error": error.response["Error"]["Code"]}

    def describe_settled(self, batch: Any, logs: Any) -> Any:
        """Its description once no change is under way (an update of an environment or queue
        passes through UPDATING)."""

        def settled() -> Any:
            description = self.describe(batch, logs)
            return None if TRANSITIONAL & set(_statuses(description)) else description

        return wait_for(settled, timeout=60, interval=0.1, what=f"{self.names[0]} settled")


TRANSITIONAL = frozenset({"CREATING", "UPDATING", "DELETING"})


def _statuses(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["status"]] if isinstance(value.get("status"), str) else []
        return found + [s for item in value.values() for s in _statuses(item)]
    if isinstance(value, list):
        return [s for item in value for s in _statuses(item)]
    return []


def _comparable(value: Any) -> Any:
    """A description less response metadata and a consumable resource's live counts."""
    if isinstance(value, dict):
        return {
            key: _comparable(item)
            for key, item in value.items()
            if key != "ResponseMetadata" and key not in COUNTS
        }
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def _job_reader(job_id: str) -> Callable[[Any, Any], Any]:
    return lambda batch, _: batch.describe_jobs(jobs=[job_id])


def _stream_reader(stream: str) -> Callable[[Any, Any], Any]:
    return lambda _, logs: logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
    )["events"]


def _ensure_valid(batch: Any, ce: str, queue: str) -> None:
    def valid() -> bool:
        queues = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
        ces = batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]
        return bool(queues[0]["status"] == "VALID" and ces[0]["status"] == "VALID")

    wait_for(valid, timeout=60, what=f"{ce} and {queue} VALID")


def _environment_and_queue(
    batch: Any, prefix: str, max_vcpus: int, **queue: Any
) -> tuple[str, str, str, str]:
    """A compute environment and a queue on it, both VALID: their names and ARNs."""
    ce, q = unique(f"{prefix}-ce"), unique(f"{prefix}-q")
    ce_arn = batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": max_vcpus, "subnets": []},
    )["computeEnvironmentArn"]
    queue_arn = batch.create_job_queue(
        jobQueueName=q,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        **queue,
    )["jobQueueArn"]
    _ensure_valid(batch, ce, q)
    return ce, ce_arn, q, queue_arn


def _job_definition(batch: Any, prefix: str, command: list[str], **extra: Any) -> tuple[str, str]:
    """A one-vCPU container job definition: its name and ARN."""
    registered = batch.register_job_definition(
        jobDefinitionName=unique(f"{prefix}-jd"),
        type="container",
        containerProperties={
            "image": "busybox",
            "command": command,
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
        **extra,
    )
    return registered["jobDefinitionName"], registered["jobDefinitionArn"]


def plausible_requests(
    t: Mapping[str, str], log_streams: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Requests a real client would send, on the targets `t` (names by kind: "environment",
    "queue", "definition", "policy" ARN, "resource"), for the fuzzer to vary."""
    requirements = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
    container = {
        "image": "busybox",
        "command": ["echo", "Ref::word"],
        "resourceRequirements": requirements,
        "environment": [{"name": "MODE", "value": "fuzz"}],
    }
    fair_share = {
        "shareDecaySeconds": 60,
        "computeReservation": 10,
        "shareDistribution": [{"shareIdentifier": "a*", "weightFactor": 0.5}],
    }
    return {
        "CreateComputeEnvironment": [
            {
                "computeEnvironmentName": "fuzz-new-ce",
                "type": "MANAGED",
                "state": "ENABLED",
                "computeResources": {
                    "type": "EC2",
                    "maxvCpus": 2,
                    "minvCpus": 0,
                    "subnets": [],
                },
                "tags": {"team": "fuzz"},
            }
        ],
        "UpdateComputeEnvironment": [
            {
                "computeEnvironment": t["environment"],
                "state": "ENABLED",
                "computeResources": {"maxvCpus": 1, "minvCpus": 0},
            }
        ],
        "CreateJobQueue": [
            {
                "jobQueueName": "fuzz-new-q",
                "priority": 10,
                "state": "ENABLED",
                "schedulingPolicyArn": t["policy"],
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": t["environment"]}],
                "jobStateTimeLimitActions": [
                    {
                        "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                        "state": "RUNNABLE",
                        "maxTimeSeconds": 600,
                        "action": "CANCEL",
                    }
                ],
            }
        ],
        "UpdateJobQueue": [
            {
                "jobQueue": t["queue"],
                "priority": 5,
                "state": "ENABLED",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": t["environment"]}],
            }
        ],
        "RegisterJobDefinition": [
            {
                "jobDefinitionName": "fuzz-new-jd",
                "type": "container",
                "parameters": {"word": "hello"},
                "containerProperties": container,
                "retryStrategy": {
                    "attempts": 2,
                    "evaluateOnExit": [{"onExitCode": "1*", "action": "RETRY"}],
                },
                "timeout": {"attemptDurationSeconds": 60},
                "schedulingPriority": 1,
                "tags": {"team": "fuzz"},
            },
            {
                "jobDefinitionName": "fuzz-new-mn",
                "type": "multinode",
                "nodeProperties": {
                    "numNodes": 2,
                    "mainNode": 0,
                    "nodeRangeProperties": [{"targetNodes": "0:1", "container": container}],
                },
            },
        ],
        "SubmitJob": [
            {
                "jobName": "fuzz-job",
                "jobQueue": t["queue"],
                "jobDefinition": t["definition"],
                "shareIdentifier": "a",
                "schedulingPriorityOverride": 1,
                "parameters": {"word": "hi"},
                "containerOverrides": {
                    "command": ["true"],
                    "resourceRequirements": requirements,
                    "environment": [{"name": "MODE", "value": "override"}],
                },
                "arrayProperties": {"size": 2},
                "retryStrategy": {"attempts": 1},
                "timeout": {"attemptDurationSeconds": 60},
                "consumableResourcePropertiesOverride": {
                    "consumableResourceList": [{"consumableResource": t["resource"], "quantity": 1}]
                },
                "tags": {"team": "fuzz"},
                "propagateTags": True,
            }
        ],
        "CreateSchedulingPolicy": [{"name": "fuzz-new-sp", "fairsharePolicy": fair_share}],
        "UpdateSchedulingPolicy": [{"arn": t["policy"], "fairsharePolicy": fair_share}],
        "CreateConsumableResource": [
            {
                "consumableResourceName": "fuzz-new-cr",
                "totalQuantity": 5,
                "resourceType": "REPLENISHABLE",
            }
        ],
        "UpdateConsumableResource": [
            {"consumableResource": t["resource"], "operation": "ADD", "quantity": 1}
        ],
        "ListJobs": [
            {
                "jobQueue": t["queue"],
                "jobStatus": "SUCCEEDED",
                "maxResults": 10,
                "filters": [{"name": "JOB_NAME", "values": ["fuzz*"]}],
            }
        ],
        "GetLogEvents": [
            {
                "logGroupName": "/aws/batch/job",
                "logStreamName": stream,
                "startFromHead": True,
                "limit": 10,
                "startTime": 0,
            }
            for stream in log_streams[:1]
        ],
    }


class FuzzedServer:
    """A server with kept objects, targets and a probe queue, and what fuzzing must not break.

    Kept objects are named in requests like targets (but never deleted by a valid-shaped
    request); after a successful request that names one, its description is read again, so a
    change by any other request, failed requests above all, shows at the next comparison."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=120)
        self.kept: list[KeptObject] = []
        self.expected: dict[str, Any] = {}
        """Each kept object's description as it must be now."""
        self.names: dict[str, tuple[str, ...]] = {}
        self.answers: Counter[tuple[str, str]] = Counter()
        """(operation, "2xx" or the error code) of every request sent."""
        self._connect()

    def _connect(self) -> None:
        self.batch = self.server.client("batch")
        self.logs = self.server.client("logs")

    def _name(self, kind: str, *names: str) -> None:
        self.names[kind] = (*self.names.get(kind, ()), *names)

    # setup ------------------------------------------------------------------------------------

    def populate(self) -> None:
        """Kept objects (finished jobs among them), targets, and the probe queue."""
        self._create_kept()
        self.add_targets()
        _, _, self.probe_queue, _ = _environment_and_queue(self.batch, "probe", 2)
        _, self.probe_definition = _job_definition(self.batch, "probe", ["sh", "-c", "echo probe"])
        self.expected = {
            kept.names[0]: kept.describe_settled(self.batch, self.logs) for kept in self.kept
        }

    def _keep(self, kind: str, names: tuple[str, ...], read: Callable[[Any, Any], Any]) -> None:
        self.kept.append(KeptObject(kind, names, read))
        self._name(kind, *names)

    def _create_kept(self) -> None:
        batch = self.batch
        policy = batch.create_scheduling_policy(
            name=unique("kept-sp"),
            fairsharePolicy={
                "shareDecaySeconds": 60,
                "shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0.5}],
            },
        )
        resource = batch.create_consumable_resource(
            consumableResourceName=unique("kept-cr"), totalQuantity=10, resourceType="REPLENISHABLE"
        )
        resource_name = resource["consumableResourceName"]
        ce, ce_arn, queue, queue_arn = _environment_and_queue(batch, "kept", 4)
        definition_name, definition = _job_definition(
            batch,
            "kept",
            ["sh", "-c", "echo kept line; exit ${CODE:-0}"],
            consumableResourceProperties={
                "consumableResourceList": [{"consumableResource": resource_name, "quantity": 1}]
            },
            tags={"kept": "yes"},
        )
        jobs = [
            submit_job(batch, queue, definition, tags={"kept": "job"}),
            submit_job(
                batch,
                queue,
                definition,
                containerOverrides={"environment": [{"name": "CODE", "value": "3"}]},
            ),
            submit_job(batch, queue, definition, arrayProperties={"size": 2}),
        ]
        finished = [wait_status(batch, job, timeout=120) for job in jobs]
        assert [job["status"] for job in finished] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
        children = [f"{jobs[2]}:0", f"{jobs[2]}:1"]
        for child in children:
            wait_status(batch, child, timeout=60)
        self._keep(
            "environment",
            (ce, ce_arn),
            lambda b, _: b.describe_compute_environments(computeEnvironments=[ce]),
        )
        self._keep(
            "queue", (queue, queue_arn), lambda b, _: b.describe_job_queues(jobQueues=[queue])
        )
        self._keep(
            "definition",
            (definition, definition_name),
            lambda b, _: b.describe_job_definitions(jobDefinitions=[definition]),
        )
        self._keep(
            "policy",
            (policy["arn"], policy["name"]),
            lambda b, _: b.describe_scheduling_policies(arns=[policy["arn"]]),
        )
        self._keep(
            "resource",
            (resource_name, resource["consumableResourceArn"]),
            lambda b, _: b.describe_consumable_resource(consumableResource=resource_name),
        )
        for job in finished:
            self._keep("job", (job["jobId"], job["jobArn"]), _job_reader(job["jobId"]))
        self._name("job", *children)
        self._name("log group", "/aws/batch/job")
        for job in finished[:2]:
            stream = job["container"]["logStreamName"]
            self._keep("log stream", (stream,), _stream_reader(stream))
        self._name("arn", ce_arn, queue_arn, definition, policy["arn"], finished[0]["jobArn"])

    def add_targets(self) -> None:
        """Objects the fuzzer may change and delete; each call adds fresh ones (a phase of
        fuzzing deletes those of the last)."""
        batch = self.batch
        policy = batch.create_scheduling_policy(
            name=unique("fuzz-sp"),
            fairsharePolicy={
                "shareDecaySeconds": 0,
                "shareDistribution": [{"shareIdentifier": "a"}],
            },
        )
        resource = batch.create_consumable_resource(
            consumableResourceName=unique("fuzz-cr"), totalQuantity=1
        )
        # One vCPU: whatever jobs the fuzzer manages to submit here run one at a time.
        ce, ce_arn, queue, queue_arn = _environment_and_queue(
            batch, "fuzz", 1, schedulingPolicyArn=policy["arn"]
        )
        definition_name, definition = _job_definition(batch, "fuzz", ["true"])
        self.targets = {
            "environment": ce,
            "queue": queue,
            "definition": definition,
            "policy": policy["arn"],
            "resource": resource["consumableResourceName"],
        }
        self._name("environment", ce, ce_arn)
        self._name("queue", queue, queue_arn)
        self._name("definition", definition, definition_name)
        self._name("policy", policy["arn"], policy["name"])
        self._name(
            "resource", resource["consumableResourceName"], resource["consumableResourceArn"]
        )
        self._name("arn", definition, queue_arn)

    def vocabulary(self, operation: Operation) -> Vocabulary:
        """The names requests to `operation` prefer: all of them, but kept objects' for
        deletions (a valid-shaped deletion of one would succeed, and leave less to compare)."""
        if not operation.name.startswith(DESTRUCTIVE_PREFIXES):
            return Vocabulary(dict(self.names))
        kept = {name for obj in self.kept for name in obj.names}
        return Vocabulary(
            {kind: tuple(n for n in names if n not in kept) for kind, names in self.names.items()}
        )

    def examples(self) -> dict[str, list[dict[str, Any]]]:
        """Plausible requests on the latest targets, for the fuzzer to vary."""
        return plausible_requests(self.targets, self.names.get("log stream", ()))

    # fuzzing --------------------------------------------------------------------------------

    def note_success(self, operation: Operation, request_text: str) -> None:
        """A successful request may change the kept objects it names: read them again."""
        if not operation.mutating:
            return
        for kept in self.kept:
            if any(name in request_text for name in kept.names):
                self.expected[kept.names[0]] = kept.describe_settled(self.batch, self.logs)

    def send_raw(self, operation: Operation, request: RawRequest) -> httpx.Response:
        response = send_and_check(self.http, operation, request)
        answer = response.headers.get("x-amzn-ErrorType") or f"{response.status_code // 100}xx"
        self.answers[repr(operation), answer] += 1
        if response.status_code < 300:
            text = unquote(request.path) + request.body.decode(errors="replace")
            self.note_success(operation, text)
        return response

    def call_boto3(self, operation: Operation, params: dict[str, Any]) -> None:
        """A valid-shaped call through boto3: answered, or refused with a 4xx AWS error."""
        client = self.batch if operation.service == "batch" else self.logs
        try:
            getattr(client, xform_name(operation.name))(**params)
        except ClientError as error:
            refused = error.response
        else:
            self.answers[repr(operation), "2xx"] += 1
            self.note_success(operation, json.dumps(params, default=str))
            return
        status = refused["ResponseMetadata"]["HTTPStatusCode"]
        self.answers[repr(operation), refused["Error"].get("Code", str(status))] += 1
        assert status < 500, f"{operation!r} answered {status}: {refused['Error']}"
        assert refused["Error"].get("Code"), refused
        assert refused["Error"].get("Message"), refused
        headers = refused["ResponseMetadata"].get("HTTPHeaders", {})
        assert headers.get("x-amzn-errortype"), f"{operation!r}: not AWS's error shape: {refused}"

    # properties after fuzzing ----------------------------------------------------------------

    def assert_kept_unchanged(self) -> int:
        """Every kept object is described as after the last successful request that named it
        (or as before fuzzing); how many still exist."""
        existing = 0
        for kept in self.kept:
            key = kept.names[0]
            now = kept.describe_settled(self.batch, self.logs)
            assert now == self.expected[key], (
                f"kept {kept.kind} {key} changed:\n"
                f"  expected {json.dumps(self.expected[key], default=str, sort_keys=True)}\n"
                f"  now      {json.dumps(now, default=str, sort_keys=True)}"
            )
            existing += "error" not in now if isinstance(now, dict) else 1
        return existing

    def assert_healthy(self) -> None:
        """/health answers ok and a normal job submitted now succeeds."""
        response = self.http.get("/health")
        assert response.status_code == 200, response.text
        assert response.json().get("status") == "ok", response.text
        job = submit_job(self.batch, self.probe_queue, self.probe_definition)
        detail = wait_status(self.batch, job, timeout=120)
        assert detail["status"] == "SUCCEEDED", detail.get("statusReason")

    def assert_everything_readable(self) -> int:
        """Every stored object can still be listed and described, whatever the fuzzer stored:
        a value that was taken but breaks its rendering shows here. How many were read."""
        batch = self.batch
        read = 0

        def pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
            found: list[Any] = []
            for page in client.get_paginator(operation).paginate(**params):
                found.extend(page[key])
            return found

        read += len(pages(batch, "describe_compute_environments", "computeEnvironments"))
        queues = pages(batch, "describe_job_queues", "jobQueues")
        read += len(queues)
        read += len(pages(batch, "describe_job_definitions", "jobDefinitions"))
        read += len(pages(batch, "list_consumable_resources", "consumableResources"))
        policies = [
            p["arn"] for p in pages(batch, "list_scheduling_policies", "schedulingPolicies")
        ]
        for start in range(0, len(policies), 100):
            read += len(
                batch.describe_scheduling_policies(arns=policies[start : start + 100])[
                    "schedulingPolicies"
                ]
            )
        for queue in queues:
            for status in JOB_STATUSES:
                ids = [
                    job["jobId"]
                    for job in pages(
                        batch,
                        "list_jobs",
                        "jobSummaryList",
                        jobQueue=queue["jobQueueArn"],
                        jobStatus=status,
                    )
                ]
                for start in range(0, len(ids), 100):
                    read += len(batch.describe_jobs(jobs=ids[start : start + 100])["jobs"])
        for group in pages(self.logs, "describe_log_groups", "logGroups"):
            read += len(
                pages(
                    self.logs,
                    "describe_log_streams",
                    "logStreams",
                    logGroupName=group["logGroupName"],
                )
            )
        return read

    def summary(self) -> str:
        """Requests sent so far, and per operation how many succeeded."""
        operations = sorted({operation for operation, _ in self.answers})
        lines = [f"{sum(self.answers.values())} requests"]
        for operation in operations:
            total = sum(n for (op, _), n in self.answers.items() if op == operation)
            lines.append(f"  {operation}: {self.answers[operation, '2xx']} of {total} succeeded")
        return "\n".join(lines)

    def restart(self) -> None:
        """Stop the server and start it again on the same data dir (and port)."""
        assert self.server.stop() == 0, self.server.output()[-3000:]
        self.server.start()
        self._connect()

    def close(self) -> None:
        self.http.close()
