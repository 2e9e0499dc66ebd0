"""CloudWatch Logs reads over the LogStore, one function per operation.

Owns the CloudWatch semantics: group and stream lookup, time windows, filter patterns, paging
tokens. Returns domain objects; knows nothing about HTTP or wire shapes.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from batchyard.domain.errors import InvalidParameterException, ResourceNotFoundException
from batchyard.domain.model import Identity
from batchyard.domain.numerals import INT64_MAX
from batchyard.logs import EVENT_OVERHEAD_BYTES, LogEvent, LogStore, StreamInfo
from batchyard.service.context import ServiceContext

MAX_EVENTS = 10_000
MAX_RESPONSE_BYTES = 1_048_576
"""A page of events holds at most 10,000 events and 1 MB (message bytes + 26 per event)."""
DEFAULT_DESCRIBE_LIMIT = 50

_READ_CHUNK = 1000
_TOKEN_DIGITS = 56  # CloudWatch's event tokens: "f/" or "b/" and 56 digits
_EVENT_TOKEN = re.compile(r"([fb])/([0-9]{1,56})")
_GROUP_NOT_FOUND = "The specified log group does not exist."
_STREAM_NOT_FOUND = "The specified log stream does not exist."
_INVALID_TOKEN = "The specified nextToken is invalid."


# -- names and ARNs ----------------------------------------------------------------------


def log_group_arn(identity: Identity, group: str) -> str:
    """The group's `arn` member (with the `:*` suffix CloudWatch gives it)."""
    return f"arn:aws:logs:{identity.region}:{identity.account_id}:log-group:{group}:*"


def log_group_arn_bare(identity: Identity, group: str) -> str:
    """The group's `logGroupArn` member (no suffix), the form IAM and tagging use."""
    return f"arn:aws:logs:{identity.region}:{identity.account_id}:log-group:{group}"


def log_stream_arn(identity: Identity, group: str, stream: str) -> str:
    return f"{log_group_arn_bare(identity, group)}:log-stream:{stream}"


def _group_from_identifier(ctx: ServiceContext, identifier: str) -> str:
    """A logGroupIdentifier is a name or an ARN (with or without `:*`)."""
    if not identifier.startswith("arn:"):
        return identifier
    parts = identifier.split(":")
    if len(parts) < 7 or parts[2] != "logs" or parts[5] != "log-group":
        raise InvalidParameterException(f"Invalid log group identifier: {identifier}")
    if (parts[3], parts[4]) != (ctx.identity.region, ctx.identity.account_id):
        raise ResourceNotFoundException(_GROUP_NOT_FOUND)
    return parts[6]


def _log_store(ctx: ServiceContext) -> LogStore:
    if ctx.logs is None:
        raise ResourceNotFoundException(_GROUP_NOT_FOUND)
    return ctx.logs


def _group_names(ctx: ServiceContext) -> list[str]:
    # The job group exists from the start, as it does in an account that has run Batch jobs.
    known = set(ctx.logs.list_groups()) if ctx.logs is not None else set()
    return sorted(known | {ctx.log_group})


def _resolve_group(
    ctx: ServiceContext, log_group_name: str | None, log_group_identifier: str | None
) -> tuple[LogStore, str]:
    if log_group_name is not None and log_group_identifier is not None:
        raise InvalidParameterException(
            "LogGroupName and LogGroupIdentifier are mutually exclusive: specify only one."
        )
    if log_group_name is None and log_group_identifier is None:
        raise InvalidParameterException("Either logGroupName or logGroupIdentifier is required.")
    logs = _log_store(ctx)
    group = log_group_name or _group_from_identifier(ctx, str(log_group_identifier))
    if group != ctx.log_group and group not in logs.list_groups():
        raise ResourceNotFoundException(_GROUP_NOT_FOUND)
    return logs, group


def _events(
    logs: LogStore, group: str, stream: str, start: int = 0, step: int = _READ_CHUNK
) -> Iterator[tuple[int, LogEvent]]:
    """(index, event) from start to the end of the stream, read step events at a time."""
    position = start
    while True:
        chunk = logs.read(group, stream, position, step)
        if not chunk:
            return
        for offset, event in enumerate(chunk):
            yield position + offset, event
        position += len(chunk)


def _event_bytes(event: LogEvent) -> int:
    return len(event.message.encode()) + EVENT_OVERHEAD_BYTES


