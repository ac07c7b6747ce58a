"""Greengrass IPC's modeled error shapes, as the server sends them.

An operation handler raises one of these; the RPC layer turns it into an
APPLICATION_ERROR message whose ``service-model-type`` header names the shape
(e.g. ``aws.greengrass#UnauthorizedError``), so the official SDK raises its own
matching exception class (``awsiot.greengrasscoreipc.model.UnauthorizedError``).
"""

from __future__ import annotations

from typing import Any


class IpcOperationError(Exception):
    """Base of the errors an IPC operation answers with."""

    model_name = "aws.greengrass#ServiceError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {"message": self.message}


class ServiceError(IpcOperationError):
    """Server-side failure, or an operation this local device does not implement."""

    model_name = "aws.greengrass#ServiceError"


class UnauthorizedError(IpcOperationError):
    """The component's accessControl does not allow the operation on the resource."""

    model_name = "aws.greengrass#UnauthorizedError"


class InvalidArgumentsError(IpcOperationError):
    """The request is missing a field or has a value of the wrong shape."""

    model_name = "aws.greengrass#InvalidArgumentsError"


class ResourceNotFoundError(IpcOperationError):
    model_name = "aws.greengrass#ResourceNotFoundError"

    def __init__(
        self, message: str, *, resource_type: str | None = None, resource_name: str | None = None
    ) -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.resource_name = resource_name

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.resource_type is not None:
            out["resourceType"] = self.resource_type
        if self.resource_name is not None:
            out["resourceName"] = self.resource_name
        return out


class FailedUpdateConditionCheckError(IpcOperationError):
    """UpdateConfiguration with a timestamp older than the stored value's."""

    model_name = "aws.greengrass#FailedUpdateConditionCheckError"
