"""The pure core's vocabulary: Batch objects as frozen dataclasses and the rules of one job.

`model` holds jobs, attempts, queues, compute environments, definitions and policies in AWS's
names; `lifecycle` the rules of one job (transitions, retries, cancel and terminate, timeouts,
array parents) with AWS's exact status strings; `errors` the client-facing errors. No I/O, no
clock, no randomness: import-linter forbids them here (docs/aws-behaviour.md has the rules).
"""
