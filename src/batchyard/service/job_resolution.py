"""What a job of a definition runs, with the submission's overrides applied: the container
(overrides merged, `Ref::` parameters substituted), its resources, and for multi-node and ECS
definitions the resolved node ranges or task containers.

Pure: a definition, parameter values and overrides in, (container, resources, extra) out; no
store, no clock. SubmitJob (service/jobs.py) calls it once per submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import Document, JobDefinition, Resources
from batchyard.service.job_properties import (
    MAX_NUM_NODES,
    check_command,
    check_environment,
    invalid,
    node_range,
)
from batchyard.service.resource_requirements import (
    EC2,
    Requested,
    check_eks_pod,
    check_platform,
    combined,
    container_requested,
    requested,
    requirement_values,
)

_REF_PREFIX = "Ref::"


def substitute(command: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Replace each whole-argument `Ref::name` with its value
    (docs/aws-behaviour.md#parameter-substitution)."""
    resolved: list[str] = []
    for argument in command:
        if argument.startswith(_REF_PREFIX):
            name = argument[len(_REF_PREFIX) :]
            if name not in values:
                raise ClientException(
                    f"Unable to substitute value. No parameter found for reference {name}"
                )
            resolved.append(values[name])
        else:
            resolved.append(argument)
    return resolved


def _merge_by(
    base: Iterable[Document], overrides: Iterable[Document], key: str
) -> list[dict[str, Any]]:
    """Merge two lists of documents keyed by `key`; overrides win, base order first."""
    merged: dict[Any, dict[str, Any]] = {item.get(key): dict(item) for item in base}
    for item in overrides:
        merged[item.get(key)] = dict(item)
    return list(merged.values())


def _override_container(
    base: Document, overrides: Document | None, values: Mapping[str, str], where: str
) -> dict[str, Any]:
    """A container document with overrides applied and its command substituted."""
    container = dict(base)
    overrides = overrides or {}
    check_environment(base.get("environment") or ())
    check_environment(overrides.get("environment") or ())
    if overrides.get("command") is not None:
        check_command(overrides["command"], where)
        container["command"] = list(overrides["command"])
    container["command"] = substitute(container.get("command") or (), values)
    if overrides.get("environment") is not None:
        container["environment"] = _merge_by(
            base.get("environment") or (), overrides["environment"], "name"
        )
    if overrides.get("resourceRequirements") is not None:
        # Parsed before the merge, which would hide a type listed twice.
        requirement_values(overrides["resourceRequirements"], where)
        container["resourceRequirements"] = _merge_by(
            base.get("resourceRequirements") or (), overrides["resourceRequirements"], "type"
        )
    # Legacy vcpus/memory overrides never beat a resourceRequirements entry (BM:ContainerOverrides).
    required = {r.get("type") for r in container.get("resourceRequirements") or ()}
    if overrides.get("vcpus") is not None and "VCPU" not in required:
        container["vcpus"] = overrides["vcpus"]
    if overrides.get("memory") is not None and "MEMORY" not in required:
        container["memory"] = overrides["memory"]
    return container


def _covers(target_nodes: str, index: int, num_nodes: int) -> bool:
    try:
        low, high = node_range(target_nodes, num_nodes)
    except ClientException:
        return False
    return low <= index <= high


