"""CreateConsumableResource, DescribeConsumableResource, ListConsumableResources,
UpdateConsumableResource and DeleteConsumableResource, and the consumableResourceProperties
check RegisterJobDefinition and SubmitJob share.

Quantities in use are the store's to keep (taken at STARTING, returned at the end);
repeated clientTokens are remembered by the ServiceContext (service/client_tokens.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ConsumableRequirement, ConsumableResource, Document
from batchyard.domain.numerals import INT64_MAX
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import check_tags
from batchyard.service.naming import check_name
from batchyard.service.pagination import check_max_results, decode_token, encode_token
from batchyard.store.base import ConflictError

MAX_CONSUMABLE_RESOURCES = 50_000
MAX_CONSUMABLE_RESOURCES_PER_JOB = 5
CONSUMABLE_RESOURCE_TYPES = ("REPLENISHABLE", "NON_REPLENISHABLE")
CONSUMABLE_RESOURCE_OPERATIONS = ("SET", "ADD", "REMOVE")


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
