"""SubmitJob's validation in the service layer (service/jobs.py): what it refuses, with AWS's
messages."""

from __future__ import annotations

import pytest

from batchyard.domain.model import (
    EvaluateOnExit,
    JobStatus,
    RetryStrategy,
)
from batchyard.service.context import ServiceContext
from tests.unit.service.context import IDENTITY, NOW, define, rejected, set_status, submit

S = JobStatus


# -- SubmitJob validation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-job", "_job", "a b", "a.b", "x" * 129, "é"])
def test_job_name_must_match_aws_pattern(ctx: ServiceContext, name: str) -> None:
    message = rejected(lambda: submit(ctx, job_name=name), "Job name should match valid pattern")
    assert message.startswith("Error executing request, Exception : ")


@pytest.mark.parametrize("name", ["a", "A1", "a-b_c", "9" + "x" * 127])
def test_valid_job_names_are_accepted(ctx: ServiceContext, name: str) -> None:
    assert submit(ctx, job_name=name).job_name == name


def test_queue_must_exist_and_may_be_named_by_arn(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="nope"), "JobQueue nope not found.")
    job = submit(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert job.job_queue == "q"


def test_disabled_queue_rejects_submissions(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="off"), "off", "DISABLED")


def test_job_definition_by_name_revision_and_arn(ctx: ServiceContext) -> None:
    second = define(ctx, "render", container_properties={"image": "busybox", "command": ["two"]})
    assert submit(ctx).job_definition_arn == second.arn
    first = submit(ctx, job_definition="render:1")
    assert first.job_definition_arn == IDENTITY.arn("job-definition", "render:1")
    by_arn = submit(ctx, job_definition=IDENTITY.arn("job-definition", "render:2"))
    assert by_arn.container["command"] == ["two"]
    assert first.job_definition_name == "render"
    rejected(lambda: submit(ctx, job_definition="ghost"), "ghost", "does not exist")
    rejected(lambda: submit(ctx, job_definition="render:9"), "render:9")


@pytest.mark.parametrize("size", [0, 1, 10_001])
def test_array_size_out_of_range_is_rejected(ctx: ServiceContext, size: int) -> None:
    rejected(lambda: submit(ctx, array_properties={"size": size}), "size", str(size))


def test_more_than_20_dependencies_rejected(ctx: ServiceContext) -> None:
    ids = [submit(ctx).job_id for _ in range(21)]
    rejected(
        lambda: submit(ctx, depends_on=[{"jobId": i} for i in ids]),
        "Error executing request, Exception : Job cannot have more than 20 dependencies",
    )
    assert submit(ctx, depends_on=[{"jobId": i} for i in ids[:20]]).wait_for == tuple(ids[:20])


def test_unknown_dependency_is_named(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, depends_on=[{"jobId": "no-such-job"}]), "no-such-job")


def test_sequential_rules(ctx: ServiceContext) -> None:
    other = submit(ctx, array_properties={"size": 2})
    rejected(lambda: submit(ctx, depends_on=[{"type": "SEQUENTIAL"}]), "SEQUENTIAL", "array")
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 2},
            depends_on=[{"jobId": other.job_id, "type": "SEQUENTIAL"}],
        ),
        "SEQUENTIAL",
        "jobId",
    )


def test_n_to_n_rules(ctx: ServiceContext) -> None:
    plain = submit(ctx)
    array3 = submit(ctx, array_properties={"size": 3})
    rejected(
        lambda: submit(ctx, depends_on=[{"jobId": array3.job_id, "type": "N_TO_N"}]),
        "N_TO_N",
        "array",
    )
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 3},
            depends_on=[{"jobId": plain.job_id, "type": "N_TO_N"}],
        ),
        "N_TO_N",
        plain.job_id,
    )
    rejected(
        lambda: submit(
            ctx,
            array_properties={"size": 4},
            depends_on=[{"jobId": array3.job_id, "type": "N_TO_N"}],
        ),
        "same size",
        array3.job_id,
    )
    rejected(lambda: submit(ctx, depends_on=[{"type": "N_TO_N"}]), "jobId")


