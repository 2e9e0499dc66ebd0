"""One function per API operation, on snake_case arguments, in the module named for the
resource it acts on (CreateJobQueue -> `job_queues.create_job_queue`; the table in
docs/architecture.md lists every module).

Validates requests the way AWS Batch does (docs/aws-behaviour.md), builds domain objects and
hands them to the store. Knows neither HTTP nor runtimes, and never imports the dispatcher:
the two meet only in the store.
"""
