"""AWS wire protocols driven by botocore service models: Batch rest-json and Logs json-1.1.

Owns: finding a Batch operation for (method, path) or a Logs operation for its X-Amz-Target,
turning a request into the operation's input, validating it against any model as the service
does, and shaping outputs and errors as AWS does. It knows nothing about what operations do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote

import botocore.session
import orjson
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from batchyard.domain.errors import BatchError, ClientException, InvalidParameterException
from batchyard.domain.numerals import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN

MAX_REPORTED_ERRORS = 10
# Enums AWS documents as case-insensitive ("values aren't case sensitive").
CASE_INSENSITIVE_ENUMS = frozenset({"RetryAction"})
# What botocore's integer shapes hold at AWS (Java Integer and Long); nothing wider reaches
# the service, and so nothing the store (signed 64-bit) cannot hold.
INTEGER_WIDTHS = {"integer": (INT32_MIN, INT32_MAX), "long": (INT64_MIN, INT64_MAX)}


@cache
def service_model() -> ServiceModel:
    """The AWS Batch model: the operations the rest-json routes lead to."""
    return botocore.session.get_session().get_service_model("batch")


@cache
def logs_model() -> ServiceModel:
    """The CloudWatch Logs model, served on the same endpoint by X-Amz-Target."""
    return botocore.session.get_session().get_service_model("logs")


LOGS_TARGET_PREFIX = "Logs_20140328."
LOGS_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: OperationModel


def _compile(request_uri: str) -> re.Pattern[str]:
    path = request_uri.split("?", 1)[0]
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            name = part[1:-1]
            if name.endswith("+"):
                regex += f"(?P<{name[:-1]}>.+)"
            else:
                regex += f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(f"{regex}/?")


@cache
def routes() -> tuple[Route, ...]:
    model = service_model()
    table = []
    for name in model.operation_names:
        op = model.operation_model(name)
        table.append(Route(op.http["method"].upper(), _compile(op.http["requestUri"]), op))
    # Literal paths before templated ones, so /v1/submitjob never matches a label.
    table.sort(key=lambda r: r.pattern.pattern.count("(?P"))
    return tuple(table)


def find_operation(method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]] | None:
    """The Batch operation a request addresses, with its URI labels percent-decoded."""
    path = raw_path.split("?", 1)[0]
    for route in routes():
        if route.method != method:
            continue
        match = route.pattern.fullmatch(path)
        if match is not None:
            return route.operation, {k: unquote(v) for k, v in match.groupdict().items()}
    return None


def parse_json_input(
    body: bytes, error: type[BatchError] = InvalidParameterException
) -> dict[str, Any]:
    """The input of a json-1.1 request: its body, a JSON object ({} when empty)."""
    if not body.strip():
        return {}
    try:
        decoded = orjson.loads(body)
    except ValueError as exc:
        raise error(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise error("The request body must be a JSON object.")
    return decoded


def parse_input(
    operation: OperationModel,
    labels: Mapping[str, str],
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Assemble the operation's input from URI labels, query string, headers and JSON body."""
    shape = operation.input_shape
    params = parse_json_input(body, ClientException)
    if shape is None:
        return params
    query = parse_qsl(query_string, keep_blank_values=True)
    for member_name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", member_name)
        if location == "uri" and wire_name in labels:
            params[member_name] = labels[wire_name]
        elif location == "querystring":
            values = [v for k, v in query if k == wire_name]
            if values:
                params[member_name] = values if member.type_name == "list" else values[-1]
        elif location == "header" and wire_name.lower() in headers:
            params[member_name] = headers[wire_name.lower()]
    return params


def find_logs_operation(target: str) -> OperationModel | None:
    """The Logs operation an X-Amz-Target names (`Logs_20140328.GetLogEvents`), if any."""
    if not target.startswith(LOGS_TARGET_PREFIX):
        return None
    name = target[len(LOGS_TARGET_PREFIX) :]
    model = logs_model()
    return model.operation_model(name) if name in model.operation_names else None


