"""Hypothesis strategies for requests to every operation Batchyard serves, generated from
botocore's models (`batch`, and the `logs` operations of api/logs_wire.py).

Owns three kinds of request: valid-shaped inputs (botocore's own validator accepts them) whose
leaves are hostile (boundary and overflowing integers, numbers written as strings, control
characters, trailing newlines, long and non-ASCII strings, ARN-like strings, names of objects
that exist on the server); invalid inputs (a wrong type, a missing required member, an unknown
member, a null, a value nested a thousand deep); and malformed bodies. `RawRequest` is the HTTP
request an input becomes under the operation's protocol (rest-json routing by method and
requestUri for Batch, json-1.1 with X-Amz-Target for Logs), so that invalid inputs can be sent
too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast
from urllib.parse import quote

import botocore.session
from botocore.model import MapShape, OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from batchyard.api.operations import served

LOGS_TARGET_PREFIX = "Logs_20140328."
LOGS_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_DEPTH = 6
"""Structures nested deeper than this get their required members only: the Batch model's
deepest inputs (eksProperties.podProperties.containers[].securityContext...) stay in reach
while a request stays small enough to send thousands of."""
OPTIONAL_MEMBERS_PER_STRUCTURE = 4
MANY_BYTES = 2_000_000

# Worst first: hypothesis draws the first items of a list more often.
HOSTILE_INTEGERS: tuple[int, ...] = (
    2**63, -1, 0, 2**31, 2**63 - 1, -(2**63) - 1, 2**64, 10**100, 10_001, -(2**31) - 1,
    1, 2, 7, 100, 2**31 - 1, -(2**31), 2**32, 2**53, 2**53 + 1, -(2**63), 2**64 + 1, 10**20,
)  # fmt: skip
HOSTILE_FLOATS: tuple[float, ...] = (
    float("nan"), float("inf"), 1.7976931348623157e308, 5e-324, -1.0, 0.0, -0.0, 1.0, 0.5,
    1e-300, 1e300, float("-inf"),
)  # fmt: skip
NUMBER_STRINGS: tuple[str, ...] = (
    "inf", "nan", "1e308", "0.0001", "-1", "0", "9223372036854775808", "1_0", " 1", "\u0663",
    "1e309", "-inf", "Infinity", "NaN", "-1e308", "1e3", "0.5", "-0", "+1", "1 ", "1\n",
    "\t2", "0x10", "\uff11", "\u00b2", "\u00bd", "9223372036854775807", "18446744073709551616",
    "99999999999999999999999999", "-9223372036854775809", "", "1", "2", "64", "1024",
)  # fmt: skip
"""Numbers the model types as strings (resourceRequirements values, ARN revisions, array
indexes), written as a lenient parser (Python's float() and int()) would still take them."""
NUMBERS_AS_STRINGS = frozenset({"value"})
"""Members whose strings are numbers (ResourceRequirement.value): numbers are the hostile
values most worth trying there."""
SUFFIXES: tuple[str, ...] = ("\n", " ", "\x00", "\r\n", "\t", ":1", "/", "*", "\u200b")
PREFIXES: tuple[str, ...] = (" ", "\ufeff", "\n", "arn:aws:batch:us-east-1:000000000000:job-queue/")
ODD_STRINGS: tuple[str, ...] = (
    "", " ", "\n", "\x00", "a\x00b", "\x7f", "\x1b[31m", "\u202eevil", "ß", "İstanbul", "名前",
    "🎉", "\ud800", "e\u0301", "a" * 128, "a" * 129, "a" * 255, "a" * 256, "a" * 257, "a" * 1024,
    "a" * 1025, "x" * 65_536, "%00", "%2F", "../../etc/passwd", "/", "a/b", "*", ":", "::", "#",
    "?", "&", "=", "'", '"', "\\", "{}", "[]", "null", "true", "<x/>", "${HOME}", "Ref::x",
    "Ref::",
    "arn:aws:batch:us-east-1:123456789012:job-queue/x",
    "arn:aws:batch:us-east-1:000000000000:job-definition/x:1",
    "arn:aws:batch:us-east-1:000000000000:compute-environment/x",
    "arn:aws:batch:us-east-1:000000000000:scheduling-policy/x",
    "arn:aws:batch:us-east-1:000000000000:consumable-resource/x",
    "arn:aws:batch:us-east-1:000000000000:job/00000000-0000-0000-0000-000000000000",
    "arn:aws:batch:::", "arn:", "arn:aws:batch:us-east-1:000000000000:job-queue/",
    "x:1", "x:0", "x:-1", "x:1.5", "x:99999999999999999999", "x:9223372036854775808",
    "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000:0",
    "00000000-0000-0000-0000-000000000000:99999999999", "00000000-0000-0000-0000-000000000000#0",
)  # fmt: skip
"""Strings that have broken or could break a service: names that differ from a valid one only
by white space, revisions and indexes out of range, ARNs of the wrong kind, and strings that are
hard to store, log or print."""

WRONG_TYPES: Mapping[str, tuple[Any, ...]] = {
    "string": (0, 1.5, True, [], {}, ["x"], {"a": "b"}),
    "integer": ("1", "inf", 1.5, [], {}, 1e300),
    "long": ("1", "nan", 1.5, [], {}, -1e300),
    "float": ("1.0", True, [], {}),
    "double": ("1.0", True, [], {}),
    "boolean": ("true", 1, 0, [], {}, "false"),
    "timestamp": (True, [], {}, "not a time"),
    "blob": (1, [], {}),
    "list": ("x", {}, 1, True),
    "map": ([], "x", 1, ["a", "b"]),
    "structure": ([], "x", 1, True, [{}]),
}

REFERENCE_KINDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"jobqueue"), "queue"),
    (re.compile(r"computeenvironment"), "environment"),
    (re.compile(r"jobdefinition"), "definition"),
    (re.compile(r"schedulingpolicy|^arns$"), "policy"),
    (re.compile(r"consumableresource"), "resource"),
    (re.compile(r"^(jobs?|jobid|arrayjobid|multinodejobid|jobids)$"), "job"),
    (re.compile(r"resourcearn"), "arn"),
    (re.compile(r"loggroup"), "log group"),
    (re.compile(r"logstream"), "log stream"),
)
"""Members (lower-cased) whose value names an object of a kind: the fuzzer prefers names of
existing objects of that kind there, so requests reach the code past the name lookup."""


