"""Wire adapters for resource operations (compute environments, job queues, job definitions,
scheduling policies, consumable resources, tags): request members in, AWS response shapes out.

Each handler takes the validated request (camelCase, as boto3 sends it) and returns the
response (camelCase). The service functions underneath speak snake_case domain objects.
"""

from __future__ import annotations

from typing import Any

from botocore import xform_name

from batchyard.domain.model import (
    ComputeEnvironment,
    ConsumableResource,
    Identity,
    JobDefinition,
    JobQueue,
    SchedulingPolicy,
)
from batchyard.service import (
    compute_environments,
    consumable_resources,
    job_definitions,
    job_queues,
    scheduling_policies,
    tags,
)
from batchyard.service.context import ServiceContext


def snake_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """Top-level request members as keyword arguments of the service function."""
    return {xform_name(key): value for key, value in request.items()}


def compute_environment_detail(ce: ComputeEnvironment, identity: Identity) -> dict[str, Any]:
    return {
        "computeEnvironmentName": ce.name,
        "computeEnvironmentArn": ce.arn,
        "unmanagedvCpus": ce.unmanagedv_cpus,
        "ecsClusterArn": f"arn:aws:ecs:{identity.region}:{identity.account_id}:cluster/"
        f"batchyard-{ce.name}",
        "tags": dict(ce.tags),
        "type": ce.type,
        "state": ce.state.value,
        "status": ce.status.value,
        "statusReason": ce.status_reason,
        "computeResources": ce.compute_resources,
        "serviceRole": ce.service_role,
        "updatePolicy": ce.update_policy,
        "eksConfiguration": ce.eks_configuration,
        "containerOrchestrationType": ce.container_orchestration_type,
        "uuid": ce.uuid,
        "context": ce.context,
        "ecsSettings": ce.ecs_settings,
    }


def job_queue_detail(queue: JobQueue) -> dict[str, Any]:
    return {
        "jobQueueName": queue.name,
        "jobQueueArn": queue.arn,
        "state": queue.state.value,
        "schedulingPolicyArn": queue.scheduling_policy_arn,
        "status": queue.status.value,
        "statusReason": queue.status_reason,
        "priority": queue.priority,
        "computeEnvironmentOrder": [
            {"order": o.order, "computeEnvironment": _ce_arn(queue, o.compute_environment)}
            for o in queue.compute_environment_order
        ],
        "jobQueueType": queue.job_queue_type,
        "tags": dict(queue.tags),
        "jobStateTimeLimitActions": [
            {
                "reason": a.reason,
                "state": a.state,
                "maxTimeSeconds": a.max_time_seconds,
                "action": a.action,
            }
            for a in queue.job_state_time_limit_actions
        ],
    }


def _ce_arn(queue: JobQueue, ce_name: str) -> str:
    prefix = queue.arn.rsplit(":", 1)[0]
    return f"{prefix}:compute-environment/{ce_name}"


def job_definition_detail(definition: JobDefinition) -> dict[str, Any]:
    return {
        "jobDefinitionName": definition.name,
        "jobDefinitionArn": definition.arn,
        "revision": definition.revision,
        "status": definition.status,
        "type": definition.type,
        "schedulingPriority": definition.scheduling_priority,
        "parameters": dict(definition.parameters),
        "retryStrategy": definition.retry_strategy,
        "containerProperties": definition.container_properties,
        "timeout": definition.timeout,
        "nodeProperties": definition.node_properties,
        "tags": dict(definition.tags),
        "propagateTags": definition.propagate_tags,
        "platformCapabilities": list(definition.platform_capabilities) or None,
        "ecsProperties": definition.ecs_properties,
        "eksProperties": definition.eks_properties,
        "containerOrchestrationType": definition.container_orchestration_type,
        "consumableResourceProperties": definition.consumable_resource_properties,
    }


def scheduling_policy_detail(policy: SchedulingPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "arn": policy.arn,
        "fairsharePolicy": policy.fairshare_policy,
        "quotaSharePolicy": policy.quota_share_policy,
        "tags": dict(policy.tags),
    }


def consumable_resource_detail(resource: ConsumableResource) -> dict[str, Any]:
    """DescribeConsumableResource's response."""
    return {
        "consumableResourceName": resource.name,
        "consumableResourceArn": resource.arn,
        "totalQuantity": resource.total_quantity,
        "inUseQuantity": resource.in_use_quantity,
        "availableQuantity": resource.available_quantity,
        "resourceType": resource.resource_type,
        "createdAt": resource.created_at,
        "tags": dict(resource.tags),
    }


