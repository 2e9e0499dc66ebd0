"""The operation table: every AWS operation Batchyard serves (Batch, and the CloudWatch Logs
subset), by name, with its wire handler and how the edge runs it; and the operations of the
models it answers with a clear 'not supported' error.

An operation name is one hop from its code: `OPERATIONS["CreateJobQueue"].handler` is
`resources_wire.create_job_queue`, which calls `service/job_queues.py: create_job_queue`. What
differs between operations is said here, as properties of the entry, never as a branch in
api/app.py: which thread runs it (`runs_on`), whether its write joins the loop turn's group
commit (`commit`), whether its handler already renders exactly the output shape
(`rendered_as_modelled`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from starlette.concurrency import run_in_threadpool

from batchyard.api import jobs_wire, logs_wire, resources_wire
from batchyard.api.jobs_wire import Insert
from batchyard.service.context import ServiceContext

Service = Literal["batch", "logs"]
# "loop": called on the event loop thread, as everything that touches the store is
# (docs/architecture.md, Concurrency). "thread": file I/O that would stall the loop, sent to
# Starlette's thread pool.
RunsOn = Literal["loop", "thread"]
# "own": the handler writes through the store itself. "group": the handler hands its jobs to
# `insert`, which stores them with the other submissions of the same loop turn in one
# transaction (api/group_commit.py), and answers once they are stored.
Commit = Literal["own", "group"]

Handler = Callable[[ServiceContext, dict[str, Any]], dict[str, Any]]
GroupCommitHandler = Callable[[ServiceContext, dict[str, Any], Insert], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation: its name in the model, the wire handler (validated camelCase request in,
    camelCase response out) and how the edge runs it."""

    name: str
    service: Service
    handler: Handler | GroupCommitHandler  # a GroupCommitHandler exactly when commit="group"
    runs_on: RunsOn = "loop"
    commit: Commit = "own"
    # The handler renders exactly the members of the model's output shape and omits absent
    # ones, so the edge sends its result as it is instead of walking the shape for each
    # request (a third of a DescribeJobs of 100). For hot operations only;
    # tests/unit/service/test_job_renderers.py holds them to it.
    rendered_as_modelled: bool = False

    def __post_init__(self) -> None:
        if self.commit == "group" and self.runs_on != "loop":
            raise ValueError(f"{self.name}: a group commit gathers one turn of the event loop")

    async def invoke(
        self, ctx: ServiceContext, request: dict[str, Any], insert: Insert
    ) -> dict[str, Any]:
        """The response to a validated request. `insert` stores a submission's jobs (the
        edge's group commit); only a commit="group" operation uses it."""
        if self.commit == "group":
            return await cast(GroupCommitHandler, self.handler)(ctx, request, insert)
        handler = cast(Handler, self.handler)
        if self.runs_on == "thread":
            return await run_in_threadpool(handler, ctx, request)
        return handler(ctx, request)


def _batch(name: str, handler: Handler, **properties: Any) -> Operation:
    return Operation(name, "batch", handler, **properties)


def _logs(name: str, handler: Handler) -> Operation:
    # Reading a stream is file I/O of up to 1 MB a page: off the event loop.
    return Operation(name, "logs", handler, runs_on="thread")


