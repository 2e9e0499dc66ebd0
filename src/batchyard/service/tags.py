"""ListTagsForResource, TagResource and UntagResource, over every taggable resource: compute
environments, job queues, job definitions, scheduling policies, consumable resources and jobs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import check_tags

_TAGGABLE = re.compile(
    r"arn:aws[a-z-]*:batch:[^:]*:[^:]*:"
    r"(?P<kind>compute-environment|job-queue|job-definition|scheduling-policy|consumable-resource"
    r"|job)/(?P<rest>.+)"
)


def _tag_target(ctx: ServiceContext, resource_arn: str) -> tuple[str, Any]:
    match = _TAGGABLE.fullmatch(resource_arn)
    if match is None:
        raise ClientException(f"{resource_arn} is not the ARN of a taggable AWS Batch resource.")
    kind, rest = match["kind"], match["rest"]
    found: Any = None
    if kind == "compute-environment":
        found = ctx.store.get_compute_environment(rest)
    elif kind == "job-queue":
        found = ctx.store.get_job_queue(rest)
    elif kind == "scheduling-policy":
        found = ctx.store.get_scheduling_policy(rest)
    elif kind == "consumable-resource":
        found = ctx.store.get_consumable_resource(rest)
    elif kind == "job-definition":
        name, revision = references.split_job_definition(rest)
        if revision is not None:
            found = ctx.store.get_job_definition(name, revision)
    elif kind == "job":
        if ":" in rest:
            raise ClientException("Tagging array job children is not supported.")
        found = ctx.store.get_job(rest)
    if found is None:
        raise ClientException(f"Resource {resource_arn} not found.")
    return kind, found


def _set_tags(ctx: ServiceContext, kind: str, found: Any, tags: dict[str, str]) -> None:
    tags = check_tags(tags)
    if kind == "compute-environment":
        ctx.store.put_compute_environment(replace(found, tags=tags), create=False)
    elif kind == "job-queue":
        ctx.store.put_job_queue(replace(found, tags=tags), create=False)
    elif kind == "scheduling-policy":
        ctx.store.put_scheduling_policy(replace(found, tags=tags), create=False)
    elif kind == "consumable-resource":
        # Through the store's read-modify-write: a put could undo a job's take of it.
        ctx.store.mutate_consumable_resource(
            found.name, lambda current: replace(current, tags=tags)
        )
    elif kind == "job-definition":
        ctx.store.put_job_definition(replace(found, tags=tags))
    else:
        ctx.store.mutate_job(found.job_id, lambda job: replace(job, tags=tags))


def list_tags_for_resource(ctx: ServiceContext, *, resource_arn: str) -> dict[str, str]:
    _, found = _tag_target(ctx, resource_arn)
    return dict(found.tags)


def tag_resource(ctx: ServiceContext, *, resource_arn: str, tags: Mapping[str, str]) -> None:
    kind, found = _tag_target(ctx, resource_arn)
    _set_tags(ctx, kind, found, {**found.tags, **tags})


def untag_resource(ctx: ServiceContext, *, resource_arn: str, tag_keys: Sequence[str]) -> None:
    kind, found = _tag_target(ctx, resource_arn)
    _set_tags(ctx, kind, found, {k: v for k, v in found.tags.items() if k not in set(tag_keys)})
