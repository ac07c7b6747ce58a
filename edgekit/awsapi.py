"""The boundary between botocore and edgekit: error codes, error mapping, pagination.

Owns: reading a botocore ``ClientError`` (code, message), mapping it to edgekit's
exception tree with a message that names the resource and says what to do, and
walking every page of a list call, whichever way the service paginates.

Must not import boto3 or botocore at module level (callers pass clients in), nor any
edgekit module but `errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edgekit.errors import (
    AccessDeniedError,
    AwsServiceError,
    EdgekitError,
    ResourceNotFoundError,
)

# Codes AWS services use for "that resource does not exist".
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ResourceNotFound",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchEntity",
        "404",
        "NotFound",
        "ValidationError.NotFound",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_TOKENS = ("nextToken", "NextToken")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ``ClientError`` (``str(exc)`` for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "") or exc)


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is an AWS 'no such resource' error."""
    return error_code(exc) in NOT_FOUND_CODES


def map_client_error(
    exc: BaseException,
    resource: str,
    action: str,
    *,
    hint: str = "",
    default: type[EdgekitError] = AwsServiceError,
) -> EdgekitError:
    """One edgekit exception for a failed AWS call on ``resource``.

    ``action`` says what edgekit was doing ("create deployment"), ``hint`` what the user
    can do about it. The caller raises the result ``from exc``.
    """
    code = error_code(exc)
    message = error_message(exc)
    cls: type[EdgekitError]
    if code in NOT_FOUND_CODES:
        cls = ResourceNotFoundError
    elif code in ACCESS_DENIED_CODES:
        cls = AccessDeniedError
        hint = hint or "check the credentials and the IAM permissions of the role edgekit runs as"
    else:
        cls = default
    text = f"{resource}: cannot {action}: {code + ': ' if code else ''}{message}"
    if hint:
        text += f" ({hint})"
    error = cls(text)
    if isinstance(error, AwsServiceError):
        error.code = code
        error.resource = resource
    return error


def paginate(
    client: Any, operation: str, key: str, /, **kwargs: Any
) -> Iterator[Mapping[str, Any]]:
    """Every item under ``key`` of every page of ``client.<operation>(**kwargs)``.

    Uses botocore's paginator when the service model defines one, else follows
    ``nextToken``/``NextToken`` by hand (some emulated operations have no paginator).
    """
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key) or []
        return
    yield from paginate_calls(getattr(client, operation), key, **kwargs)


def paginate_calls(
    method: Callable[..., Mapping[str, Any]], key: str, /, **kwargs: Any
) -> Iterator[Mapping[str, Any]]:
    """Every item under ``key`` of a list call, following its next-page token by hand."""
    seen: set[str] = set()
    while True:
        page = method(**kwargs)
        yield from page.get(key) or []
        name = next((name for name in _TOKENS if page.get(name)), None)
        if name is None:
            return
        token = str(page[name])
        if token in seen:  # a server that repeats a token would loop forever
            raise AwsServiceError(f"{key}: the service returned the page token {token!r} twice")
        seen.add(token)
        kwargs[name] = token
