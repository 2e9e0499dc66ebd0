"""Consumable resources in the service layer (service/consumable_resources.py): create,
describe, list, update, delete, and jobs and definitions that require them."""

from __future__ import annotations

from typing import Any

import pytest

from batchyard.api import jobs_wire, resources_wire
from batchyard.domain.model import (
    ConsumableRequirement,
    JobDefinition,
    JobStatus,
)
from batchyard.service import consumable_resources, job_definitions, job_queries, tags
from batchyard.service.context import ServiceContext
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock
from tests.unit.service.context import IDENTITY, NOW, rejected, set_status, submit, wire
from tests.unit.service.shapes import shape_errors

S = JobStatus


# -- consumable resources -----------------------------------------------------------------------


def a_resource(ctx: ServiceContext, name: str, total: int = 4, **fields: Any) -> Any:
    return consumable_resources.create_consumable_resource(
        ctx, consumable_resource_name=name, total_quantity=total, **fields
    )


def test_create_and_describe_consumable_resource(ctx: ServiceContext) -> None:
    created = consumable_resources.create_consumable_resource(
        ctx, consumable_resource_name="licence"
    )
    assert created.arn == "arn:aws:batch:us-east-1:000000000000:consumable-resource/licence"
    assert (created.resource_type, created.total_quantity, created.created_at) == (
        "REPLENISHABLE",
        0,
        NOW,
    )
    for reference in ("licence", created.arn):
        found = consumable_resources.describe_consumable_resource(
            ctx, consumable_resource=reference
        )
        assert found.name == "licence"
    rejected(
        lambda: consumable_resources.describe_consumable_resource(ctx, consumable_resource="ghost"),
        "ConsumableResource ghost not found.",
    )
    rejected(
        lambda: consumable_resources.describe_consumable_resource(
            ctx, consumable_resource=IDENTITY.arn("job-queue", "licence")
        ),
        "is not a consumable-resource ARN",
    )
    detail = resources_wire.consumable_resource_detail(created)
    assert detail["availableQuantity"] == 0
    assert shape_errors("DescribeConsumableResourceResponse", detail) == []


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"consumable_resource_name": "a b"}, "name"),
        ({"consumable_resource_name": "x" * 129}, "name"),
        ({"consumable_resource_name": "ok", "total_quantity": -1}, "totalQuantity"),
        ({"consumable_resource_name": "ok", "resource_type": "SOMETIMES"}, "resourceType"),
        ({"consumable_resource_name": "ok", "tags": {"aws:x": "1"}}, "aws:"),
    ],
)
def test_create_consumable_resource_validation(
    ctx: ServiceContext, fields: dict[str, Any], fragment: str
) -> None:
    rejected(lambda: consumable_resources.create_consumable_resource(ctx, **fields), fragment)
    assert ctx.store.list_consumable_resources() == []


def test_duplicate_consumable_resource_is_rejected(ctx: ServiceContext) -> None:
    a_resource(ctx, "dup")
    rejected(lambda: a_resource(ctx, "dup", total=9), "already exists", "dup")
    found = ctx.store.get_consumable_resource("dup")
    assert found is not None
    assert found.total_quantity == 4


def test_list_consumable_resources_filters_and_pages(ctx: ServiceContext) -> None:
    for name in ("GPU-a", "gpu-b", "gpu-c", "disk", "gpux"):
        a_resource(ctx, name)

    def names(**kwargs: Any) -> tuple[list[str], str | None]:
        found, token = consumable_resources.list_consumable_resources(ctx, **kwargs)
        return [r.name for r in found], token

    assert names()[0] == ["GPU-a", "disk", "gpu-b", "gpu-c", "gpux"]
    prefix = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["gpu-*"]}]
    assert names(filters=prefix) == (["GPU-a", "gpu-b", "gpu-c"], None)
    exact = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["DISK"]}]
    assert names(filters=exact)[0] == ["disk"]
    first, token = names(filters=prefix, max_results=2)
    assert first == ["GPU-a", "gpu-b"]
    assert token is not None
    assert names(filters=prefix, max_results=2, next_token=token) == (["gpu-c"], None)
    rejected(lambda: names(filters=[{"name": "NAME", "values": ["x"]}]), "NAME")
    rejected(lambda: names(max_results=101), "maxResults")
    rejected(lambda: names(next_token="garbage"), "nextToken")