_TABLE = (
    # compute environments, job queues, job definitions (api/resources_wire.py)
    _batch("CreateComputeEnvironment", resources_wire.create_compute_environment),
    _batch("UpdateComputeEnvironment", resources_wire.update_compute_environment),
    _batch("DeleteComputeEnvironment", resources_wire.delete_compute_environment),
    _batch("DescribeComputeEnvironments", resources_wire.describe_compute_environments),
    _batch("CreateJobQueue", resources_wire.create_job_queue),
    _batch("UpdateJobQueue", resources_wire.update_job_queue),
    _batch("DeleteJobQueue", resources_wire.delete_job_queue),
    _batch("DescribeJobQueues", resources_wire.describe_job_queues),
    _batch("RegisterJobDefinition", resources_wire.register_job_definition),
    _batch("DeregisterJobDefinition", resources_wire.deregister_job_definition),
    _batch("DescribeJobDefinitions", resources_wire.describe_job_definitions),
    # scheduling policies, consumable resources, tags (api/resources_wire.py)
    _batch("CreateSchedulingPolicy", resources_wire.create_scheduling_policy),
    _batch("UpdateSchedulingPolicy", resources_wire.update_scheduling_policy),
    _batch("DeleteSchedulingPolicy", resources_wire.delete_scheduling_policy),
    _batch("DescribeSchedulingPolicies", resources_wire.describe_scheduling_policies),
    _batch("ListSchedulingPolicies", resources_wire.list_scheduling_policies),
    _batch("CreateConsumableResource", resources_wire.create_consumable_resource),
    _batch("DescribeConsumableResource", resources_wire.describe_consumable_resource),
    _batch("ListConsumableResources", resources_wire.list_consumable_resources),
    _batch("UpdateConsumableResource", resources_wire.update_consumable_resource),
    _batch("DeleteConsumableResource", resources_wire.delete_consumable_resource),
    _batch("ListTagsForResource", resources_wire.list_tags_for_resource),
    _batch("TagResource", resources_wire.tag_resource),
    _batch("UntagResource", resources_wire.untag_resource),
    # jobs (api/jobs_wire.py)
    Operation(
        "SubmitJob", "batch", jobs_wire.submit_job, commit="group", rendered_as_modelled=True
    ),
    _batch("DescribeJobs", jobs_wire.describe_jobs, rendered_as_modelled=True),
    _batch("ListJobs", jobs_wire.list_jobs, rendered_as_modelled=True),
    _batch("ListJobsByConsumableResource", jobs_wire.list_jobs_by_consumable_resource),
    _batch("GetJobQueueSnapshot", jobs_wire.get_job_queue_snapshot),
    _batch("CancelJob", jobs_wire.cancel_job),
    _batch("TerminateJob", jobs_wire.terminate_job),
    _batch("CancelJobs", jobs_wire.cancel_jobs),
    _batch("TerminateJobs", jobs_wire.terminate_jobs),
    # CloudWatch Logs, json-1.1 by X-Amz-Target on the same endpoint (api/logs_wire.py)
    _logs("GetLogEvents", logs_wire.get_log_events),
    _logs("FilterLogEvents", logs_wire.filter_log_events),
    _logs("DescribeLogStreams", logs_wire.describe_log_streams),
    _logs("DescribeLogGroups", logs_wire.describe_log_groups),
)


def _by_name(table: tuple[Operation, ...]) -> dict[str, Operation]:
    named = {operation.name: operation for operation in table}
    if len(named) != len(table):
        raise ValueError("an operation name is in the table twice")
    return named


OPERATIONS: Mapping[str, Operation] = _by_name(_TABLE)
"""Every operation Batchyard serves, by name (the names of the two models do not overlap in
what is served: Logs' ListTagsForResource, TagResource and UntagResource are unsupported)."""


def served(service: Service) -> frozenset[str]:
    """The names of the operations of `service` Batchyard serves."""
    return frozenset(name for name, op in OPERATIONS.items() if op.service == service)


BATCH_UNSUPPORTED: frozenset[str] = frozenset(
    {
        # SageMaker service jobs, service environments and quota shares: not planned.
        "CreateQuotaShare",
        "DeleteQuotaShare",
        "DescribeQuotaShare",
        "ListQuotaShares",
        "UpdateQuotaShare",
        "CreateServiceEnvironment",
        "DeleteServiceEnvironment",
        "DescribeServiceEnvironments",
        "UpdateServiceEnvironment",
        "DescribeServiceJob",
        "ListServiceJobs",
        "SubmitServiceJob",
        "TerminateServiceJob",
        "TerminateServiceJobs",
        "UpdateServiceJob",
    }
)
"""Operations of the Batch model that answer a clear 'not supported' error."""

