"""Names of resources: the rule a new compute environment, job queue, job definition,
scheduling policy or consumable resource name must follow, and picking out the resources a
Describe call names (by name or ARN)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ComputeEnvironment, JobQueue
from batchyard.service import references

# Matched whole (fullmatch): with match(), `$` also matches before a final "\n".
_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_name(name: str, what: str) -> None:
    """A new resource's name: 1 to 128 letters, numbers, hyphens and underscores."""
    if not _NAME.fullmatch(name):
        raise ClientException(
            f"{what} name {name!r} is invalid: up to 128 letters (uppercase and lowercase), "
            "numbers, hyphens, and underscores are allowed."
        )


_Named = TypeVar("_Named", ComputeEnvironment, JobQueue)


def named(everything: list[_Named], wanted: Sequence[str] | None, kind: str) -> list[_Named]:
    """The resources a Describe call names (by name or ARN), or all when it names none."""
    if not wanted:
        return everything
    if len(wanted) > 100:
        raise ClientException(f"At most 100 {kind}s can be described at once.")
    names = {references.name_from_reference(r, kind) for r in wanted}
    return [item for item in everything if item.name in names]
