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
