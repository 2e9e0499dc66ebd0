"""Client-facing errors in AWS Batch's vocabulary.

Raised anywhere below the API; the api layer turns them into AWS error responses.
"""

from __future__ import annotations


class BatchError(Exception):
    """An error answered to the client with an AWS error code and HTTP status."""

    code = "ClientException"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientException(BatchError):
    """The request is invalid or names something that does not exist (HTTP 400)."""


class ServerException(BatchError):
    code = "ServerException"
    http_status = 500


class TooManyRequestsException(BatchError):
    code = "TooManyRequestsException"
    http_status = 429


class NotImplementedOperation(BatchError):
    """An operation of the AWS Batch model that Batchyard does not implement (yet)."""

    code = "ClientException"
    http_status = 400

    def __init__(self, operation: str) -> None:
        super().__init__(f"Operation {operation} is not supported by Batchyard.")
        self.operation = operation


# -- CloudWatch Logs ----------------------------------------------------------------------------


class ResourceNotFoundException(BatchError):
    """A log group or log stream that does not exist (CloudWatch Logs)."""

    code = "ResourceNotFoundException"
    http_status = 400


class InvalidParameterException(BatchError):
    """A CloudWatch Logs request that is invalid (CloudWatch Logs' ClientException)."""

    code = "InvalidParameterException"
    http_status = 400


class UnsupportedLogsOperation(NotImplementedOperation):
    """An operation of the CloudWatch Logs model that Batchyard does not serve."""

    code = "InvalidOperationException"


class UnknownOperationException(BatchError):
    """An X-Amz-Target that names no operation Batchyard's models know."""

    code = "UnknownOperationException"
    http_status = 400


class ServiceUnavailableException(ServerException):
    """An internal error answered to a CloudWatch Logs client (its model's 5xx error)."""

    code = "ServiceUnavailableException"