def test_update_consumable_resource_operations(ctx: ServiceContext) -> None:
    a_resource(ctx, "tokens", total=5)

    def update(**kwargs: Any) -> int:
        return int(
            consumable_resources.update_consumable_resource(
                ctx, consumable_resource="tokens", **kwargs
            ).total_quantity
        )

    assert update(operation="ADD", quantity=3) == 8
    assert update(operation="REMOVE", quantity=8) == 0
    assert update(operation="SET", quantity=7) == 7
    assert update(quantity=2) == 2  # SET when no operation is given
    assert update() == 2  # nothing asked, nothing changed
    rejected(lambda: update(operation="REMOVE", quantity=3), "Cannot remove 3", "2")
    rejected(lambda: update(operation="SET", quantity=-1), "negative")
    rejected(lambda: update(operation="MULTIPLY", quantity=2), "SET, ADD, REMOVE")
    rejected(lambda: update(operation="ADD"), "quantity is required")
    rejected(
        lambda: consumable_resources.update_consumable_resource(
            ctx, consumable_resource="ghost", operation="ADD", quantity=1
        ),
        "ghost not found",
    )
    assert update() == 2


def test_update_client_token_makes_a_repeat_a_no_op_for_8_hours(
    ctx: ServiceContext, clock: FixedClock
) -> None:
    a_resource(ctx, "tokens", total=1)

    def add(token: str, quantity: int = 2) -> int:
        return int(
            consumable_resources.update_consumable_resource(
                ctx,
                consumable_resource="tokens",
                operation="ADD",
                quantity=quantity,
                client_token=token,
            ).total_quantity
        )

    assert add("t1") == 3
    assert add("t1") == 3  # the first answer again, nothing added
    assert add("t2") == 5
    rejected(lambda: add("t1", quantity=4), "clientToken t1", "different request")
    clock.now += 8 * 3600 * 1000 - 1
    assert add("t1") == 3
    clock.now += 1
    assert add("t1") == 7  # the token expired: a new request
    found = ctx.store.get_consumable_resource("tokens")
    assert found is not None
    assert found.total_quantity == 7
    # Another store (another server) has its own memory of tokens.
    other = ServiceContext(store=MemoryStore(), clock=clock, identity=IDENTITY)
    a_resource(other, "tokens", total=0)
    assert (
        consumable_resources.update_consumable_resource(
            other, consumable_resource="tokens", operation="ADD", quantity=1, client_token="t2"
        ).total_quantity
        == 1
    )


def test_failed_update_does_not_spend_its_client_token(ctx: ServiceContext) -> None:
    a_resource(ctx, "tokens", total=1)

    def remove(quantity: int) -> Any:
        return consumable_resources.update_consumable_resource(
            ctx,
            consumable_resource="tokens",
            operation="REMOVE",
            quantity=quantity,
            client_token="same",
        )

    rejected(lambda: remove(2), "Cannot remove")
    consumable_resources.update_consumable_resource(
        ctx, consumable_resource="tokens", operation="ADD", quantity=1
    )
    assert remove(2).total_quantity == 0


def test_delete_consumable_resource(ctx: ServiceContext) -> None:
    created = a_resource(ctx, "gone")
    consumable_resources.delete_consumable_resource(ctx, consumable_resource=created.arn)
    assert ctx.store.get_consumable_resource("gone") is None
    rejected(
        lambda: consumable_resources.delete_consumable_resource(ctx, consumable_resource="gone"),
        "ConsumableResource gone not found.",
    )