def _check_limit(limit: int | None, maximum: int, default: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidParameterException(f"limit must be between 1 and {maximum}, got {limit}.")
    return limit


def _check_window(start_time: int | None, end_time: int | None) -> None:
    if start_time is not None and end_time is not None and end_time < start_time:
        raise InvalidParameterException("endTime must not be earlier than startTime.")


# -- GetLogEvents ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[LogEvent]
    next_forward_token: str
    next_backward_token: str


def _event_token(direction: str, position: int) -> str:
    return f"{direction}/{position:0{_TOKEN_DIGITS}d}"


def _parse_event_token(token: str) -> tuple[str, int]:
    match = _EVENT_TOKEN.fullmatch(token)
    if match is None or int(match.group(2)) > INT64_MAX:
        raise InvalidParameterException(_INVALID_TOKEN)
    return match.group(1), int(match.group(2))


def get_log_events(
    ctx: ServiceContext,
    *,
    log_stream_name: str,
    log_group_name: str | None = None,
    log_group_identifier: str | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    next_token: str | None = None,
    limit: int | None = None,
    start_from_head: bool | None = None,
    unmask: bool | None = None,
) -> EventsPage:
    """One page of a stream's events in time window [start_time, end_time).

    Tokens hold an event index: "f/<n>" reads the events from index n on, "b/<n>" the events
    before index n. A page of events [i, j] answers "f/<j+1>" and "b/<i>"; an empty page
    answers the position it started from, so the token passed in comes back unchanged at the
    end of the stream (how clients know they are done).
    """
    logs, group = _resolve_group(ctx, log_group_name, log_group_identifier)
    if logs.stream_info(group, log_stream_name) is None:
        raise ResourceNotFoundException(_STREAM_NOT_FOUND)
    wanted = _check_limit(limit, MAX_EVENTS, MAX_EVENTS)
    _check_window(start_time, end_time)

    def in_window(event: LogEvent) -> bool:
        if start_time is not None and event.timestamp < start_time:
            return False
        return end_time is None or event.timestamp < end_time

    if next_token is not None:
        direction, position = _parse_event_token(next_token)
    elif start_from_head:
        direction, position = "f", 0
    else:
        direction, position = "b", logs.count(group, log_stream_name)

    # Without a time window every event read is returned: read just what the page needs.
    step = wanted if start_time is None and end_time is None else _READ_CHUNK
    picked: list[tuple[int, LogEvent]] = []
    size = 0
    if direction == "f":
        for index, event in _events(logs, group, log_stream_name, position, step):
            if not in_window(event):
                continue
            size += _event_bytes(event)
            if picked and size > MAX_RESPONSE_BYTES:
                break
            picked.append((index, event))
            if len(picked) == wanted:
                break
    else:
        position = min(position, logs.count(group, log_stream_name))
        end = position
        while end > 0 and len(picked) < wanted and size <= MAX_RESPONSE_BYTES:
            begin = max(0, end - step)
            chunk = logs.read(group, log_stream_name, begin, end - begin)
            for offset in range(len(chunk) - 1, -1, -1):
                event = chunk[offset]
                if not in_window(event):
                    continue
                size += _event_bytes(event)
                if picked and size > MAX_RESPONSE_BYTES:
                    break
                picked.append((begin + offset, event))
                if len(picked) == wanted:
                    break
            end = begin
        picked.reverse()

    first, after = (picked[0][0], picked[-1][0] + 1) if picked else (position, position)
    return EventsPage(
        events=[event for _, event in picked],
        next_forward_token=_event_token("f", after),
        next_backward_token=_event_token("b", first),
    )


# -- FilterLogEvents ---------------------------------------------------------------------

_PATTERN_TERM = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


@dataclass(frozen=True, slots=True)
class FilterPattern:
    """CloudWatch's unstructured-text filter patterns: every plain term must appear, no `-term`
    may appear, and at least one `?term` must appear when there are any. Terms are
    case-sensitive substrings; "double quotes" make a phrase one term."""

    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def matches(self, message: str) -> bool:
        return (
            all(term in message for term in self.required)
            and not any(term in message for term in self.excluded)
            and (not self.any_of or any(term in message for term in self.any_of))
        )


def parse_filter_pattern(pattern: str | None) -> FilterPattern:
    text = (pattern or "").strip()
    if text.startswith(("{", "[")) or (text.startswith("%") and text.endswith("%")):
        raise InvalidParameterException(
            "Invalid filter pattern: Batchyard supports terms and quoted phrases (with ? and - "
            "prefixes); JSON, space-delimited and regular expression patterns are not supported."
        )
    required: list[str] = []
    excluded: list[str] = []
    any_of: list[str] = []
    for match in _PATTERN_TERM.finditer(text):
        prefix, quoted, bare = match.groups()
        term = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        {"": required, "-": excluded, "?": any_of}[prefix].append(term)
    return FilterPattern(tuple(required), tuple(excluded), tuple(any_of))


@dataclass(frozen=True, slots=True)
class FilteredEvent:
    log_stream_name: str
    index: int  # position in its stream
    event: LogEvent

    @property
    def event_id(self) -> str:
        """56 digits, unique in the group and stable across calls: time, stream, index."""
        stream = int.from_bytes(hashlib.sha256(self.log_stream_name.encode()).digest()[:8])
        return f"{self.event.timestamp:016d}{stream:020d}{self.index:020d}"


@dataclass(frozen=True, slots=True)
class FilteredPage:
    events: list[FilteredEvent]
    next_token: str | None


def _encode_token(payload: Any) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
    except ValueError as exc:
        raise InvalidParameterException(_INVALID_TOKEN) from exc


_SortKey = tuple[int, str, int]  # (timestamp, stream, index): the interleaved order of events


def _token_int(value: object) -> int:
    """An integer a token holds: JSON numbers we wrote, not text or floats a forger chose."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _filter_position(token: str) -> tuple[bool, _SortKey]:
    """(from head, the key of the last event returned) of a FilterLogEvents token."""
    decoded = _decode_token(token)
    try:
        head, (timestamp, stream, index) = decoded["h"], decoded["k"]
        if isinstance(head, bool) and isinstance(stream, str):
            return head, (_token_int(timestamp), stream, _token_int(index))
    except (KeyError, TypeError, ValueError):
        pass
    raise InvalidParameterException(_INVALID_TOKEN)


def filter_log_events(
    ctx: ServiceContext,
    *,
    log_group_name: str | None = None,
    log_group_identifier: str | None = None,
    log_stream_names: Sequence[str] | None = None,
    log_stream_name_prefix: str | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    filter_pattern: str | None = None,
    next_token: str | None = None,
    limit: int | None = None,
    start_from_head: bool | None = None,
    interleaved: bool | None = None,
    unmask: bool | None = None,
) -> FilteredPage:
    """Matching events of the group's streams interleaved by time (oldest first unless
    start_from_head is false), in window [start_time, end_time] as CloudWatch documents it.

    Every call scans the selected streams; the token is the last event returned, so a page
    never repeats or skips events while streams grow.
    """
    logs, group = _resolve_group(ctx, log_group_name, log_group_identifier)
    if log_stream_names is not None and log_stream_name_prefix is not None:
        raise InvalidParameterException(
            "logStreamNames and logStreamNamePrefix are mutually exclusive: specify only one."
        )
    wanted = _check_limit(limit, MAX_EVENTS, MAX_EVENTS)
    _check_window(start_time, end_time)
    pattern = parse_filter_pattern(filter_pattern)
    if next_token is not None:
        head, after = _filter_position(next_token)
    else:
        head, after = start_from_head is not False, None
    if log_stream_names is not None:
        streams = list(dict.fromkeys(log_stream_names))  # absent streams simply match nothing
    else:
        streams = [info.name for info in logs.list_streams(group, log_stream_name_prefix)]

    def candidates() -> Iterator[tuple[_SortKey, FilteredEvent]]:
        for stream in streams:
            for index, event in _events(logs, group, stream):
                if start_time is not None and event.timestamp < start_time:
                    continue
                if end_time is not None and event.timestamp > end_time:
                    continue
                key = (event.timestamp, stream, index)
                if after is not None and (key <= after if head else key >= after):
                    continue
                if pattern.matches(event.message):
                    yield key, FilteredEvent(stream, index, event)

    pick = heapq.nsmallest if head else heapq.nlargest
    found = pick(wanted + 1, candidates(), key=lambda item: item[0])
    page: list[tuple[_SortKey, FilteredEvent]] = []
    size = 0
    for item in found[:wanted]:
        size += _event_bytes(item[1].event)
        if page and size > MAX_RESPONSE_BYTES:
            break
        page.append(item)
    more = len(page) < len(found)
    token = _encode_token({"h": head, "k": list(page[-1][0])}) if more else None
    return FilteredPage([event for _, event in page], token)


# -- DescribeLogStreams / DescribeLogGroups -----------------------------------------------


def _stream_order_key(info: StreamInfo, order_by: str) -> tuple[int, str]:
    if order_by == "LastEventTime":
        # A stream with no event yet ranks by its creation, so new streams show as recent.
        last = info.last_event_timestamp
        return (last if last is not None else info.created_at, info.name)
    return (0, info.name)


@dataclass(frozen=True, slots=True)
class StreamsPage:
    log_group_name: str
    streams: list[StreamInfo]
    next_token: str | None


def describe_log_streams(
    ctx: ServiceContext,
    *,
    log_group_name: str | None = None,
    log_group_identifier: str | None = None,
    log_stream_name_prefix: str | None = None,
    order_by: str | None = None,
    descending: bool | None = None,
    next_token: str | None = None,
    limit: int | None = None,
) -> StreamsPage:
    logs, group = _resolve_group(ctx, log_group_name, log_group_identifier)
    order = order_by or "LogStreamName"
    if order == "LastEventTime" and log_stream_name_prefix is not None:
        raise InvalidParameterException("Cannot order by LastEventTime with a logStreamNamePrefix.")
    wanted = _check_limit(limit, DEFAULT_DESCRIBE_LIMIT, DEFAULT_DESCRIBE_LIMIT)
    down = bool(descending)
    after: tuple[int, str] | None = None
    if next_token is not None:
        decoded = _decode_token(next_token)
        try:
            if (decoded["o"], decoded["d"]) == (order, down):
                after = (_token_int(decoded["k"][0]), str(decoded["k"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            pass
        if after is None:
            raise InvalidParameterException(_INVALID_TOKEN)
    keyed = sorted(
        (
            (_stream_order_key(info, order), info)
            for info in logs.list_streams(group, log_stream_name_prefix)
        ),
        key=lambda item: item[0],
        reverse=down,
    )
    if after is not None:
        keyed = [item for item in keyed if (item[0] < after if down else item[0] > after)]
    page = keyed[:wanted]
    token = None
    if len(keyed) > wanted:
        token = _encode_token({"o": order, "d": down, "k": list(page[-1][0])})
    return StreamsPage(group, [info for _, info in page], token)


@dataclass(frozen=True, slots=True)
class LogGroupInfo:
    name: str
    created_at: int | None  # its first stream's creation; None before it has any
    stored_bytes: int


def describe_log_groups(
    ctx: ServiceContext,
    *,
    account_identifiers: Sequence[str] | None = None,
    log_group_name_prefix: str | None = None,
    log_group_name_pattern: str | None = None,
    next_token: str | None = None,
    limit: int | None = None,
    include_linked_accounts: bool | None = None,
    log_group_class: str | None = None,
    log_group_identifiers: Sequence[str] | None = None,
) -> tuple[list[LogGroupInfo], str | None]:
    """Groups sorted by name. Every group is STANDARD and of this account."""
    if log_group_name_prefix is not None and log_group_name_pattern is not None:
        raise InvalidParameterException(
            "logGroupNamePrefix and logGroupNamePattern are mutually exclusive: specify only one."
        )
    if log_group_identifiers is not None and (
        log_group_name_prefix is not None or log_group_name_pattern is not None
    ):
        raise InvalidParameterException(
            "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern."
        )
    wanted = _check_limit(limit, DEFAULT_DESCRIBE_LIMIT, DEFAULT_DESCRIBE_LIMIT)
    names = _group_names(ctx)
    if log_group_name_prefix is not None:
        names = [n for n in names if n.startswith(log_group_name_prefix)]
    if log_group_name_pattern:
        names = [n for n in names if log_group_name_pattern in n]
    if log_group_identifiers is not None:
        wanted_names: set[str] = set()
        for identifier in log_group_identifiers:
            try:
                wanted_names.add(_group_from_identifier(ctx, identifier))
            except ResourceNotFoundException:
                continue  # another account's group: not here
        names = [n for n in names if n in wanted_names]
    if log_group_class not in (None, "STANDARD"):
        names = []
    if next_token is not None:
        last = _decode_token(next_token)
        if not isinstance(last, str):
            raise InvalidParameterException(_INVALID_TOKEN)
        names = [n for n in names if n > last]
    page = names[:wanted]
    token = _encode_token(page[-1]) if len(names) > wanted else None
    return [_group_info(ctx, name) for name in page], token


def _group_info(ctx: ServiceContext, name: str) -> LogGroupInfo:
    streams = ctx.logs.list_streams(name) if ctx.logs is not None else []
    return LogGroupInfo(
        name=name,
        created_at=min((s.created_at for s in streams), default=None),
        stored_bytes=sum(s.stored_bytes for s in streams),
    )
