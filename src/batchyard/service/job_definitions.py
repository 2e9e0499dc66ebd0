"""RegisterJobDefinition, DeregisterJobDefinition and DescribeJobDefinitions: which of
containerProperties, nodeProperties, ecsProperties and eksProperties a definition holds, and
the checks on each (docs/aws-behaviour.md#job-definitions).

Rules SubmitJob shares with registration (environment, retry strategy, timeout, tags, node
ranges) are in service/job_properties.py; resource values per platform in
service/resource_requirements.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from batchyard.domain.errors import ClientException
from batchyard.domain.model import Document, JobDefinition
from batchyard.service import references
from batchyard.service.consumable_resources import consumable_requirements
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import (
    check_environment,
    check_retry_strategy,
    check_tags,
    check_timeout,
    node_range,
)
from batchyard.service.naming import check_name
from batchyard.service.pagination import check_max_results, page
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

MAX_JOB_DEFINITION_BYTES = 24 * 1024
_USER = re.compile(r"[a-z0-9_][a-z0-9_-]{0,30}")


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


def _check_workload(
    type: str,
    platform_capabilities: Sequence[str],
    *,
    container_properties: Document | None,
    node_properties: Document | None,
    ecs_properties: Document | None,
    eks_properties: Document | None,
) -> None:
    """The definition's type holds the properties it may, and each is valid on its platform."""
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
        if FARGATE in platform_capabilities:
            raise ClientException("Multi-node parallel jobs are not supported on Fargate.")
    else:
        raise ClientException(f"Job definition type must be container or multinode; got {type!r}.")
    platform = platform_of(platform_capabilities)
    if container_properties is not None:
        _check_container_properties(container_properties, platform, "containerProperties")
    if node_properties is not None:
        _check_node_properties(node_properties)
    if ecs_properties is not None:
        _check_ecs_properties(ecs_properties, platform)
    if eks_properties is not None:
        check_eks_pod(eks_properties.get("podProperties"), "eksProperties.podProperties")


def _check_consumable_resources(
    ctx: ServiceContext, properties: Document | None, node_properties: Document | None
) -> None:
    """The definition's consumable resources, and each node range's, exist and are valid."""
    consumable_requirements(ctx, properties, "consumableResourceProperties")
    for position, ranged in enumerate((node_properties or {}).get("nodeRangeProperties") or ()):
        consumable_requirements(
            ctx,
            ranged.get("consumableResourceProperties"),
            f"nodeRangeProperties[{position}].consumableResourceProperties",
        )


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
    _check_workload(
        type,
        platform_capabilities or (),
        container_properties=container_properties,
        node_properties=node_properties,
        ecs_properties=ecs_properties,
        eks_properties=eks_properties,
    )
    _check_consumable_resources(ctx, consumable_resource_properties, node_properties)
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
