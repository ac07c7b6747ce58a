"""The error a request ends with: a gRPC status code name and a message.

Library code below the servicer raises :class:`AgentStatusError`; the
servicer turns it into the gRPC status, and the client turns a failed call
back into it. Codes are the names of ``grpc.StatusCode`` members, so this
module needs no grpc import.
"""

from __future__ import annotations

from edgekit.errors import AgentStatusError

__all__ = [
    "AgentStatusError",
    "already_exists",
    "failed_precondition",
    "invalid_argument",
    "not_found",
]


def not_found(details: str) -> AgentStatusError:
    return AgentStatusError("NOT_FOUND", details)


def invalid_argument(details: str) -> AgentStatusError:
    return AgentStatusError("INVALID_ARGUMENT", details)


def failed_precondition(details: str) -> AgentStatusError:
    return AgentStatusError("FAILED_PRECONDITION", details)


def already_exists(details: str) -> AgentStatusError:
    return AgentStatusError("ALREADY_EXISTS", details)
