"""One function per API operation (SubmitJob -> `jobs.submit_job`), on snake_case arguments.

Validates requests the way AWS Batch does (docs/aws-behaviour.md), builds domain objects and
hands them to the store; `resources` holds compute environments, queues, definitions, scheduling
policies, consumable resources and tags, `jobs` the job operations, `logs` the CloudWatch Logs
operations, `retention` the deletion of old job records. Knows neither HTTP nor runtimes, and
never imports the dispatcher: the two meet only in the store.
"""
