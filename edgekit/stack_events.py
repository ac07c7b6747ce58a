"""What a CloudFormation stack says while it changes: its events, and a failure in words.

Owns: streaming new stack events, finding the resource that failed first, the
"what to do" advice per terminal status, and turning a failed call or a failed stack
into one :class:`~edgekit.errors.StackError` (or the access/not-found errors of
:mod:`edgekit.awsapi`). Used by :mod:`edgekit.stack`; imports no other edgekit
module but ``awsapi`` and ``errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from edgekit.awsapi import error_message, map_client_error, paginate
from edgekit.errors import EdgekitError, ResourceNotFoundError, StackError

# Secondary failures: resources CloudFormation stopped because another one failed.
CANCELLED = ("Resource creation cancelled", "Resource update cancelled")

WHAT_TO_DO = {
    "ROLLBACK_COMPLETE": (
        "the stack could not be created and was rolled back; fix the cause and deploy again "
        "(edgekit deletes a stack left in ROLLBACK_COMPLETE before retrying), or run "
        "`edgekit stack delete --name {name}`"
    ),
    "ROLLBACK_FAILED": (
        "the failed create could not be rolled back; delete the stack "
        "(`edgekit stack delete --name {name}`), retaining resources it cannot delete"
    ),
    "UPDATE_ROLLBACK_COMPLETE": (
        "the update was rolled back and the stack runs its previous template again; "
        "fix the cause and deploy again"
    ),
    "UPDATE_ROLLBACK_FAILED": (
        "the update could not be rolled back; fix the resource, then continue the rollback "
        "(`aws cloudformation continue-update-rollback --stack-name {name}`)"
    ),
    "DELETE_FAILED": (
        "fix or empty the resource named above, then run `edgekit stack delete --name {name}` again"
    ),
}


def stack_call_error(exc: BaseException, name: str, action: str, hint: str = "") -> EdgekitError:
    """The edgekit error for a CloudFormation call on stack ``name`` that AWS refused.

    AccessDeniedError when the call was denied, else StackError carrying the stack and
    AWS's reason: a "not found" answer to a stack call is about something the stack
    refers to (a bucket, a role), so it is a stack failure too. The caller raises it
    ``from exc``.
    """
    error = map_client_error(exc, f"stack {name}", action, hint=hint, default=StackError)
    if isinstance(error, ResourceNotFoundError):
        error = StackError(str(error))
    if isinstance(error, StackError):
        error.stack = name
        error.reason = error_message(exc)
    return error


class EventStream:
    """New stack events, oldest first, since the newest event seen at construction."""

    def __init__(self, cfn: Any, stack_id: str) -> None:
        self.cfn = cfn
        self.stack_id = stack_id
        self.seen: set[str] = set()
        newest = self._events()
        first = next(newest, None)
        newest.close()
        self.baseline = first["EventId"] if first else None

    def _events(self) -> Any:
        return paginate(self.cfn, "describe_stack_events", "StackEvents", StackName=self.stack_id)

    def poll(self) -> list[Mapping[str, Any]]:
        fresh: list[Mapping[str, Any]] = []
        try:
            for event in self._events():  # newest first
                if event["EventId"] == self.baseline or event["EventId"] in self.seen:
                    break
                fresh.append(event)
        except ClientError as exc:
            # Some endpoints (moto) forget a deleted stack's events; AWS keeps them.
            if "does not exist" not in error_message(exc):
                raise stack_call_error(exc, self.stack_id, "read its events") from exc
        for event in fresh:
            self.seen.add(event["EventId"])
        return list(reversed(fresh))


def first_failure(events: Sequence[Mapping[str, Any]], stack_name: str) -> Mapping[str, Any] | None:
    """The event of the resource that failed first (its own reason, not a cancellation)."""
    failed = [
        e
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("_FAILED")
        and e.get("LogicalResourceId") != stack_name
    ]
    for event in failed:
        if not str(event.get("ResourceStatusReason", "")).startswith(CANCELLED):
            return event
    return failed[0] if failed else None


def failure_error(
    action: str, name: str, status: str, events: Sequence[Mapping[str, Any]], stack_reason: str
) -> StackError:
    """StackError naming the first failed resource (else the stack's reason) and what to do."""
    event = first_failure(events, name)
    todo = WHAT_TO_DO.get(status, "see the stack's events in the CloudFormation console")
    if event is not None:
        logical = str(event.get("LogicalResourceId"))
        rtype = str(event.get("ResourceType"))
        reason = str(event.get("ResourceStatusReason") or "no reason given")
        return StackError(
            f"stack {name}: {action} failed ({status}): {logical} ({rtype}) "
            f"{event.get('ResourceStatus')}: {reason}. What to do: {todo.format(name=name)}",
            stack=name,
            status=status,
            logical_id=logical,
            resource_type=rtype,
            reason=reason,
        )
    reason = stack_reason or "no reason given"
    return StackError(
        f"stack {name}: {action} failed ({status}): {reason}. What to do: {todo.format(name=name)}",
        stack=name,
        status=status,
        reason=reason,
    )


__all__ = [
    "CANCELLED",
    "WHAT_TO_DO",
    "EventStream",
    "failure_error",
    "first_failure",
    "stack_call_error",
]