@dataclass(frozen=True)
class Operation:
    """One operation Batchyard serves: a Batch (rest-json) or CloudWatch Logs (json-1.1) one."""

    service: str
    model: OperationModel

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def mutating(self) -> bool:
        """Whether a success may change a stored object (everything but reads)."""
        return not self.name.startswith(("Describe", "List", "Get", "Filter"))

    def __repr__(self) -> str:
        return f"{self.service}:{self.name}"


@cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@cache
def served_operations() -> tuple[Operation, ...]:
    """Every operation Batchyard answers other than with 'not supported'."""
    batch = tuple(
        Operation("batch", service_model("batch").operation_model(name))
        for name in sorted(served("batch"))
    )
    logs = tuple(
        Operation("logs", service_model("logs").operation_model(name))
        for name in sorted(served("logs"))
    )
    return batch + logs


@dataclass(frozen=True)
class Vocabulary:
    """Names, ARNs and ids of objects on the server under test, by kind ("queue", "environment",
    "definition", "policy", "resource", "job", "arn", "log group", "log stream")."""

    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def of(self, kind: str | None) -> tuple[str, ...]:
        if kind is None:
            return tuple(name for names in self.names.values() for name in names)
        return self.names.get(kind, ())


PLAUSIBLE_STRING = r"[a-z][a-z0-9_-]{0,11}"
PLAUSIBLE_NUMBERS: tuple[str, ...] = ("1", "2", "4", "64", "128", "1024")
HOSTILE_PERCENT = 35
"""The share of leaves drawn hostile; the rest are plausible."""


def _weighted(plausible: SearchStrategy[Any], hostile: SearchStrategy[Any]) -> SearchStrategy[Any]:
    """`hostile` about HOSTILE_PERCENT of the time, else `plausible` (shrinking toward it)."""
    return st.integers(0, 99).flatmap(
        lambda n: hostile if n >= 100 - HOSTILE_PERCENT else plausible
    )