# -- validation --------------------------------------------------------------------------


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 64 else text[:61] + "..."


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, value: Any, constraint: str) -> None:
        shown = "null" if value is None else f"'{_describe(value)}'"
        self.errors.append(f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}")

    def check(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, value, path)  # type: ignore[arg-type]
        elif kind == "list":
            self._list(shape, value, path)  # type: ignore[arg-type]
        elif kind == "map":
            self._map(shape, value, path)  # type: ignore[arg-type]
        elif kind == "string":
            self._string(shape, value, path)
        elif kind in ("integer", "long"):
            low, high = INTEGER_WIDTHS[kind]
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, value, "Member must be an integer")
            elif not low <= value <= high:
                self.fail(path, value, f"Member must have value between {low} and {high}")
            else:
                self._range(shape, value, path)
        elif kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, value, "Member must be a number")
            else:
                self._range(shape, value, path)
        elif kind == "boolean" and not isinstance(value, bool):
            self.fail(path, value, "Member must be a boolean")
        elif kind == "timestamp" and (
            isinstance(value, bool) or not isinstance(value, int | float | str)
        ):
            self.fail(path, value, "Member must be a timestamp")

    def _range(self, shape: Shape, value: float, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.fail(path, value, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            self.fail(path, value, f"Member must have value less than or equal to {high}")

    def _length(self, shape: Shape, size: int, value: Any, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self.fail(path, value, f"Member must have length greater than or equal to {low}")
        if high is not None and size > high:
            self.fail(path, value, f"Member must have length less than or equal to {high}")

    def _string(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, value, "Member must be a string")
            return
        self._length(shape, len(value), value, path)
        enum: list[str] = shape.metadata.get("enum") or []
        if shape.name in CASE_INSENSITIVE_ENUMS:
            value = value.upper()
        if enum and value not in enum:
            self.fail(path, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")

    def _structure(self, shape: StructureShape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, value, "Member must be an object")
            return
        members = shape.members
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(f"{path}.{name}" if path else name, None, "Member must not be null")
        for name, item in value.items():
            child = f"{path}.{name}" if path else name
            member = members.get(name)
            if member is None:
                allowed = ", ".join(members)
                self.errors.append(f"Unknown parameter '{child}', must be one of: {allowed}")
            elif item is not None:
                self.check(member, item, child)

    def _list(self, shape: ListShape, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, value, "Member must be a list")
            return
        self._length(shape, len(value), value, path)
        for index, item in enumerate(value):
            if item is None:
                self.fail(f"{path}.{index + 1}", None, "Member must not be null")
            else:
                self.check(shape.member, item, f"{path}.{index + 1}")

    def _map(self, shape: MapShape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, value, "Member must be a map")
            return
        # AWS takes an empty map as an absent one (Airflow's BatchOperator sends `tags: {}` on
        # every SubmitJob, against a model minimum of 1).
        if value:
            self._length(shape, len(value), value, path)
        for key, item in value.items():
            self.check(shape.key, key, f"{path}.key")
            if item is None:
                self.fail(f"{path}.{key}", None, "Member must not be null")
            else:
                self.check(shape.value, item, f"{path}.{key}")


def validate_input(
    operation: OperationModel,
    params: Mapping[str, Any],
    error: type[BatchError] = ClientException,
) -> None:
    """Raise `error` listing every way params break the operation's input shape (Batch answers
    ClientException, CloudWatch Logs InvalidParameterException)."""
    shape = operation.input_shape
    validator = _Validator()
    if shape is None:
        if params:
            validator.errors.append(f"{operation.name} takes no parameters")
    else:
        validator.check(shape, dict(params), "")
    if validator.errors:
        count = len(validator.errors)
        shown = "; ".join(validator.errors[:MAX_REPORTED_ERRORS])
        noun = "error" if count == 1 else "errors"
        raise error(f"{count} validation {noun} detected: {shown}")


# -- output ------------------------------------------------------------------------------


def shape_output(shape: Shape | None, value: Any) -> Any:
    """Keep exactly the members the model declares; drop None. Unknown keys are a bug."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        out = {}
        for name, item in value.items():
            if item is None:
                continue
            member = members.get(name)
            if member is None:
                raise KeyError(f"{shape.name} has no member {name!r}")
            out[name] = shape_output(member, item)
        return out
    if kind == "list":
        return [shape_output(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {k: shape_output(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def encode_json(payload: Any) -> bytes:
    """A response body: compact JSON, as AWS sends it (orjson: a DescribeJobs of 100 jobs
    encodes in a fifteenth of the standard library's time)."""
    return orjson.dumps(payload)


def error_body(error: BatchError) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of an AWS rest-json or json-1.1 error response (botocore reads
    the code from `__type` in both)."""
    body = encode_json({"__type": error.code, "message": error.message})
    return error.http_status, {"x-amzn-ErrorType": error.code}, body