_SUMMARY_MEMBERS = (
    "consumableResourceArn",
    "consumableResourceName",
    "totalQuantity",
    "inUseQuantity",
    "resourceType",
)


def consumable_resource_summary(resource: ConsumableResource) -> dict[str, Any]:
    """ListConsumableResources' entry: the detail's counts without availability or tags."""
    detail = consumable_resource_detail(resource)
    return {member: detail[member] for member in _SUMMARY_MEMBERS}


# -- handlers ----------------------------------------------------------------------------


def create_compute_environment(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    ce = compute_environments.create_compute_environment(ctx, **snake_kwargs(request))
    return {"computeEnvironmentName": ce.name, "computeEnvironmentArn": ce.arn}


def update_compute_environment(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    ce = compute_environments.update_compute_environment(ctx, **snake_kwargs(request))
    return {"computeEnvironmentName": ce.name, "computeEnvironmentArn": ce.arn}


def delete_compute_environment(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    compute_environments.delete_compute_environment(ctx, **snake_kwargs(request))
    return {}


def describe_compute_environments(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = compute_environments.describe_compute_environments(ctx, **snake_kwargs(request))
    return {
        "computeEnvironments": [compute_environment_detail(ce, ctx.identity) for ce in found],
        "nextToken": token,
    }


def create_job_queue(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    queue = job_queues.create_job_queue(ctx, **snake_kwargs(request))
    return {"jobQueueName": queue.name, "jobQueueArn": queue.arn}


def update_job_queue(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    queue = job_queues.update_job_queue(ctx, **snake_kwargs(request))
    return {"jobQueueName": queue.name, "jobQueueArn": queue.arn}


def delete_job_queue(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    job_queues.delete_job_queue(ctx, **snake_kwargs(request))
    return {}


def describe_job_queues(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = job_queues.describe_job_queues(ctx, **snake_kwargs(request))
    return {"jobQueues": [job_queue_detail(q) for q in found], "nextToken": token}


def register_job_definition(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    definition = job_definitions.register_job_definition(ctx, **snake_kwargs(request))
    return {
        "jobDefinitionName": definition.name,
        "jobDefinitionArn": definition.arn,
        "revision": definition.revision,
    }


def deregister_job_definition(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    job_definitions.deregister_job_definition(ctx, **snake_kwargs(request))
    return {}


def describe_job_definitions(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = job_definitions.describe_job_definitions(ctx, **snake_kwargs(request))
    return {"jobDefinitions": [job_definition_detail(d) for d in found], "nextToken": token}


def create_scheduling_policy(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    policy = scheduling_policies.create_scheduling_policy(ctx, **snake_kwargs(request))
    return {"name": policy.name, "arn": policy.arn}


def update_scheduling_policy(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    scheduling_policies.update_scheduling_policy(ctx, **snake_kwargs(request))
    return {}


def delete_scheduling_policy(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    scheduling_policies.delete_scheduling_policy(ctx, **snake_kwargs(request))
    return {}


def describe_scheduling_policies(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found = scheduling_policies.describe_scheduling_policies(ctx, **snake_kwargs(request))
    return {"schedulingPolicies": [scheduling_policy_detail(p) for p in found]}


def list_scheduling_policies(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = scheduling_policies.list_scheduling_policies(ctx, **snake_kwargs(request))
    return {"schedulingPolicies": [{"arn": p.arn} for p in found], "nextToken": token}


def create_consumable_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = consumable_resources.create_consumable_resource(ctx, **snake_kwargs(request))
    return {"consumableResourceName": resource.name, "consumableResourceArn": resource.arn}


def describe_consumable_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    return consumable_resource_detail(
        consumable_resources.describe_consumable_resource(ctx, **snake_kwargs(request))
    )


def list_consumable_resources(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found, token = consumable_resources.list_consumable_resources(ctx, **snake_kwargs(request))
    return {
        "consumableResources": [consumable_resource_summary(r) for r in found],
        "nextToken": token,
    }


def update_consumable_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    resource = consumable_resources.update_consumable_resource(ctx, **snake_kwargs(request))
    return {
        "consumableResourceName": resource.name,
        "consumableResourceArn": resource.arn,
        "totalQuantity": resource.total_quantity,
    }


def delete_consumable_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    consumable_resources.delete_consumable_resource(ctx, **snake_kwargs(request))
    return {}


def list_tags_for_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    return {"tags": tags.list_tags_for_resource(ctx, **snake_kwargs(request))}


def tag_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    tags.tag_resource(ctx, **snake_kwargs(request))
    return {}


def untag_resource(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    tags.untag_resource(ctx, **snake_kwargs(request))
    return {}
