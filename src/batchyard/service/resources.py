"""Compute environments, job queues, job definitions, scheduling policies, consumable resources
and tags.

One function per API operation, taking snake_case arguments and returning domain objects.
Validation follows AWS Batch (docs/aws-behaviour.md); nothing here knows HTTP or runtimes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import (
    ConsumableRequirement,
    ConsumableResource,
    Document,
    JobDefinition,
    SchedulingPolicy,
)
from batchyard.domain.numerals import INT64_MAX
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import (
    check_environment,
    check_retry_strategy,
    check_tags,
    check_timeout,
    node_range,
)
from batchyard.service.naming import check_name
from batchyard.service.pagination import check_max_results, decode_token, encode_token, page
from batchyard.service.resource_requirements import (
    EC2,
    FARGATE,
    check_eks_pod,
    check_platform,
    combined,
    container_requested,
    platform_of,
    requested,
)
from batchyard.store.base import ConflictError

MAX_JOB_DEFINITION_BYTES = 24 * 1024
MAX_CONSUMABLE_RESOURCES = 50_000
MAX_CONSUMABLE_RESOURCES_PER_JOB = 5
CONSUMABLE_RESOURCE_TYPES = ("REPLENISHABLE", "NON_REPLENISHABLE")
CONSUMABLE_RESOURCE_OPERATIONS = ("SET", "ADD", "REMOVE")
_SHARE_IDENTIFIER = re.compile(r"[A-Za-z0-9]{1,255}\*?")
_USER = re.compile(r"[a-z0-9_][a-z0-9_-]{0,30}")


# -- job definitions ---------------------------------------------------------------------


def _check_container_properties(props: Document, platform: str, where: str) -> None:
    if not props.get("image"):
        raise ClientException(f"{where}.image is required.")
    check_environment(props.get("environment"), where)
    kinds = {r.get("type") for r in props.get("resourceRequirements") or ()}
    if "VCPU" in kinds and props.get("vcpus") is not None:
        raise ClientException("Specify vCPUs in resourceRequirements or vcpus, not both.")
    if "MEMORY" in kinds and props.get("memory") is not None:
        raise ClientException("Specify memory in resourceRequirements or memory, not both.")
    container_requested(props, platform, where)
    command = props.get("command")
    if command is not None and any(part == "" for part in command):
        raise ClientException(f"{where}.command must not contain empty strings.")
    user = props.get("user")
    if user is not None and not _USER.fullmatch(user):
        raise ClientException(f"User '{user}' does not match regex")


def _check_node_properties(props: Document) -> None:
    num_nodes = props["numNodes"]
    main = props["mainNode"]
    if not 1 <= num_nodes <= 1000:
        raise ClientException("nodeProperties.numNodes must be between 1 and 1000.")
    if not 0 <= main < num_nodes:
        raise ClientException("nodeProperties.mainNode must be less than numNodes.")
    ranges = props["nodeRangeProperties"]
    if not 1 <= len(ranges) <= 5:
        raise ClientException("nodeProperties.nodeRangeProperties must have 1 to 5 entries.")
    covered: set[int] = set()
    for position, entry in enumerate(ranges):
        start, end = node_range(entry["targetNodes"], num_nodes)
        covered.update(range(start, end + 1))
        if entry.get("container") is not None:
            # Multi-node parallel jobs run on EC2 only (Fargate was refused above).
            _check_container_properties(
                entry["container"], EC2, f"nodeRangeProperties[{position}].container"
            )
    if len(covered) != num_nodes:
        raise ClientException("nodeRangeProperties must cover every node from 0 to numNodes-1.")


def _check_ecs_properties(props: Document, platform: str) -> None:
    tasks = props["taskProperties"]
    if len(tasks) != 1:
        raise ClientException("ecsProperties.taskProperties must have exactly one task.")
    containers = tasks[0]["containers"]
    if not 1 <= len(containers) <= 10:
        raise ClientException("A task must have between 1 and 10 containers.")
    if not any(c.get("essential", True) for c in containers):
        raise ClientException("At least one container of a task must be essential.")
    needs = []
    for container in containers:
        where = f"container {container.get('name')}"
        check_environment(container.get("environment"), where)
        needs.append(requested(container, where))
    # A task is sized by what its containers need together (Fargate's pairs apply to the sum).
    check_platform(combined(needs), platform, "ecsProperties.taskProperties")


def register_job_definition(
    ctx: ServiceContext,
    *,
    job_definition_name: str,
    type: str,
    parameters: Mapping[str, str] | None = None,
    scheduling_priority: int | None = None,
    container_properties: Document | None = None,
    node_properties: Document | None = None,
    retry_strategy: Document | None = None,
    propagate_tags: bool | None = None,
    timeout: Document | None = None,
    tags: Mapping[str, str] | None = None,
    platform_capabilities: Sequence[str] | None = None,
    eks_properties: Document | None = None,
    ecs_properties: Document | None = None,
    consumable_resource_properties: Document | None = None,
) -> JobDefinition:
    check_name(job_definition_name, "Job definition")
    body_size = len(
        json.dumps(
            [container_properties, node_properties, ecs_properties, eks_properties, parameters]
        )
    )
    if body_size > MAX_JOB_DEFINITION_BYTES:
        raise ClientException(
            f"Job definition is {body_size} bytes; the maximum is {MAX_JOB_DEFINITION_BYTES}."
        )
    given = [
        name
        for name, value in (
            ("containerProperties", container_properties),
            ("ecsProperties", ecs_properties),
            ("eksProperties", eks_properties),
            ("nodeProperties", node_properties),
        )
        if value is not None
    ]
    if type == "container":
        if len(given) != 1 or given[0] == "nodeProperties":
            raise ClientException(
                "A container job definition needs exactly one of containerProperties, "
                "ecsProperties or eksProperties."
            )
    elif type == "multinode":
        if given != ["nodeProperties"]:
            raise ClientException("A multinode job definition needs nodeProperties only.")
        if FARGATE in (platform_capabilities or ()):
            raise ClientException("Multi-node parallel jobs are not supported on Fargate.")
    else:
        raise ClientException(f"Job definition type must be container or multinode; got {type!r}.")
    platform = platform_of(platform_capabilities or ())
    if container_properties is not None:
        _check_container_properties(container_properties, platform, "containerProperties")
    if node_properties is not None:
        _check_node_properties(node_properties)
    if ecs_properties is not None:
        _check_ecs_properties(ecs_properties, platform)
    if eks_properties is not None:
        check_eks_pod(eks_properties.get("podProperties"), "eksProperties.podProperties")
    consumable_requirements(ctx, consumable_resource_properties, "consumableResourceProperties")
    for position, ranged in enumerate((node_properties or {}).get("nodeRangeProperties") or ()):
        consumable_requirements(
            ctx,
            ranged.get("consumableResourceProperties"),
            f"nodeRangeProperties[{position}].consumableResourceProperties",
        )
    if eks_properties is not None and propagate_tags:
        raise ClientException("propagateTags is not applicable for EKS job definitions.")
    if scheduling_priority is not None and not 0 <= scheduling_priority <= 9999:
        raise ClientException(
            f"schedulingPriority must be between 0 and 9999; got {scheduling_priority}."
        )
    strategy = check_retry_strategy(retry_strategy)
    check_timeout(timeout)
    all_tags = check_tags(tags)
    now = ctx.clock.now_ms()
    orchestration = "EKS" if eks_properties is not None else "ECS"

    def build(revision: int) -> JobDefinition:
        return JobDefinition(
            name=job_definition_name,
            revision=revision,
            arn=ctx.identity.arn("job-definition", f"{job_definition_name}:{revision}"),
            status="ACTIVE",
            type=type,
            parameters=dict(parameters or {}),
            retry_strategy=retry_strategy if strategy is not None else None,
            timeout=timeout,
            container_properties=container_properties,
            node_properties=node_properties,
            ecs_properties=ecs_properties,
            eks_properties=eks_properties,
            consumable_resource_properties=consumable_resource_properties,
            platform_capabilities=tuple(platform_capabilities or ()),
            propagate_tags=propagate_tags,
            scheduling_priority=scheduling_priority,
            tags=all_tags,
            container_orchestration_type=orchestration,
            created_at=now,
        )

    return ctx.store.add_job_definition(build)


def deregister_job_definition(ctx: ServiceContext, *, job_definition: str) -> None:
    name, revision = references.split_job_definition(job_definition)
    if revision is None:
        raise ClientException(
            f"JobDefinition {job_definition} must name a revision (name:revision or ARN)."
        )
    found = ctx.store.get_job_definition(name, revision)
    if found is None:
        raise ClientException(f"JobDefinition {job_definition} not found.")
    if found.status != "INACTIVE":
        ctx.store.put_job_definition(replace(found, status="INACTIVE"))


def describe_job_definitions(
    ctx: ServiceContext,
    *,
    job_definitions: Sequence[str] | None = None,
    max_results: int | None = None,
    job_definition_name: str | None = None,
    status: str | None = None,
    next_token: str | None = None,
) -> tuple[list[JobDefinition], str | None]:
    check_max_results(max_results, 100)
    if job_definitions and len(job_definitions) > 100:
        raise ClientException("At most 100 job definitions can be described at once.")
    if status is not None and status not in ("ACTIVE", "INACTIVE"):
        raise ClientException(f"status must be ACTIVE or INACTIVE; got {status!r}.")
    everything = ctx.store.list_job_definitions()
    if job_definitions:
        wanted_names: set[str] = set()
        wanted_revisions: set[tuple[str, int]] = set()
        for reference in job_definitions:
            name, revision = references.split_job_definition(reference)
            if revision is None:
                wanted_names.add(name)
            else:
                wanted_revisions.add((name, revision))
        everything = [
            d
            for d in everything
            if d.name in wanted_names or (d.name, d.revision) in wanted_revisions
        ]
    if job_definition_name is not None:
        everything = [d for d in everything if d.name == job_definition_name]
    if status is not None:
        everything = [d for d in everything if d.status == status]
    return page(everything, max_results, next_token)


# -- scheduling policies -----------------------------------------------------------------


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
    def matches(pattern: str, value: str) -> bool:
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == value

    a, b = first.rstrip("*"), second.rstrip("*")
    return first == second or matches(first, b) or matches(second, a)


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


# -- consumable resources ----------------------------------------------------------------


def find_consumable_resource(ctx: ServiceContext, reference: str) -> ConsumableResource:
    """The consumable resource a name or `...:consumable-resource/<name>` ARN refers to."""
    found = ctx.store.get_consumable_resource(
        references.name_from_reference(reference, "consumable-resource")
    )
    if found is None:
        raise ClientException(f"ConsumableResource {reference} not found.")
    return found


def consumable_requirements(
    ctx: ServiceContext, properties: Document | None, where: str
) -> tuple[ConsumableRequirement, ...]:
    """Check a consumableResourceProperties document and resolve its resources to names.

    Shared by RegisterJobDefinition and SubmitJob: at most 5 entries, each naming an existing
    resource (by name or ARN) once, with a quantity of at least 1.
    """
    if properties is None:
        return ()
    entries = properties.get("consumableResourceList") or ()
    if len(entries) > MAX_CONSUMABLE_RESOURCES_PER_JOB:
        raise ClientException(
            f"{where}.consumableResourceList can have at most "
            f"{MAX_CONSUMABLE_RESOURCES_PER_JOB} entries; got {len(entries)}."
        )
    required: list[ConsumableRequirement] = []
    for entry in entries:
        reference = entry.get("consumableResource")
        if not reference:
            raise ClientException(
                f"{where}.consumableResourceList: every entry needs a consumableResource."
            )
        quantity = entry.get("quantity")
        if quantity is None or quantity < 1:
            raise ClientException(
                f"{where}.consumableResourceList: the quantity of {reference} must be at "
                f"least 1; got {quantity}."
            )
        resource = find_consumable_resource(ctx, reference)
        if any(r.resource == resource.name for r in required):
            raise ClientException(
                f"{where}.consumableResourceList names {resource.name} more than once."
            )
        required.append(ConsumableRequirement(resource=resource.name, quantity=int(quantity)))
    return tuple(required)


def create_consumable_resource(
    ctx: ServiceContext,
    *,
    consumable_resource_name: str,
    total_quantity: int | None = None,
    resource_type: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ConsumableResource:
    check_name(consumable_resource_name, "Consumable resource")
    total = 0 if total_quantity is None else total_quantity
    if total < 0:
        raise ClientException(f"totalQuantity must not be negative; got {total}.")
    kind = resource_type if resource_type is not None else "REPLENISHABLE"
    if kind not in CONSUMABLE_RESOURCE_TYPES:
        raise ClientException(
            f"resourceType must be one of {', '.join(CONSUMABLE_RESOURCE_TYPES)}; got {kind!r}."
        )
    all_tags = check_tags(tags)
    if len(ctx.store.list_consumable_resources()) >= MAX_CONSUMABLE_RESOURCES:
        raise ClientException(
            f"Cannot create more than {MAX_CONSUMABLE_RESOURCES} consumable resources."
        )
    resource = ConsumableResource(
        name=consumable_resource_name,
        arn=ctx.identity.arn("consumable-resource", consumable_resource_name),
        resource_type=kind,
        total_quantity=total,
        tags=all_tags,
        created_at=ctx.clock.now_ms(),
    )
    try:
        ctx.store.put_consumable_resource(resource, create=True)
    except ConflictError as exc:
        raise ClientException(
            f"Object already exists: consumable resource {consumable_resource_name}"
        ) from exc
    return resource


def describe_consumable_resource(
    ctx: ServiceContext, *, consumable_resource: str
) -> ConsumableResource:
    return find_consumable_resource(ctx, consumable_resource)


def list_consumable_resources(
    ctx: ServiceContext,
    *,
    filters: Sequence[Document] | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
) -> tuple[list[ConsumableResource], str | None]:
    """One page of resources in name order; the token is the last name of the page."""
    check_max_results(max_results, 100)
    matches = _name_matcher(filters or ())
    after = decode_token(next_token)
    if after is not None and not isinstance(after, str):
        raise ClientException(f"Invalid nextToken: {next_token!r}")
    limit = max_results if max_results is not None else 100
    found: list[ConsumableResource] = []
    for resource in ctx.store.list_consumable_resources():
        if (after is None or resource.name > after) and matches(resource.name):
            found.append(resource)
            if len(found) > limit:
                break
    chunk = found[:limit]
    return chunk, (encode_token(chunk[-1].name) if len(found) > limit else None)


def _name_matcher(filters: Sequence[Document]) -> Callable[[str], bool]:
    """A predicate on names for CONSUMABLE_RESOURCE_NAME filters: case-insensitive, a trailing
    `*` matches a prefix; several values match any, several filters must all match."""
    tests: list[list[tuple[str, bool]]] = []
    for document in filters:
        name = document.get("name")
        if name != "CONSUMABLE_RESOURCE_NAME":
            raise ClientException(
                f"Filter name {name} is not supported; use CONSUMABLE_RESOURCE_NAME."
            )
        values = document.get("values") or []
        if not values:
            raise ClientException(f"Filter {name} needs at least one value.")
        tests.append(
            [
                (v[:-1].lower(), True) if v.endswith("*") else (v.lower(), False)
                for v in map(str, values)
            ]
        )

    def matches(resource_name: str) -> bool:
        lowered = resource_name.lower()
        return all(
            any(lowered.startswith(v) if prefix else lowered == v for v, prefix in alternatives)
            for alternatives in tests
        )

    return matches


def update_consumable_resource(
    ctx: ServiceContext,
    *,
    consumable_resource: str,
    operation: str | None = None,
    quantity: int | None = None,
    client_token: str | None = None,
) -> ConsumableResource:
    """SET, ADD or REMOVE quantity of the total; in use is the store's to keep.

    A repeat of a request with the same clientToken within 8 hours changes nothing and answers
    what the first one did (AWS: "the update will only happen once").
    """
    action = operation if operation is not None else "SET"
    if action not in CONSUMABLE_RESOURCE_OPERATIONS:
        raise ClientException(
            f"operation must be one of {', '.join(CONSUMABLE_RESOURCE_OPERATIONS)}; got {action!r}."
        )
    if quantity is None:
        if operation is not None:
            raise ClientException(f"quantity is required with operation {action}.")
        return find_consumable_resource(ctx, consumable_resource)
    if quantity < 0:
        raise ClientException(f"quantity must not be negative; got {quantity}.")
    name = references.name_from_reference(consumable_resource, "consumable-resource")

    def change(current: ConsumableResource) -> ConsumableResource:
        if action == "SET":
            total = quantity
        elif action == "ADD":
            total = current.total_quantity + quantity
            if total > INT64_MAX:
                raise ClientException(
                    f"Cannot add {quantity} to consumable resource {current.name}: its "
                    f"totalQuantity ({current.total_quantity}) would exceed {INT64_MAX}."
                )
        else:
            total = current.total_quantity - quantity
            if total < 0:
                raise ClientException(
                    f"Cannot remove {quantity} from consumable resource {current.name}: its "
                    f"totalQuantity is {current.total_quantity}."
                )
        return replace(current, total_quantity=total)

    def apply() -> ConsumableResource:
        updated = ctx.store.mutate_consumable_resource(name, change)
        if updated is None:
            raise ClientException(f"ConsumableResource {consumable_resource} not found.")
        return updated

    if client_token is None:
        return apply()
    return ctx.client_tokens.once(client_token, (name, action, quantity), ctx.clock.now_ms(), apply)


def delete_consumable_resource(ctx: ServiceContext, *, consumable_resource: str) -> None:
    """Delete at any time, even while jobs that require it run (AWS: resource-aware scheduling,
    "Delete a consumable resource"); jobs still waiting for it wait until it is re-created."""
    resource = find_consumable_resource(ctx, consumable_resource)
    ctx.store.delete_consumable_resource(resource.name)


# -- tags --------------------------------------------------------------------------------

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