def test_consumable_resource_tags(ctx: ServiceContext) -> None:
    created = a_resource(ctx, "tagged", tags={"a": "1"})
    tags.tag_resource(ctx, resource_arn=created.arn, tags={"b": "2"})
    assert tags.list_tags_for_resource(ctx, resource_arn=created.arn) == {"a": "1", "b": "2"}
    tags.untag_resource(ctx, resource_arn=created.arn, tag_keys=["a"])
    assert tags.list_tags_for_resource(ctx, resource_arn=created.arn) == {"b": "2"}
    found = ctx.store.get_consumable_resource("tagged")
    assert found is not None
    assert (found.tags, found.total_quantity) == ({"b": "2"}, 4)
    rejected(
        lambda: tags.list_tags_for_resource(
            ctx, resource_arn=IDENTITY.arn("consumable-resource", "ghost")
        ),
        "not found",
    )


def _register(ctx: ServiceContext, properties: Any, **fields: Any) -> JobDefinition:
    return job_definitions.register_job_definition(
        ctx,
        job_definition_name="needs",
        type="container",
        container_properties={"image": "busybox", "command": ["true"]},
        consumable_resource_properties=properties,
        **fields,
    )


@pytest.mark.parametrize(
    ("entries", "fragments"),
    [
        ([{"consumableResource": "ghost", "quantity": 1}], ("ConsumableResource ghost",)),
        ([{"consumableResource": "r0", "quantity": 0}], ("quantity of r0", "at least 1")),
        ([{"consumableResource": "r0"}], ("quantity of r0",)),
        ([{"quantity": 1}], ("consumableResource",)),
        (
            [{"consumableResource": f"r{i}", "quantity": 1} for i in range(6)],
            ("at most 5",),
        ),
        (
            [
                {"consumableResource": "r0", "quantity": 1},
                {"consumableResource": IDENTITY.arn("consumable-resource", "r0"), "quantity": 2},
            ],
            ("r0 more than once",),
        ),
    ],
)
def test_register_checks_consumable_resource_properties(
    ctx: ServiceContext, entries: list[dict[str, Any]], fragments: tuple[str, ...]
) -> None:
    for i in range(6):
        a_resource(ctx, f"r{i}")
    rejected(lambda: _register(ctx, {"consumableResourceList": entries}), *fragments)
    assert ctx.store.latest_job_definition("needs", active_only=False) is None


def test_register_checks_node_range_consumable_resources(ctx: ServiceContext) -> None:
    rejected(
        lambda: job_definitions.register_job_definition(
            ctx,
            job_definition_name="mnp",
            type="multinode",
            node_properties={
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {
                        "targetNodes": "0:",
                        "container": {"image": "busybox", "command": ["true"]},
                        "consumableResourceProperties": {
                            "consumableResourceList": [
                                {"consumableResource": "ghost", "quantity": 1}
                            ]
                        },
                    }
                ],
            },
        ),
        "ConsumableResource ghost not found.",
    )


def test_submit_resolves_consumable_resources(ctx: ServiceContext) -> None:
    lic = a_resource(ctx, "lic")
    a_resource(ctx, "db")
    properties = {
        "consumableResourceList": [
            {"consumableResource": lic.arn, "quantity": 2},
            {"consumableResource": "db", "quantity": 1},
        ]
    }
    _register(ctx, properties)
    job = submit(ctx, job_definition="needs")
    assert job.consumable_resources == (
        ConsumableRequirement("lic", 2),
        ConsumableRequirement("db", 1),
    )
    # DescribeJobs shows the list as it was given.
    assert jobs_wire.job_detail(job, IDENTITY)["consumableResourceProperties"] == properties
    override = {"consumableResourceList": [{"consumableResource": "db", "quantity": 3}]}
    replaced = submit(ctx, job_definition="needs", consumable_resource_properties_override=override)
    assert replaced.consumable_resources == (ConsumableRequirement("db", 3),)
    assert replaced.extra["consumableResourceProperties"] == override
    cleared = submit(
        ctx,
        job_definition="needs",
        consumable_resource_properties_override={"consumableResourceList": []},
    )
    assert cleared.consumable_resources == ()
    parent = submit(ctx, job_definition="needs", array_properties={"size": 2})
    child = ctx.store.get_job(f"{parent.job_id}:1")
    assert child is not None
    assert child.consumable_resources == job.consumable_resources
    assert submit(ctx).consumable_resources == ()


