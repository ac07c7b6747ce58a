"""Errors the local Greengrass API returns, in the shape of the AWS service's errors.

``responses.py`` renders a :class:`GreengrassApiError` as the AWS REST-JSON error
(``code`` as ``x-amzn-ErrorType``, ``status`` as the HTTP status, ``body()`` as the
JSON), so boto3 raises the same modeled exceptions it raises against AWS. (Distinct
from the IPC ``ServiceError`` of ``edgekit.local.ipc``.)
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import EdgekitError

__all__ = [
    "ConflictException",
    "GreengrassApiError",
    "InternalServerException",
    "ResourceNotFoundException",
    "ValidationException",
    "field_error",
]


class GreengrassApiError(EdgekitError):
    """An error the API returns to the caller, with its AWS code and HTTP status."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}


class ValidationException(GreengrassApiError):
    code = "ValidationException"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        reason: str = "FIELD_VALIDATION_FAILED",
    ) -> None:
        super().__init__(message, reason=reason, fields=fields or None)


class ResourceNotFoundException(GreengrassApiError):
    code = "ResourceNotFoundException"
    status = 404

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceType=resource_type)


class ConflictException(GreengrassApiError):
    code = "ConflictException"
    status = 409

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceType=resource_type)


class InternalServerException(GreengrassApiError):
    code = "InternalServerException"
    status = 500


def field_error(name: str, message: str) -> ValidationException:
    """A ValidationException about one request or recipe field."""
    return ValidationException(f"{name}: {message}", fields=[{"name": name, "message": message}])
