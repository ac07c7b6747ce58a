"""Deploy on approval: the second stack (a state machine and an EventBridge rule), run by hand
and followed from its execution history.

``deploy_approval_stack`` uploads the definition (``cloudformation/deploy-on-approval.asl.json``,
built by :mod:`edgekit.workflow.approval_definition`) to the artifact bucket under a key
that names its sha256 (so a changed definition updates the stack) and deploys
``cloudformation/deploy-on-approval.yaml`` with :func:`edgekit.stack.deploy_stack`.
From then on an approval in the registry deploys with nothing of the user's running.
``start_execution`` starts one by hand (``edgekit pipeline deploy-approved``) and
``follow_execution`` reads ``GetExecutionHistory`` until the execution ends, reporting each
state entered, and raises :class:`WorkflowExecutionError` naming the failed state and its
cause. The same calls run against AWS and the local endpoints (moto executes the state
machine there: ``edgekit.local.moto_stepfunctions``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import map_client_error
from edgekit.components.profiles import profile_for
from edgekit.components.publish import account_id
from edgekit.deploy.proof import DEFAULT_MIN_RESULTS
from edgekit.errors import ConfigurationError, WorkflowExecutionError
from edgekit.settings import Settings
from edgekit.stack import StackResult, deploy_stack, stack_outputs
from edgekit.workflow.approval_definition import definition_path, template_path

DEFINITION_PREFIX = "edgekit/stepfunctions"
DEFAULT_STACK_SUFFIX = "deploy-on-approval"
DEFAULT_TIMEOUT = 1800.0
_ENDED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def default_stack_name(settings: Settings) -> str:
    return f"{settings.project_name}-{DEFAULT_STACK_SUFFIX}"


def deploy_approval_stack(
    settings: Settings | None = None,
    *,
    name: str | None = None,
    model_package_group: str | None = None,
    thing_group: str | None = None,
    bucket: str | None = None,
    package_bucket: str | None = None,
    poll_seconds: int = 15,
    max_polls: int = 80,
    min_results: int = DEFAULT_MIN_RESULTS,
    progress: bool = True,
) -> StackResult:
    """Create or update the deploy-on-approval stack (default: ``<project>-deploy-on-approval``).

    ``bucket``: where the definition goes (default: the artifact bucket
    ``components publish`` uses); ``package_bucket``: the bucket of the registered packages
    the workflow may read (default: ``bucket``).
    """
    if min_results < 1:
        raise ConfigurationError(
            f"min_results (--min-results) is {min_results}: each device must prove at least 1 "
            "result with the approved package"
        )
    settings = settings or Settings.from_env()
    s3 = clients.client("s3", settings)
    bucket = profile_for(settings).ensure_bucket(s3, bucket, account_id(settings))
    body = definition_path().read_bytes()
    key = f"{DEFINITION_PREFIX}/deploy-on-approval-{hashlib.sha256(body).hexdigest()[:16]}.asl.json"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except ClientError as exc:
        raise map_client_error(
            exc, f"s3://{bucket}/{key}", "upload the state machine definition (s3:PutObject)"
        ) from exc
    parameters = {
        "ModelPackageGroup": model_package_group or settings.model_name,
        "ThingGroupName": thing_group or settings.thing_group,
        "ModelComponent": settings.model_component,
        "AgentComponent": settings.agent_component,
        "InferenceComponent": settings.inference_component,
        "PackageBucket": package_bucket or bucket,
        "DefinitionBucket": bucket,
        "DefinitionKey": key,
        "PollSeconds": str(poll_seconds),
        "MaxPolls": str(max_polls),
        "MinResults": str(min_results),
    }
    return deploy_stack(
        name or default_stack_name(settings),
        template_path(),
        parameters,
        settings=settings,
        capabilities=("CAPABILITY_IAM",),
        progress=progress,
        poll=1.0 if settings.backend == "local" else 5.0,
    )


def state_machine_arn(settings: Settings | None = None, *, stack: str | None = None) -> str:
    settings = settings or Settings.from_env()
    name = stack or default_stack_name(settings)
    outputs = stack_outputs(name, settings=settings)
    arn = outputs.get("StateMachineArn")
    if not arn:
        raise ConfigurationError(
            f"stack {name} has no StateMachineArn output; deploy it with "
            "`edgekit stack deploy-approval`"
        )
    return arn


def start_execution(settings: Settings | None, arn: str, name: str | None = None) -> str:
    """Start the state machine ``arn`` by hand; returns the execution ARN."""
    sfn = clients.client("stepfunctions", settings)
    request: dict[str, Any] = {
        "stateMachineArn": arn,
        "input": json.dumps({"startedBy": "edgekit"}),
    }
    if name:
        request["name"] = name
    try:
        return str(sfn.start_execution(**request)["executionArn"])
    except ClientError as exc:
        raise map_client_error(exc, f"state machine {arn}", "start an execution") from exc


@dataclass
class ExecutionOutcome:
    """How an execution ended: its status, output and the states it went through."""

    arn: str
    status: str
    output: dict[str, Any] | None = None
    states: list[str] = field(default_factory=list)


def history(sfn: Any, arn: str) -> Iterator[dict[str, Any]]:
    """Every event of the execution, oldest first."""
    token: str | None = None
    while True:
        request: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        if token:
            request["nextToken"] = token
        page = sfn.get_execution_history(**request)
        yield from page.get("events") or []
        token = page.get("nextToken")
        if not token:
            return


def failure_of(events: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
    """(the state that failed, error, cause) from an execution's history."""
    names = {e["id"]: (e.get("stateEnteredEventDetails") or {}).get("name") for e in events}
    state: str | None = None
    error = cause = None
    for event in events:
        name = (event.get("stateEnteredEventDetails") or {}).get("name")
        if name:
            state = name
        for key, details in event.items():
            if key.endswith("FailedEventDetails") and isinstance(details, dict):
                error = details.get("error") or error
                cause = details.get("cause") or cause
                previous = event.get("previousEventId")
                if key != "executionFailedEventDetails" and names.get(previous):
                    state = names[previous]
    return state, error, cause


