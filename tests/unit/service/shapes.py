"""Rendered documents against botocore's output shapes: the members a render leaves null, and
what botocore's validator says is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.validate import ParamValidator

from batchyard.api.protocol import service_model


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def shape_errors(shape_name: str, value: dict[str, Any]) -> list[str]:
    report = ParamValidator().validate(value, service_model().shape_for(shape_name))
    # startedAt is "required" in the model but AWS omits it until the job runs
    # (docs/aws-behaviour.md#job-states).
    return [
        line
        for line in report.generate_report().splitlines()
        if line.strip() and "startedAt" not in line
    ]
