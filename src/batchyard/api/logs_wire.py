"""Wire adapters for the CloudWatch Logs operations Batchyard serves: request members in,
response shapes out. The service functions underneath (service/logs.py) speak domain types.
"""

from __future__ import annotations

from typing import Any

from batchyard.api.resources_wire import snake_kwargs
from batchyard.logs import LogEvent, StreamInfo
from batchyard.service import logs
from batchyard.service.context import ServiceContext


def _output_event(event: LogEvent) -> dict[str, Any]:
    return {
        "timestamp": event.timestamp,
        "message": event.message,
        "ingestionTime": event.ingestion_time,
    }


def get_log_events(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    page = logs.get_log_events(ctx, **snake_kwargs(request))
    return {
        "events": [_output_event(event) for event in page.events],
        "nextForwardToken": page.next_forward_token,
        "nextBackwardToken": page.next_backward_token,
    }


def filter_log_events(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    page = logs.filter_log_events(ctx, **snake_kwargs(request))
    return {
        "events": [
            {
                "logStreamName": found.log_stream_name,
                "timestamp": found.event.timestamp,
                "message": found.event.message,
                "ingestionTime": found.event.ingestion_time,
                "eventId": found.event_id,
            }
            for found in page.events
        ],
        "nextToken": page.next_token,
    }


def _log_stream(ctx: ServiceContext, group: str, info: StreamInfo) -> dict[str, Any]:
    return {
        "logStreamName": info.name,
        "creationTime": info.created_at,
        "firstEventTimestamp": info.first_event_timestamp,
        "lastEventTimestamp": info.last_event_timestamp,
        "lastIngestionTime": info.last_ingestion_time,
        "arn": logs.log_stream_arn(ctx.identity, group, info.name),
        # CloudWatch has reported 0 for streams since 2019; the group carries the real size.
        "storedBytes": 0,
    }


def describe_log_streams(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    page = logs.describe_log_streams(ctx, **snake_kwargs(request))
    return {
        "logStreams": [_log_stream(ctx, page.log_group_name, info) for info in page.streams],
        "nextToken": page.next_token,
    }


def describe_log_groups(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = logs.describe_log_groups(ctx, **snake_kwargs(request))
    # With a name pattern CloudWatch answers only the name, creation time and ARN.
    brief = bool(request.get("logGroupNamePattern"))
    groups = []
    for group in found:
        detail: dict[str, Any] = {
            "logGroupName": group.name,
            "creationTime": group.created_at,
            "arn": logs.log_group_arn(ctx.identity, group.name),
        }
        if not brief:
            detail |= {
                "metricFilterCount": 0,
                "storedBytes": group.stored_bytes,
                "logGroupClass": "STANDARD",
                "logGroupArn": logs.log_group_arn_bare(ctx.identity, group.name),
                "deletionProtectionEnabled": False,
            }
        groups.append(detail)
    return {"logGroups": groups, "nextToken": token}