LOGS_UNSUPPORTED: frozenset[str] = frozenset(
    {
        # Writes and management: runtimes write the streams; retention removes them with their jobs.
        "AssociateKmsKey",
        "CreateLogGroup",
        "CreateLogStream",
        "DeleteLogGroup",
        "DeleteLogStream",
        "DeleteRetentionPolicy",
        "DisassociateKmsKey",
        "GetLogFields",
        "GetLogGroupFields",
        "GetLogObject",
        "GetLogRecord",
        "ListLogGroups",
        "ListTagsForResource",
        "ListTagsLogGroup",
        "PutLogEvents",
        "PutLogGroupDeletionProtection",
        "PutRetentionPolicy",
        "StartLiveTail",
        "TagLogGroup",
        "TagResource",
        "UntagLogGroup",
        "UntagResource",
        # Logs Insights queries, metric filters, anomaly detection: not planned.
        "CreateLogAnomalyDetector",
        "CreateLookupTable",
        "CreateScheduledQuery",
        "DeleteIndexPolicy",
        "DeleteLogAnomalyDetector",
        "DeleteLookupTable",
        "DeleteMetricFilter",
        "DeleteQueryDefinition",
        "DeleteScheduledQuery",
        "DeleteTransformer",
        "DescribeFieldIndexes",
        "DescribeIndexPolicies",
        "DescribeLookupTables",
        "DescribeMetricFilters",
        "DescribeQueries",
        "DescribeQueryDefinitions",
        "GetLogAnomalyDetector",
        "GetLookupTable",
        "GetQueryResults",
        "GetScheduledQuery",
        "GetScheduledQueryHistory",
        "GetTransformer",
        "ListAnomalies",
        "ListLogAnomalyDetectors",
        "ListLogGroupsForQuery",
        "ListScheduledQueries",
        "PutIndexPolicy",
        "PutMetricFilter",
        "PutQueryDefinition",
        "PutTransformer",
        "StartQuery",
        "StopQuery",
        "TestMetricFilter",
        "TestTransformer",
        "UpdateAnomaly",
        "UpdateLogAnomalyDetector",
        "UpdateLookupTable",
        "UpdateScheduledQuery",
        # Deliveries, destinations, subscriptions, exports, imports, integrations: not planned.
        "AssociateSourceToS3TableIntegration",
        "CancelExportTask",
        "CancelImportTask",
        "CreateDelivery",
        "CreateExportTask",
        "CreateImportTask",
        "DeleteAccountPolicy",
        "DeleteDataProtectionPolicy",
        "DeleteDelivery",
        "DeleteDeliveryDestination",
        "DeleteDeliveryDestinationPolicy",
        "DeleteDeliverySource",
        "DeleteDestination",
        "DeleteIntegration",
        "DeleteResourcePolicy",
        "DeleteSubscriptionFilter",
        "DeleteSyslogConfiguration",
        "DescribeAccountPolicies",
        "DescribeConfigurationTemplates",
        "DescribeDeliveries",
        "DescribeDeliveryDestinations",
        "DescribeDeliverySources",
        "DescribeDestinations",
        "DescribeExportTasks",
        "DescribeImportTaskBatches",
        "DescribeImportTasks",
        "DescribeResourcePolicies",
        "DescribeSubscriptionFilters",
        "DisassociateSourceFromS3TableIntegration",
        "GetDataProtectionPolicy",
        "GetDelivery",
        "GetDeliveryDestination",
        "GetDeliveryDestinationPolicy",
        "GetDeliverySource",
        "GetIntegration",
        "GetStorageTierPolicy",
        "ListAggregateLogGroupSummaries",
        "ListIntegrations",
        "ListSourcesForS3TableIntegration",
        "ListSyslogConfigurations",
        "PutAccountPolicy",
        "PutBearerTokenAuthentication",
        "PutDataProtectionPolicy",
        "PutDeliveryDestination",
        "PutDeliveryDestinationPolicy",
        "PutDeliverySource",
        "PutDestination",
        "PutDestinationPolicy",
        "PutIntegration",
        "PutResourcePolicy",
        "PutStorageTierPolicy",
        "PutSubscriptionFilter",
        "PutSyslogConfiguration",
        "UpdateDeliveryConfiguration",
    }
)
"""Operations of the CloudWatch Logs model that answer a clear "not supported" error."""
