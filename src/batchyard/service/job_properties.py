"""Rules for the job properties RegisterJobDefinition and SubmitJob share: environment, command,
retry strategy, timeout, tags and node ranges (docs/aws-behaviour.md: #retries, #timeouts,
#environment-variables, #overrides-and-resources, #tags, #validation-and-errors).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from batchyard.domain.errors import ClientException
from batchyard.domain.model import Document, EvaluateOnExit, RetryStrategy
from batchyard.domain.numerals import NumeralError, parse_integer

ERROR_PREFIX = "Error executing request, Exception : "
MAX_RETRY_ATTEMPTS = 10
MAX_EVALUATE_ON_EXIT = 5
MAX_EVALUATE_PATTERN = 512
MIN_ATTEMPT_DURATION_SECONDS = 60
MAX_TAGS = 50
MAX_NUM_NODES = 1000  # nodes of a multi-node parallel job
RESERVED_ENVIRONMENT_PREFIX = "AWS_BATCH"

# AWS's own patterns for EvaluateOnExit (API reference): only a trailing `*` is a wildcard.
_EXIT_CODE_PATTERN = re.compile(r"[0-9]*\*?")
_REASON_PATTERN = re.compile(r"[a-zA-Z0-9.:\s]*\*?")


def invalid(text: str) -> ClientException:
    """A ClientException worded as AWS Batch words its validation errors."""
    return ClientException(ERROR_PREFIX + text)


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    tags = dict(tags or {})
    if len(tags) > MAX_TAGS:
        raise invalid(f"A resource can have at most {MAX_TAGS} tags, got {len(tags)}.")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise invalid(f"Tag {key!r}: keys must be 1 to 128 characters, values at most 256.")
        if key.lower().startswith("aws:"):
            raise invalid(f"Tag key {key!r} is invalid: the aws: prefix is reserved.")
    return tags


def check_environment(environment: Iterable[Document] | None, where: str = "the job") -> None:
    for variable in environment or ():
        name = str(variable.get("name", ""))
        if name.startswith(RESERVED_ENVIRONMENT_PREFIX):
            raise invalid(
                f"Environment variable {name} in {where} is not allowed: names starting with "
                f"{RESERVED_ENVIRONMENT_PREFIX} are reserved for variables set by AWS Batch."
            )


def check_command(command: Sequence[str], where: str) -> None:
    if any(argument == "" for argument in command):
        raise invalid(f"{where}.command must not contain empty strings.")


def check_retry_strategy(document: Document | None) -> RetryStrategy | None:
    """Validate a retryStrategy (SubmitJob or RegisterJobDefinition) and convert it.

    Actions are stored upper-case; None when no strategy was given.
    """
    if document is None:
        return None
    attempts = document.get("attempts")
    conditions = document.get("evaluateOnExit") or []
    if attempts is None:
        raise invalid("RetryAttempts must be provided with retry strategy")
    if not 1 <= attempts <= MAX_RETRY_ATTEMPTS:
        raise invalid(
            f"Retry strategy attempts must be between 1 and {MAX_RETRY_ATTEMPTS}, got {attempts}."
        )
    if len(conditions) > MAX_EVALUATE_ON_EXIT:
        raise invalid(
            f"Retry strategy evaluateOnExit can have at most {MAX_EVALUATE_ON_EXIT} conditions."
        )
    evaluate: list[EvaluateOnExit] = []
    for condition in conditions:
        action = str(condition.get("action", "")).upper()
        if action not in ("RETRY", "EXIT"):
            raise invalid(
                f"Evaluate on exit action {condition.get('action')!r} is not RETRY or EXIT."
            )
        for key, pattern in (
            ("onExitCode", _EXIT_CODE_PATTERN),
            ("onReason", _REASON_PATTERN),
            ("onStatusReason", _REASON_PATTERN),
        ):
            value = condition.get(key)
            if value is not None and (
                not 1 <= len(value) <= MAX_EVALUATE_PATTERN or not pattern.fullmatch(value)
            ):
                raise invalid("Evaluate on exit condition contains restricted characters")
        evaluate.append(
            EvaluateOnExit(
                action=action,
                on_status_reason=condition.get("onStatusReason"),
                on_reason=condition.get("onReason"),
                on_exit_code=condition.get("onExitCode"),
            )
        )
    return RetryStrategy(attempts=attempts, evaluate_on_exit=tuple(evaluate))


def check_timeout(document: Document | None) -> int | None:
    """Validate a timeout (SubmitJob or RegisterJobDefinition); its seconds, if any."""
    if document is None or document.get("attemptDurationSeconds") is None:
        return None
    seconds = document["attemptDurationSeconds"]
    if not isinstance(seconds, int) or seconds < MIN_ATTEMPT_DURATION_SECONDS:
        raise invalid(
            f"timeout.attemptDurationSeconds must be at least "
            f"{MIN_ATTEMPT_DURATION_SECONDS}, got {seconds}."
        )
    return seconds


def node_range(target_nodes: str, num_nodes: int) -> tuple[int, int]:
    """(first, last) node of a targetNodes range `n`, `n:m`, `:m`, `n:` or `:` among
    num_nodes nodes; a ClientException unless both ends are node indexes in order."""
    start_text, sep, end_text = target_nodes.partition(":")
    try:
        start = parse_integer(start_text) if start_text else 0
        end = parse_integer(end_text) if end_text else num_nodes - 1
    except NumeralError:
        raise ClientException(f"targetNodes {target_nodes!r} is not a node range.") from None
    if not sep:
        end = start
    if not 0 <= start <= end < num_nodes:
        raise ClientException(f"targetNodes {target_nodes!r} is outside 0..{num_nodes - 1}.")
    return start, end