def test_submit_rejects_unknown_or_invalid_consumable_resources(ctx: ServiceContext) -> None:
    a_resource(ctx, "lic")
    _register(ctx, {"consumableResourceList": [{"consumableResource": "lic", "quantity": 1}]})
    consumable_resources.delete_consumable_resource(ctx, consumable_resource="lic")
    rejected(lambda: submit(ctx, job_definition="needs"), "ConsumableResource lic not found.")
    bad = {"consumableResourceList": [{"consumableResource": "nope", "quantity": 1}]}
    rejected(
        lambda: submit(ctx, consumable_resource_properties_override=bad),
        "ConsumableResource nope not found.",
    )
    zero = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 0}]}
    rejected(
        lambda: submit(ctx, consumable_resource_properties_override=zero),
        "consumableResourcePropertiesOverride",
        "at least 1",
    )


def test_list_jobs_by_consumable_resource(ctx: ServiceContext) -> None:
    a_resource(ctx, "lic")
    a_resource(ctx, "other")
    needs = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 2}]}
    first = submit(ctx, job_name="Alpha-1", consumable_resource_properties_override=needs)
    second = submit(ctx, job_name="alpha-2", consumable_resource_properties_override=needs)
    third = submit(ctx, job_name="beta", consumable_resource_properties_override=needs)
    submit(ctx, job_name="alpha-free")
    set_status(ctx, second.job_id, S.RUNNABLE)

    def listed(**kwargs: Any) -> tuple[list[str], str | None]:
        found = job_queries.list_jobs_by_consumable_resource(
            ctx, consumable_resource="lic", **kwargs
        )
        assert found.resource.name == "lic"
        return [j.job_id for j in found.jobs], found.next_token

    assert listed() == ([third.job_id, second.job_id, first.job_id], None)
    by_name = [{"name": "JOB_NAME", "values": ["ALPHA*"]}]
    assert listed(filters=by_name)[0] == [second.job_id, first.job_id]
    exact = [{"name": "JOB_NAME", "values": ["BETA"]}]
    assert listed(filters=exact)[0] == [third.job_id]
    runnable = [{"name": "JOB_STATUS", "values": ["RUNNABLE"]}]
    assert listed(filters=runnable)[0] == [second.job_id]
    assert listed(filters=runnable + exact)[0] == []
    page, token = listed(max_results=2)
    assert page == [third.job_id, second.job_id]
    assert listed(max_results=2, next_token=token) == ([first.job_id], None)
    found = job_queries.list_jobs_by_consumable_resource(
        ctx, consumable_resource=IDENTITY.arn("consumable-resource", "other")
    )
    assert found.jobs == ()
    rejected(lambda: listed(filters=[{"name": "SHARE", "values": ["x"]}]), "JOB_NAME, JOB_STATUS")
    rejected(lambda: listed(filters=[{"name": "JOB_STATUS", "values": ["DONE"]}]), "DONE")
    rejected(lambda: listed(filters=[{"name": "JOB_NAME", "values": []}]), "exactly one value")
    rejected(lambda: listed(filters=runnable + runnable), "only once")
    rejected(lambda: listed(max_results=0), "maxResults")
    rejected(
        lambda: job_queries.list_jobs_by_consumable_resource(ctx, consumable_resource="ghost"),
        "ghost not found",
    )

    response = wire(
        ctx, "ListJobsByConsumableResource", {"consumableResource": "lic", "maxResults": 1}
    )
    (summary,) = response["jobs"]
    assert summary == {
        "jobArn": IDENTITY.arn("job", third.job_id),
        "jobQueueArn": IDENTITY.arn("job-queue", "q"),
        "jobName": "beta",
        "jobDefinitionArn": IDENTITY.arn("job-definition", "render:1"),
        "jobStatus": "SUBMITTED",
        "quantity": 2,
        "createdAt": NOW,
        "consumableResourceProperties": needs,
    }
    assert "nextToken" in response
    assert shape_errors("ListJobsByConsumableResourceSummary", summary) == []
