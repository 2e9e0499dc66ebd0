"""CreateSchedulingPolicy, UpdateSchedulingPolicy, DeleteSchedulingPolicy,
DescribeSchedulingPolicies and ListSchedulingPolicies, and the fair-share policy checks
(docs/aws-behaviour.md; docs/scheduling.md for what the planner does with a policy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from batchyard.domain.errors import ClientException
from batchyard.domain.lifecycle import glob_matches
from batchyard.domain.model import Document, SchedulingPolicy
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import check_tags
from batchyard.service.naming import check_name
from batchyard.service.pagination import check_max_results, page
from batchyard.store.base import ConflictError

_SHARE_IDENTIFIER = re.compile(r"[A-Za-z0-9]{1,255}\*?")


def _check_fairshare_policy(policy: Document | None) -> None:
    if policy is None:
        return
    decay = policy.get("shareDecaySeconds")
    if decay is not None and not 0 <= decay <= 604800:
        raise ClientException(f"shareDecaySeconds must be between 0 and 604800; got {decay}.")
    reservation = policy.get("computeReservation")
    if reservation is not None and not 0 <= reservation <= 99:
        raise ClientException(f"computeReservation must be between 0 and 99; got {reservation}.")
    shares = policy.get("shareDistribution") or []
    if len(shares) > 500:
        raise ClientException("shareDistribution can have at most 500 entries.")
    identifiers: list[str] = []
    for share in shares:
        identifier = share["shareIdentifier"]
        if not _SHARE_IDENTIFIER.fullmatch(identifier):
            raise ClientException(
                f"shareIdentifier {identifier!r} is invalid: up to 255 letters and numbers, "
                "optionally ending with *."
            )
        weight = share.get("weightFactor")
        if weight is not None and not 0.0001 <= weight <= 999.9999:
            raise ClientException(
                f"weightFactor must be between 0.0001 and 999.9999; got {weight}."
            )
        identifiers.append(identifier)
    for i, first in enumerate(identifiers):
        for second in identifiers[i + 1 :]:
            if _shares_overlap(first, second):
                raise ClientException(f"shareDistribution entries {first} and {second} overlap.")


def _shares_overlap(first: str, second: str) -> bool:
    """Whether some share identifier would match both entries (a trailing `*` is a prefix)."""
    a, b = first.rstrip("*"), second.rstrip("*")
    return first == second or glob_matches(first, b) or glob_matches(second, a)


def create_scheduling_policy(
    ctx: ServiceContext,
    *,
    name: str,
    fairshare_policy: Document | None = None,
    quota_share_policy: Document | None = None,
    tags: Mapping[str, str] | None = None,
) -> SchedulingPolicy:
    check_name(name, "Scheduling policy")
    if fairshare_policy is not None and quota_share_policy is not None:
        raise ClientException("Specify fairsharePolicy or quotaSharePolicy, not both.")
    _check_fairshare_policy(fairshare_policy)
    policy = SchedulingPolicy(
        name=name,
        arn=ctx.identity.arn("scheduling-policy", name),
        fairshare_policy=fairshare_policy if quota_share_policy is None else None,
        quota_share_policy=quota_share_policy,
        tags=check_tags(tags),
        created_at=ctx.clock.now_ms(),
    )
    if policy.fairshare_policy is None and policy.quota_share_policy is None:
        policy = replace(policy, fairshare_policy={})
    try:
        ctx.store.put_scheduling_policy(policy, create=True)
    except ConflictError as exc:
        raise ClientException(f"Object already exists: scheduling policy {name}") from exc
    return policy


def update_scheduling_policy(
    ctx: ServiceContext,
    *,
    arn: str,
    fairshare_policy: Document | None = None,
    quota_share_policy: Document | None = None,
) -> None:
    policy = references.scheduling_policy(ctx, arn)
    if quota_share_policy is not None and policy.fairshare_policy is not None:
        raise ClientException("A fair-share policy cannot become a quota-share policy.")
    if fairshare_policy is not None and policy.quota_share_policy is not None:
        raise ClientException("A quota-share policy cannot become a fair-share policy.")
    _check_fairshare_policy(fairshare_policy)
    ctx.store.put_scheduling_policy(
        replace(
            policy,
            fairshare_policy=fairshare_policy
            if fairshare_policy is not None
            else policy.fairshare_policy,
            quota_share_policy=quota_share_policy
            if quota_share_policy is not None
            else policy.quota_share_policy,
        ),
        create=False,
    )


def delete_scheduling_policy(ctx: ServiceContext, *, arn: str) -> None:
    policy = references.scheduling_policy(ctx, arn)
    for queue in ctx.store.list_job_queues():
        if queue.scheduling_policy_arn == policy.arn:
            raise ClientException(
                f"Cannot delete scheduling policy {policy.name}: job queue {queue.name} uses it."
            )
    ctx.store.delete_scheduling_policy(policy.name)


def describe_scheduling_policies(
    ctx: ServiceContext, *, arns: Sequence[str]
) -> list[SchedulingPolicy]:
    if len(arns) > 100:
        raise ClientException("At most 100 scheduling policies can be described at once.")
    found = []
    for arn in arns:
        policy = ctx.store.get_scheduling_policy(
            references.name_from_reference(arn, "scheduling-policy")
        )
        if policy is not None:
            found.append(policy)
    return found


def list_scheduling_policies(
    ctx: ServiceContext, *, max_results: int | None = None, next_token: str | None = None
) -> tuple[list[SchedulingPolicy], str | None]:
    check_max_results(max_results, 1000)
    return page(ctx.store.list_scheduling_policies(), max_results, next_token)
