"""maxResults/nextToken pagination: opaque, stable nextToken values and the maxResults bounds."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from batchyard.domain.errors import ClientException
from batchyard.domain.numerals import INT64_MAX, INT64_MIN

T = TypeVar("T")


def encode_token(position: Any) -> str:
    raw = json.dumps({"p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None) -> Any:
    """The position a token stands for; None for no token. Bad tokens are a ClientException."""
    if token is None or token == "":
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))["p"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientException(f"Invalid nextToken: {token!r}") from exc
    # A forged position past 64 bits would reach the store's queries.
    if isinstance(position, int) and not INT64_MIN <= position <= INT64_MAX:
        raise ClientException(f"Invalid nextToken: {token!r}")
    return position


def page(
    items: Sequence[T], max_results: int | None, next_token: str | None, default_limit: int = 100
) -> tuple[list[T], str | None]:
    """Slice an ordered, already-filtered sequence by an offset token."""
    start = decode_token(next_token) or 0
    if not isinstance(start, int) or start < 0:
        raise ClientException(f"Invalid nextToken: {next_token!r}")
    limit = max_results if max_results is not None else default_limit
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return chunk, (encode_token(start + limit) if more else None)


def check_max_results(max_results: int | None, ceiling: int) -> None:
    """maxResults, when given, is 1 to the operation's ceiling."""
    if max_results is not None and not 1 <= max_results <= ceiling:
        raise ClientException(f"maxResults must be between 1 and {ceiling}; got {max_results}.")