def resolve_workload(
    definition: JobDefinition,
    values: Mapping[str, str],
    *,
    platform: str,
    container_overrides: Document | None,
    node_overrides: Document | None,
    ecs_properties_override: Document | None,
    eks_properties_override: Document | None,
    consumable_resource_properties_override: Document | None,
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    """(container, resources, extra) of a job of this definition with these overrides."""
    extra: dict[str, Any] = {}
    consumable = (
        consumable_resource_properties_override
        if consumable_resource_properties_override is not None
        else definition.consumable_resource_properties
    )
    if consumable is not None:
        extra["consumableResourceProperties"] = consumable
    if definition.container_properties is not None:
        container = _override_container(
            definition.container_properties, container_overrides, values, "containerOverrides"
        )
        needs = container_requested(container, platform, "containerOverrides")
        return container, needs.resources(), extra
    if definition.node_properties is not None:
        return _resolve_multinode(definition.node_properties, node_overrides, values, extra)
    if definition.ecs_properties is not None:
        return _resolve_ecs(
            definition.ecs_properties, ecs_properties_override, values, extra, platform
        )
    if definition.eks_properties is not None:
        # EKS pods do not run here yet; kept whole so DescribeJobs shows what was asked.
        extra["eksProperties"] = definition.eks_properties
        if eks_properties_override is not None:
            check_eks_pod(
                eks_properties_override.get("podProperties"),
                "eksPropertiesOverride.podProperties",
            )
            extra["eksPropertiesOverride"] = eks_properties_override
    return {}, Resources(), extra


def _resolve_multinode(
    node_properties: Document,
    node_overrides: Document | None,
    values: Mapping[str, str],
    extra: dict[str, Any],
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    num_nodes = int(node_properties.get("numNodes") or 1)
    if node_overrides is not None:
        extra["nodeOverrides"] = node_overrides
        if node_overrides.get("numNodes") is not None:
            num_nodes = node_overrides["numNodes"]
    main_node = int(node_properties.get("mainNode") or 0)
    if not main_node < num_nodes <= MAX_NUM_NODES:
        raise invalid(
            f"nodeOverrides.numNodes must be greater than the main node index ({main_node}) "
            f"and at most {MAX_NUM_NODES}; got {num_nodes}."
        )
    ranges = []
    container: dict[str, Any] = {}
    for range_properties in node_properties.get("nodeRangeProperties") or ():
        resolved = dict(range_properties)
        if range_properties.get("container") is not None:
            resolved["container"] = _override_container(
                range_properties["container"], None, values, "nodeRangeProperties.container"
            )
            if not container and _covers(
                str(range_properties.get("targetNodes", "")), main_node, num_nodes
            ):
                container = resolved["container"]
        ranges.append(resolved)
    extra["nodeProperties"] = {
        **node_properties,
        "numNodes": num_nodes,
        "nodeRangeProperties": ranges,
    }
    resources = (
        container_requested(container, EC2, "nodeRangeProperties.container").resources()
        if container
        else Resources()
    )
    return container, resources, extra


def _resolve_ecs(
    ecs_properties: Document,
    override: Document | None,
    values: Mapping[str, str],
    extra: dict[str, Any],
    platform: str,
) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    if override is not None:
        extra["ecsPropertiesOverride"] = override
    task_overrides = (override or {}).get("taskProperties") or ()
    tasks = []
    vcpus, memory, gpus = 0.0, 0, 0
    stated: list[Requested] = []
    for position, task in enumerate(ecs_properties.get("taskProperties") or ()):
        by_name: dict[Any, Document] = {}
        if position < len(task_overrides):
            by_name = {c.get("name"): c for c in task_overrides[position].get("containers") or ()}
        containers = []
        for container in task.get("containers") or ():
            resolved = _override_container(
                container,
                by_name.get(container.get("name")),
                values,
                "ecsPropertiesOverride.taskProperties.containers",
            )
            container_needs = requested(resolved, f"container {container.get('name')}")
            stated.append(container_needs)
            needs = container_needs.resources()
            vcpus, memory, gpus = vcpus + needs.vcpus, memory + needs.memory_mib, gpus + needs.gpus
            containers.append(resolved)
        tasks.append({**task, "containers": containers})
    check_platform(combined(stated), platform, "ecsProperties.taskProperties")
    extra["ecsProperties"] = {**ecs_properties, "taskProperties": tasks}
    resources = Resources(vcpus=vcpus, memory_mib=memory, gpus=gpus) if tasks else Resources()
    # A multi-container job's top-level container is empty (BM:JobDetail.container).
    return {}, resources, extra