def _hint_key(hint: str | None) -> tuple[str | None, bool, bool]:
    """What the member a string is for says of it: the kind of object it names, whether it
    is a name (not an ARN or id), and whether it holds a number."""
    if not hint:
        return None, False, False
    return reference_kind(hint), hint.lower().endswith("name"), hint in NUMBERS_AS_STRINGS


def reference_kind(member: str) -> str | None:
    lowered = member.lower()
    for pattern, kind in REFERENCE_KINDS:
        if pattern.search(lowered):
            return kind
    return None


# -- the raw request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Deep:
    """A JSON value nested `depth` levels deep (`[[[...]]]` or `{"a":{"a":...}}`), written
    into a body as text: Python's json module could not encode it."""

    depth: int
    brackets: str = "[]"

    def text(self) -> str:
        if self.brackets == "[]":
            return "[" * self.depth + "]" * self.depth
        return '{"a":' * self.depth + "1" + "}" * self.depth


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request as it goes on the wire (path with its query string)."""

    method: str
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)


def encode_body(value: Any) -> bytes:
    """JSON as botocore writes it (NaN and Infinity as their JavaScript literals, lone
    surrogates escaped), with any `Deep` value written out in place."""
    deep: list[Deep] = []

    def placeholder(item: Any) -> Any:
        if isinstance(item, Deep):
            deep.append(item)
            return f"__deep_{len(deep) - 1}__"
        if isinstance(item, datetime):
            return item.timestamp()
        if isinstance(item, bytes):
            return item.decode("latin-1")
        raise TypeError(f"cannot encode {type(item).__name__}")

    text = json.dumps(value, default=placeholder)
    for index, item in enumerate(deep):
        text = text.replace(f'"__deep_{index}__"', item.text())
    return text.encode()


MAX_URI_VALUE = 16_000
MAX_URL = 60_000
"""Characters of one URI label or query value, and of a path with its query: httpx does not
send a URL longer than 65,536 characters (percent-encoding triples a character)."""


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else encode_body(value).decode()
    return text[:MAX_URI_VALUE]


def raw_request(operation: Operation, params: Any) -> RawRequest:
    """The HTTP request of `params` under the operation's protocol, whatever their shape:
    members located in the URI, query string or headers go there, everything else (unknown
    members too, or the whole input if it is not an object) in the JSON body."""
    if operation.service == "logs":
        return RawRequest(
            "POST",
            "/",
            encode_body(params),
            (("X-Amz-Target", LOGS_TARGET_PREFIX + operation.name),
             ("Content-Type", LOGS_CONTENT_TYPE)),
        )  # fmt: skip
    http = operation.model.http
    path, _, fixed_query = http["requestUri"].partition("?")
    members = operation.model.input_shape.members if operation.model.input_shape else {}
    query = [
        (key, value) for key, _, value in (p.partition("=") for p in fixed_query.split("&") if p)
    ]
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    body: Any = {} if isinstance(params, dict) else params
    labels: dict[str, str] = {}
    for name, value in params.items() if isinstance(params, dict) else ():
        member = members.get(name)
        location = member.serialization.get("location") if member is not None else None
        wire = str(member.serialization.get("name", name)) if member is not None else str(name)
        if location == "uri":
            labels[wire] = _label(value)
        elif location == "querystring":
            values = value if isinstance(value, list) else [value]
            query.extend((wire, _label(item)) for item in values)
        elif location == "header":
            headers.append((wire, _label(value).replace("\n", " ").replace("\r", " ")))
        else:
            body[wire] = value

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        greedy = name.endswith("+")
        value = labels.get(name.rstrip("+"), "")
        return quote(value, safe="/" if greedy else "", errors="surrogatepass")

    filled = re.sub(r"\{([^}]+)\}", fill, path)
    parts: list[str] = []
    for key, value in query:
        part = (
            f"{quote(key, errors='surrogatepass')}={quote(value, safe='', errors='surrogatepass')}"
        )
        if len(filled) + sum(map(len, parts)) + len(part) > MAX_URL:
            break  # the rest would not be sent: httpx refuses a URL that long
        parts.append(part)
    if parts:
        filled += "?" + "&".join(parts)
    return RawRequest(http["method"].upper(), filled, encode_body(body), tuple(headers))


# -- strategies --------------------------------------------------------------------------------

MALFORMED_BODIES: tuple[bytes, ...] = (
    b"{",
    b"}",
    b"[]",
    b"null",
    b"1",
    b'"x"',
    b"true",
    b"\xff\xfe\x00",
    b"\xef\xbb\xbf{}",
    b'{"a":1,"a":2}',
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": 1e999}',
    b'{"a": -1e999}',
    b'{"a": 123456789012345678901234567890}',
    b'{"a": "\\ud800"}',
    b'{"a": "\xc3\x28"}',
    b"{'a': 1}",
    b'{"a": 1,}',
    b"\x00",
    b"{}" * 1000,
    b"[" * 1000 + b"]" * 1000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"a": "' + b"x" * 2_000_000 + b'"}',
)
"""Bodies no JSON object parser should take, or that take it to its limits."""


class Requests:
    """Strategies for the requests to one server: valid-shaped with hostile leaves, invalid,
    and raw HTTP ones of both kinds plus malformed bodies. Leaves prefer the names in the
    vocabulary where a member names an object of that kind."""

    def __init__(
        self,
        vocabulary: Vocabulary | None = None,
        examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        self.vocabulary = vocabulary or Vocabulary()
        self.examples = examples or {}
        for name, inputs in self.examples.items():
            for example in inputs:
                _assert_valid_shaped(name, example)
        """Plausible inputs per operation name, to make hostile variants of: a request built
        from nothing rarely gets past the checks a real one passes (exactly one of
        containerProperties, ecsProperties and eksProperties; one to three environments...)."""
        self._strategies: dict[tuple[Any, ...], SearchStrategy[Any]] = {}

    # valid-shaped ---------------------------------------------------------------------------

    def valid(self, operation: Operation) -> SearchStrategy[dict[str, Any]]:
        """Inputs botocore's validator accepts (types, required members, minimums), with
        hostile leaves; maximums and enums are the server's to enforce and are often broken."""
        shape = operation.model.input_shape
        if shape is None:
            return st.just({})
        built = self._value(operation.service, shape, 0, None)
        fresh = operation.name.startswith(("Create", "Register"))
        examples = [
            self._around(operation.service, shape, example, 0, None, fresh)
            for example in self.examples.get(operation.name, ())
        ]
        return st.one_of(built, *examples, *examples) if examples else built

    def member(self, service: str, structure: str, name: str) -> SearchStrategy[Any]:
        """The values a member of a structure of the model gets in valid-shaped inputs."""
        shape = cast(StructureShape, service_model(service).shape_for(structure))
        return cast(SearchStrategy[Any], self._value(service, shape.members[name], 1, name))

    def _around(
        self, service: str, shape: Shape, value: Any, depth: int, hint: str | None, fresh: bool
    ) -> Any:
        """`value` (valid-shaped) with about HOSTILE_PERCENT of its leaves drawn anew, some of
        its optional members dropped and now and then one added; with `fresh`, its names
        (of the object a Create or Register makes) get a drawn suffix, so they rarely exist."""
        kind = shape.type_name
        if kind == "structure":
            members: Mapping[str, Shape] = cast(StructureShape, shape).members
            required = set(cast(StructureShape, shape).required_members)
            parts = {
                name: self._around(service, members[name], item, depth + 1, name, fresh)
                for name, item in value.items()
            }
            absent = [name for name in members if name not in value]
            if not parts and not absent:
                return st.just({})
            added = {name: self._value(service, members[name], depth + 1, name) for name in absent}

            @st.composite
            def varied(draw: st.DrawFn) -> dict[str, Any]:
                result = {}
                for name, part in parts.items():
                    # Kept nine times in ten, shrinking toward kept.
                    if name in required or draw(st.integers(0, 9)) < 9:
                        result[name] = draw(part)
                if absent and draw(st.integers(0, 3)) == 3:
                    name = draw(st.sampled_from(absent))
                    result[name] = draw(added[name])
                return result

            return varied()
        if kind == "list":
            items = [
                self._around(service, shape.member, item, depth + 1, hint, fresh)  # type: ignore[attr-defined]
                for item in value
            ]
            return st.tuples(*items).map(list)
        if kind == "map":
            return st.fixed_dictionaries(
                {
                    key: self._around(
                        service, cast(MapShape, shape).value, item, depth + 1, None, fresh
                    )
                    for key, item in value.items()
                }
            )
        same: Any = st.just(value)
        if fresh and depth == 1 and _hint_key(hint)[1]:
            same = st.from_regex(r"[a-z0-9]{6}", fullmatch=True).map(lambda tail: f"{value}-{tail}")
        return _weighted(same, self._value(service, shape, depth, hint))

    def _value(self, service: str, shape: Shape, depth: int, hint: str | None) -> Any:
        key = (service, shape.name, min(depth, MAX_DEPTH), *_hint_key(hint))
        found = self._strategies.get(key)
        if found is None:
            found = st.deferred(lambda: self._build(service, shape, depth, hint))
            self._strategies[key] = found
        return found

    def _build(self, service: str, shape: Shape, depth: int, hint: str | None) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(service, shape, depth)
        if kind == "list":
            item = self._value(service, shape.member, depth + 1, hint)  # type: ignore[attr-defined]
            return self._sized(item, shape, depth, lambda items: list(items))
        if kind == "map":
            keys = self._value(service, shape.key, depth + 1, None)  # type: ignore[attr-defined]
            values = self._value(service, shape.value, depth + 1, None)  # type: ignore[attr-defined]
            low = shape.metadata.get("min", 0)
            return st.dictionaries(keys, values, min_size=low, max_size=low + 3)
        if kind == "string":
            return self._string(shape, hint)
        if kind in ("integer", "long"):
            return self._integer(shape)
        if kind in ("float", "double"):
            low = shape.metadata.get("min")
            pool = [x for x in HOSTILE_FLOATS if low is None or not x < low]
            return st.one_of(st.sampled_from(pool), st.floats(min_value=low, allow_nan=False))
        if kind == "boolean":
            return st.booleans()
        if kind == "timestamp":
            return st.one_of(
                st.sampled_from(
                    [datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]
                ),
                st.datetimes(timezones=st.just(UTC)),
            )
        if kind == "blob":
            return st.binary(max_size=64)
        raise NotImplementedError(f"no strategy for {kind} shapes ({shape.name})")

    def _structure(self, service: str, shape: Shape, depth: int) -> Any:
        members: Mapping[str, Shape] = cast(StructureShape, shape).members
        required = [
            name for name in cast(StructureShape, shape).required_members if name in members
        ]
        optional = [name for name in members if name not in required]
        strategies = {
            name: self._value(service, member, depth + 1, name) for name, member in members.items()
        }
        if shape.is_tagged_union:  # type: ignore[attr-defined]
            return st.sampled_from(sorted(members)).flatmap(
                lambda name: strategies[name].map(lambda value: {name: value})
            )
        may_add = optional if depth < MAX_DEPTH else []
        if not required and not may_add:
            return st.just({})

        @st.composite
        def structure(draw: st.DrawFn) -> dict[str, Any]:
            value = {name: draw(strategies[name]) for name in required}
            if may_add:
                chosen = draw(
                    st.lists(
                        st.sampled_from(may_add),
                        unique=True,
                        max_size=min(len(may_add), OPTIONAL_MEMBERS_PER_STRUCTURE),
                    )
                )
                for name in chosen:
                    value[name] = draw(strategies[name])
            return value

        return structure()

    def _sized(
        self, item: Any, shape: Shape, depth: int, build: Callable[[Sequence[Any]], Any]
    ) -> Any:
        low = shape.metadata.get("min", 0)
        high = shape.metadata.get("max")
        few = st.lists(item, min_size=low, max_size=low + 3).map(build)
        # Many copies of one item: cheap to draw, and they reach count limits (DescribeJobs
        # takes 100 ids) past which the server must refuse; a body stays below a few MB.
        counts = sorted(
            {n for n in (high, (high or 0) + 1, 101, 1001) if n is not None and n > low}
        )

        def copies(pair: tuple[Any, int]) -> Any:
            one, count = pair
            size = len(encode_body(one))
            return build([one] * max(low, min(count, MANY_BYTES // size)))

        many = st.tuples(item, st.sampled_from(counts)).map(copies)
        return st.one_of(few, few, few, many) if depth < MAX_DEPTH else few

    def _string(self, shape: Shape, hint: str | None) -> Any:
        # Plausible values first (a failing example shrinks toward them), and about twice as
        # likely as hostile ones: a request with a few hostile leaves among plausible ones gets
        # past the checks of its other members to where the hostile one is used.
        low = shape.metadata.get("min", 0)
        high = shape.metadata.get("max")
        enum: list[str] = shape.metadata.get("enum") or []
        pattern: str | None = shape.metadata.get("pattern")
        kind, naming, numeric = _hint_key(hint)
        # A name member (jobDefinitionName, name) takes names, never ARNs.
        known = [
            name
            for name in self.vocabulary.of(kind)
            if len(name) >= low and not (naming and name.startswith("arn:"))
        ]
        branches: list[Any] = []
        if enum:
            branches.append(st.sampled_from(enum))
        elif kind is not None and known:
            branches.append(st.sampled_from(known))
            if naming:
                branches.append(st.from_regex(PLAUSIBLE_STRING, fullmatch=True))
        else:
            branches.append(st.from_regex(PLAUSIBLE_STRING, fullmatch=True))
            branches.append(st.sampled_from(PLAUSIBLE_NUMBERS))
        plausible = st.one_of(branches).filter(lambda s: len(s) >= low)
        numbers = st.sampled_from([s for s in NUMBER_STRINGS if len(s) >= low])
        with_suffix = st.tuples(plausible, st.sampled_from(SUFFIXES)).map(
            lambda pair: pair[0] + pair[1]
        )
        hostile: list[Any] = [
            numbers,
            # A plausible value made hostile: what a lenient parser would take for it (twice:
            # a name with a trailing newline has been taken for the name).
            with_suffix,
            with_suffix,
            st.tuples(st.sampled_from(PREFIXES), plausible).map(lambda pair: pair[0] + pair[1]),
            st.sampled_from([s for s in ODD_STRINGS if len(s) >= low]),
            st.text(min_size=low, max_size=max(low, min(high or 24, 24))),
        ]
        if numeric:
            hostile = [numbers, numbers, numbers, with_suffix, *hostile[3:]]
        if enum:
            hostile.append(st.sampled_from([v for e in enum for v in (e.lower(), e.title())]))
        everything = [name for name in self.vocabulary.of(None) if len(name) >= low]
        if everything:
            # Any object's name where this member's kind is expected.
            hostile.append(st.sampled_from(everything))
        if high is not None:
            hostile.append(st.sampled_from([high, high + 1]).map(lambda n: "a" * n))
        if pattern is not None:
            hostile.append(
                st.from_regex(pattern, fullmatch=True).filter(
                    lambda s: low <= len(s) <= (high or 10**9)
                )
            )
        return _weighted(plausible, st.one_of(hostile))

    def _integer(self, shape: Shape) -> Any:
        low = shape.metadata.get("min")
        high = shape.metadata.get("max")
        start = 0 if low is None else low
        plausible = st.integers(
            min_value=start, max_value=start + 16 if high is None else min(high, start + 16)
        )
        # botocore takes a boolean for an integer (Python's bool is one); the wire gets true.
        pool = [n for n in (*HOSTILE_INTEGERS, True, False) if low is None or n >= low]
        bounds = [n for n in (low, high, None if high is None else high + 1) if n is not None]
        hostile = [st.sampled_from(pool), st.integers(min_value=low)]
        if bounds:
            hostile.append(st.sampled_from(bounds))
        return _weighted(plausible, st.one_of(hostile))

    # invalid --------------------------------------------------------------------------------

    def invalid(self, operation: Operation) -> SearchStrategy[Any]:
        """Inputs the model forbids: one change to a valid-shaped input (a member of the wrong
        type, a required member missing or null, an unknown member, a value nested deep)."""
        shape = operation.model.input_shape

        @st.composite
        def broken(draw: st.DrawFn) -> Any:
            value = draw(self.valid(operation))
            if shape is None:
                return {"unknownMember": draw(st.sampled_from([1, "x", None, Deep(1000)]))}
            kind = draw(st.sampled_from(CHANGE_KINDS))
            # A whole body of the wrong type is a malformed body; here the change is inside.
            slots = [
                (path, slot)
                for path, slot in _slots(shape, value, ())
                if _changes(kind, slot, path, value)
            ]
            if not slots:
                kind, slots = "unknown member", [((), shape)]
            path, slot_shape = draw(st.sampled_from(slots))
            change = draw(st.sampled_from(_changes(kind, slot_shape, path, value)))
            return _apply(value, path, change)

        return broken()

    # raw ------------------------------------------------------------------------------------

    def raw(self, operation: Operation) -> SearchStrategy[RawRequest]:
        """HTTP requests: valid-shaped and invalid inputs under the operation's protocol, and
        malformed bodies or a wrong method on the operation's route."""
        valid = self.valid(operation).map(lambda params: raw_request(operation, params))
        invalid = self.invalid(operation).map(lambda params: raw_request(operation, params))
        return st.one_of(valid, valid, invalid, invalid, self.malformed(operation))

    def malformed(self, operation: Operation) -> SearchStrategy[RawRequest]:
        def with_body(params: Any, body: bytes) -> RawRequest:
            request = raw_request(operation, params)
            return RawRequest(request.method, request.path, body, request.headers)

        def with_method(params: Any, method: str) -> RawRequest:
            request = raw_request(operation, params)
            return RawRequest(method, request.path, request.body, request.headers)

        valid = self.valid(operation)
        return st.one_of(
            st.builds(with_body, valid, st.sampled_from(MALFORMED_BODIES)),
            st.builds(with_method, valid, st.sampled_from(["GET", "PUT", "PATCH", "DELETE"])),
        )


def _assert_valid_shaped(operation: str, params: Mapping[str, Any]) -> None:
    service = "logs" if operation in served("logs") else "batch"
    shape = service_model(service).operation_model(operation).input_shape
    assert shape is not None, operation
    report = ParamValidator().validate(dict(params), shape)
    assert not report.has_errors(), f"example {operation}: {report.generate_report()}"


# -- changes that make a valid input invalid -----------------------------------------------------

Path = tuple[str | int, ...]
MISSING = object()


def _slots(shape: Shape, value: Any, path: Path) -> Iterator[tuple[Path, Shape]]:
    """Every (path, shape) in a valid-shaped value, the value itself first."""
    yield path, shape
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        for name, item in value.items():
            if name in members:
                yield from _slots(members[name], item, (*path, name))
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _slots(shape.member, item, (*path, index))  # type: ignore[attr-defined]
    elif kind == "map" and isinstance(value, dict):
        for key, item in list(value.items())[:3]:
            yield from _slots(shape.value, item, (*path, key))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Change:
    """Replace the value at a path (`value`), drop a member (`drop`), or add one (`add`)."""

    value: Any = MISSING
    drop: str | None = None
    add: tuple[str, Any] | None = None


CHANGE_KINDS = ("wrong type", "missing", "unknown member", "deep", "null")


def _at(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def _changes(kind: str, shape: Shape, path: Path, value: Any) -> list[Change]:
    """The changes of `kind` possible at `path` (of `shape`) in `value`."""
    required = list(getattr(shape, "required_members", ()))
    if kind == "wrong type":
        return [Change(value=v) for v in WRONG_TYPES[shape.type_name]] if path else []
    if kind == "deep":
        deep = [Deep(depth) for depth in (1000, 900, 1025)] + [Deep(1000, "{}")]
        return [Change(value=v) for v in deep] if path else []
    if shape.type_name != "structure":
        return []
    if kind == "missing":
        present = _at(value, path)
        return [Change(drop=name) for name in required if name in present]
    if kind == "null":
        return [Change(add=(name, None)) for name in required]
    members = shape.members  # type: ignore[attr-defined]
    unknown = ["unknownMember", "", "__proto__", *(n[:1].upper() + n[1:] for n in members)]
    return [Change(add=(name, "x")) for name in unknown[:6]]


def _apply(value: Any, path: Path, change: Change) -> Any:
    if not path:
        if change.value is not MISSING:
            return change.value
        updated = dict(value)
        if change.drop is not None:
            updated.pop(change.drop, None)
        if change.add is not None:
            updated[change.add[0]] = change.add[1]
        return updated
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy = list(value)
        copy[head] = _apply(copy[head], rest, change)  # type: ignore[index]
        return copy
    updated = dict(value)
    updated[head] = _apply(updated[head], rest, change)
    return updated