def test_reserved_environment_names_rejected(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(
            ctx, container_overrides={"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}
        ),
        "AWS_BATCH_JOB_ID",
    )
    define(
        ctx,
        "reserved",
        container_properties={
            "image": "busybox",
            "environment": [{"name": "AWS_BATCHY", "value": "1"}],
        },
    )
    rejected(lambda: submit(ctx, job_definition="reserved"), "AWS_BATCHY")
    ok = submit(ctx, container_overrides={"environment": [{"name": "AWS_REGION", "value": "x"}]})
    assert {"name": "AWS_REGION", "value": "x"} in ok.container["environment"]


def test_override_command_must_not_contain_empty_strings(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(ctx, container_overrides={"command": ["echo", ""]}),
        "command",
        "empty strings",
    )


@pytest.mark.parametrize("attempts", [0, 11])
def test_retry_attempts_range(ctx: ServiceContext, attempts: int) -> None:
    rejected(lambda: submit(ctx, retry_strategy={"attempts": attempts}), "attempts", str(attempts))


def test_retry_strategy_needs_attempts(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(
            ctx, retry_strategy={"evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}]}
        ),
        "Error executing request, Exception : RetryAttempts must be provided with retry strategy",
    )


def test_at_most_five_evaluate_on_exit_conditions(ctx: ServiceContext) -> None:
    conditions = [{"onExitCode": str(i), "action": "EXIT"} for i in range(6)]
    rejected(
        lambda: submit(ctx, retry_strategy={"attempts": 2, "evaluateOnExit": conditions}),
        "evaluateOnExit",
        "5",
    )


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("onExitCode", "*1"),
        ("onExitCode", "1a"),
        ("onExitCode", "1**"),
        ("onExitCode", ""),
        ("onReason", "Host-EC2*"),
        ("onReason", "a*b"),
        ("onStatusReason", "(instance)"),
        ("onStatusReason", "x" * 513),
    ],
)
def test_restricted_evaluate_on_exit_patterns(ctx: ServiceContext, key: str, pattern: str) -> None:
    strategy = {"attempts": 2, "evaluateOnExit": [{key: pattern, "action": "RETRY"}]}
    rejected(
        lambda: submit(ctx, retry_strategy=strategy),
        "Evaluate on exit condition contains restricted characters",
    )


def test_legal_evaluate_on_exit_patterns_and_case_insensitive_actions(ctx: ServiceContext) -> None:
    conditions = [
        {"onExitCode": "40*", "action": "exit"},
        {"onStatusReason": "Host EC2*", "action": "Retry"},
        {"onReason": "CannotPullContainerError:*", "action": "RETRY"},
        {"onReason": "*", "onExitCode": "*", "action": "EXIT"},
    ]
    job = submit(ctx, retry_strategy={"attempts": 4, "evaluateOnExit": conditions})
    assert job.retry_strategy == RetryStrategy(
        attempts=4,
        evaluate_on_exit=(
            EvaluateOnExit(action="EXIT", on_exit_code="40*"),
            EvaluateOnExit(action="RETRY", on_status_reason="Host EC2*"),
            EvaluateOnExit(action="RETRY", on_reason="CannotPullContainerError:*"),
            EvaluateOnExit(action="EXIT", on_reason="*", on_exit_code="*"),
        ),
    )
    rejected(
        lambda: submit(
            ctx, retry_strategy={"attempts": 2, "evaluateOnExit": [{"action": "MAYBE"}]}
        ),
        "MAYBE",
    )


def test_timeout_minimum_is_60_seconds(ctx: ServiceContext) -> None:
    rejected(
        lambda: submit(ctx, timeout={"attemptDurationSeconds": 59}), "attemptDurationSeconds", "60"
    )
    assert submit(ctx, timeout={"attemptDurationSeconds": 60}).timeout_seconds == 60


def test_at_most_50_tags(ctx: ServiceContext) -> None:
    tags = {f"k{i}": "v" for i in range(51)}
    rejected(lambda: submit(ctx, tags=tags), "tags", "51")
    assert len(submit(ctx, tags=dict(list(tags.items())[:50])).tags) == 50


def test_share_identifier_or_priority_needs_fair_share_queue(ctx: ServiceContext) -> None:
    sic = (
        "Job with shareIdentifier or schedulingPriority can onlybe submitted to job queue "
        "with fair share scheduling policy."
    )
    rejected(lambda: submit(ctx, share_identifier="blue"), sic)
    rejected(lambda: submit(ctx, scheduling_priority_override=3), sic)


def test_fair_share_queue_requires_share_identifier(ctx: ServiceContext) -> None:
    rejected(lambda: submit(ctx, job_queue="fair"), "shareIdentifier", "required")
    job = submit(ctx, job_queue="fair", share_identifier="blue", scheduling_priority_override=9)
    assert (job.share_identifier, job.scheduling_priority) == ("blue", 9)
    rejected(
        lambda: submit(
            ctx, job_queue="fair", share_identifier="blue", scheduling_priority_override=10_000
        ),
        "schedulingPriorityOverride",
        "10000",
    )


def test_a_fair_share_queue_takes_at_most_500_active_share_identifiers(
    ctx: ServiceContext,
) -> None:
    first = [submit(ctx, job_queue="fair", share_identifier=f"s{i}") for i in range(500)]
    message = rejected(
        lambda: submit(ctx, job_queue="fair", share_identifier="one-too-many"),
        "500 active share identifiers",
        "one-too-many",
    )
    assert message.startswith("Job queue fair")
    submit(ctx, job_queue="fair", share_identifier="s7")  # an active share: still fine
    submit(ctx, job_queue="q")  # other queues are not affected
    # Once one share's jobs are all finished, a new share fits again, and no other.
    for job in first[:1]:
        set_status(ctx, job.job_id, S.SUCCEEDED, stopped_at=NOW)
    submit(ctx, job_queue="fair", share_identifier="newcomer")
    rejected(lambda: submit(ctx, job_queue="fair", share_identifier="another"), "500")
    # A share seen before but finished counts as new.
    rejected(lambda: submit(ctx, job_queue="fair", share_identifier="s0"), "500")
