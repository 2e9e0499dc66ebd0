"""The errors for operations of the models that Batchyard does not serve (domain/errors.py,
docs/aws-behaviour.md#validation-and-errors, docs/operations.md for CloudWatch Logs)."""

from __future__ import annotations

from batchyard.domain.errors import NotImplementedOperation, UnsupportedLogsOperation


def test_a_batch_operation_batchyard_does_not_serve_is_a_client_exception_naming_it() -> None:
    error = NotImplementedOperation("CreateServiceEnvironment")
    assert (error.code, error.http_status) == ("ClientException", 400)
    assert error.message == "Operation CreateServiceEnvironment is not supported by Batchyard."
    assert error.operation == "CreateServiceEnvironment"


def test_a_logs_operation_batchyard_does_not_serve_is_an_invalid_operation() -> None:
    error = UnsupportedLogsOperation("PutRetentionPolicy")
    assert (error.code, error.http_status) == ("InvalidOperationException", 400)
    assert error.message == "Operation PutRetentionPolicy is not supported by Batchyard."
