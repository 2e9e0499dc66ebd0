"""limits.check_depth against the depth of the documents themselves: brackets inside strings
(escaped quotes and backslashes included) never count, and every nesting past the limit is
refused, whatever the JSON encoder."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchyard.api.limits import MAX_JSON_DEPTH, RequestLimitExceeded, check_depth
from batchyard.domain.errors import InvalidParameterException

# Strings rich in what could fool a scanner: brackets, quotes, backslashes, escapes.
tricky = st.text(alphabet='[]{}"\\/ab\n\tü', max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), tricky
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(tricky, inner, max_size=3)
    ),
    max_leaves=12,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A document wrapped in 0..40 levels of arrays and objects: around the limit."""
    value = draw(documents)
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.booleans()):
            value = [draw(tricky), value]
        else:
            value = {draw(tricky): value, "k": draw(tricky)}
    return value


def refused(body: bytes) -> bool:
    try:
        check_depth(body)
    except RequestLimitExceeded as error:
        return (error.http_status, error.code) == (400, "ClientException")
    return False


@settings(max_examples=400, deadline=None)
@given(nested())
def test_refused_exactly_when_deeper_than_the_limit(document: Any) -> None:
    too_deep = depth(document) > MAX_JSON_DEPTH
    assert refused(orjson.dumps(document)) == too_deep
    assert refused(json.dumps(document).encode()) == too_deep
    assert refused(json.dumps(document, ensure_ascii=False, indent=1).encode()) == too_deep


def test_a_thousand_levels_are_refused_before_any_parser() -> None:
    with pytest.raises(RequestLimitExceeded) as caught:
        check_depth(b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", InvalidParameterException)
    assert caught.value.code == "InvalidParameterException"
    assert str(MAX_JSON_DEPTH) in caught.value.message


def test_brackets_in_strings_do_not_nest() -> None:
    check_depth(json.dumps({"a": "[" * 1000, "b": '\\"' + "{" * 1000}).encode())