def follow_execution(
    settings: Settings | None,
    arn: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = 1.0,
    on_state: Callable[[str], None] | None = None,
) -> ExecutionOutcome:
    """Read the execution's history until it ends; ``on_state(name)`` for every state
    entered. WorkflowExecutionError (state, error, cause) unless it SUCCEEDED."""
    sfn = clients.client("stepfunctions", settings)
    deadline = time.monotonic() + timeout
    seen = 0
    states: list[str] = []
    while True:
        try:
            description = sfn.describe_execution(executionArn=arn)
            events = list(history(sfn, arn))
        except ClientError as exc:
            raise map_client_error(exc, f"execution {arn}", "read its history") from exc
        for event in events[seen:]:
            name = (event.get("stateEnteredEventDetails") or {}).get("name")
            if name:
                states.append(name)
                if on_state is not None:
                    on_state(name)
        seen = len(events)
        status = str(description["status"])
        if status in _ENDED:
            break
        if time.monotonic() >= deadline:
            raise WorkflowExecutionError(
                f"execution {arn} is still {status} after {timeout:.0f} s (last state: "
                f"{states[-1] if states else 'none'}); it goes on running: follow it in the "
                "Step Functions console or stop it with `aws stepfunctions stop-execution`",
                execution_arn=arn,
                status=status,
                state=states[-1] if states else None,
                error=None,
                cause=None,
            )
        time.sleep(poll)
    if status == "SUCCEEDED":
        output = json.loads(description.get("output") or "null")
        return ExecutionOutcome(arn, status, output if isinstance(output, dict) else None, states)
    state, error, cause = failure_of(events)
    error = error or description.get("error")
    cause = cause or description.get("cause")
    raise WorkflowExecutionError(
        f"deploy-on-approval execution {arn} {status} in state {state or '?'}: "
        f"{error or 'no error recorded'}: {cause or 'no cause recorded'}",
        execution_arn=arn,
        status=status,
        state=state,
        error=error,
        cause=cause,
    )


def executions(settings: Settings | None, arn: str) -> list[dict[str, Any]]:
    """The state machine's executions, newest first (ListExecutions)."""
    sfn = clients.client("stepfunctions", settings)
    try:
        rows = list(sfn.list_executions(stateMachineArn=arn).get("executions") or [])
    except ClientError as exc:
        raise map_client_error(exc, f"state machine {arn}", "list its executions") from exc
    return sorted(rows, key=lambda r: r.get("startDate") or 0, reverse=True)


__all__ = [
    "ExecutionOutcome",
    "default_stack_name",
    "deploy_approval_stack",
    "executions",
    "failure_of",
    "follow_execution",
    "history",
    "start_execution",
    "state_machine_arn",
]
