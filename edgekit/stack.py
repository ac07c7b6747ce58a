"""CloudFormation stacks: deploy through change sets, wait with progress, outputs, delete.

Every deploy goes through a change set (CREATE for a new stack, UPDATE for an existing
one), so an unchanged template and parameters are a no-op instead of an error, and the
same calls work against AWS and against the local moto endpoint. Waiting streams the
stack's events into a progress bar; a failure raises :class:`StackError` naming the
first resource that failed and why, with what to do next.

Owns: deploying, reading and deleting stacks. Parameter rules live in
:mod:`edgekit.stack_parameters`, event streaming and failure messages in
:mod:`edgekit.stack_events`; botocore errors become edgekit errors through
:mod:`edgekit.awsapi`. Imports nothing above ``clients`` (no provision, deploy, notebook).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, error_message, is_not_found, map_client_error, paginate
from edgekit.errors import StackError
from edgekit.progress import progress as progress_bar
from edgekit.resources import cloudformation_template
from edgekit.settings import Settings
from edgekit.stack_events import (
    WHAT_TO_DO,
    EventStream,
    failure_error,
    first_failure,
    stack_call_error,
)
from edgekit.stack_parameters import device_parameters, validate_parameters

log = logging.getLogger(__name__)

#: The Greengrass core device template installed with edgekit (cloudformation/ in the repo).
DEFAULT_TEMPLATE = cloudformation_template(must_exist=False)

# CloudFormation refuses a TemplateBody larger than this; bigger ones need TemplateURL.
MAX_TEMPLATE_BODY = 51_200

SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class StackResult:
    """What a deploy left behind."""

    name: str
    stack_id: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    changed: bool = True


# --------------------------------------------------------------------------------------
# Templates and parameters (checked before any call to AWS)


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """``!Ref X`` as ``{"Ref": X}``, ``!Sub ...`` as ``{"Fn::Sub": ...}`` (the long form)."""
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":  # !GetAtt Res.Attr is the long form's [Res, Attr]
            return {name: value.split(".", 1)}
        return {name: value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


class _CfnYamlLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags (!Ref, !Sub...), read as data."""


_CfnYamlLoader.add_multi_constructor("!", _short_form)


class _TemplateLoader:
    """A YAML loader that reads CloudFormation's short-form tags (!Ref, !Sub...) as data."""

    @staticmethod
    def load(text: str) -> Any:
        return yaml.load(text, Loader=_CfnYamlLoader)  # noqa: S506 - SafeLoader subclass


def load_template(template_path: str | Path) -> tuple[str, dict[str, Any]]:
    """The template's text and its parsed form; StackError naming the file if unreadable."""
    path = Path(template_path)
    try:
        body = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StackError(f"{path}: cannot read the template ({exc.strerror or exc})") from exc
    try:
        parsed = _TemplateLoader.load(body)
    except Exception as exc:  # yaml.YAMLError and friends; the message carries the line
        raise StackError(f"{path}: not a valid CloudFormation template: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("Resources"), dict):
        raise StackError(f"{path}: not a CloudFormation template (no Resources section)")
    if len(body.encode("utf-8")) > MAX_TEMPLATE_BODY:
        raise StackError(
            f"{path}: {len(body.encode('utf-8'))} bytes is over CloudFormation's "
            f"{MAX_TEMPLATE_BODY}-byte TemplateBody limit; shorten it or upload it to S3"
        )
    return body, parsed


def template_parameters(template_path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``Parameters`` section of a template (name -> declaration)."""
    _, parsed = load_template(template_path)
    return dict(parsed.get("Parameters") or {})


# --------------------------------------------------------------------------------------
# Reading stacks


def _client(client: Any, service: str, settings: Settings | None) -> Any:
    return client if client is not None else clients.client(service, settings)


def _describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        # CloudFormation says "Stack with id X does not exist" as a ValidationError.
        if error_code(exc) == "ValidationError" and "does not exist" in error_message(exc):
            return None
        raise stack_call_error(exc, name, "describe it") from exc
    return stacks[0] if stacks else None


def describe_stack(
    name: str, *, client: Any = None, settings: Settings | None = None
) -> dict[str, Any] | None:
    """The stack's DescribeStacks entry (status, parameters, outputs), or None if absent."""
    return _describe(_client(client, "cloudformation", settings), name)


def outputs_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    """A described stack's outputs as a dict ({} for None)."""
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}


def parameters_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    """A described stack's parameter values as a dict ({} for None)."""
    declared = (stack or {}).get("Parameters") or []
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in declared}


def stack_status(name: str, *, client: Any = None, settings: Settings | None = None) -> str | None:
    """The stack's status (e.g. ``CREATE_COMPLETE``), or None when there is no such stack."""
    stack = _describe(_client(client, "cloudformation", settings), name)
    return None if stack is None else str(stack["StackStatus"])


def stack_outputs(
    name: str, *, client: Any = None, settings: Settings | None = None
) -> dict[str, str]:
    """The stack's outputs as a dict; StackError if the stack does not exist."""
    stack = _describe(_client(client, "cloudformation", settings), name)
    if stack is None:
        raise StackError(
            f"stack {name} does not exist; deploy it first (`edgekit stack deploy --name {name}`)",
            stack=name,
        )
    return outputs_of(stack)


# --------------------------------------------------------------------------------------
# Events


def _wait(
    cfn: Any,
    name: str,
    stack_id: str,
    events: EventStream,
    *,
    action: str,
    total: int | None,
    show: bool,
    timeout: float,
    poll: float,
) -> dict[str, Any] | None:
    """Wait until the stack leaves *_IN_PROGRESS; the final description (None: deleted)."""
    deleting = action == "delete"
    history: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    delay = min(0.5, poll)
    with progress_bar(
        total=total, desc=f"{action} {name}", unit="resource", disable=None if show else True
    ) as bar:
        while True:
            for event in events.poll():
                history.append(event)
                status = str(event.get("ResourceStatus", ""))
                logical = event.get("LogicalResourceId")
                if logical != name and status.endswith("_COMPLETE"):
                    bar.update(1)
                bar.set_postfix_str(f"{logical} {status}", refresh=True)
            stack = _describe(cfn, stack_id)
            status = "DELETE_COMPLETE" if stack is None else str(stack["StackStatus"])
            if not status.endswith("_IN_PROGRESS"):
                done = status == "DELETE_COMPLETE" if deleting else status in SUCCESS
                if done:
                    if bar.total is not None and bar.n < bar.total:
                        bar.update(bar.total - bar.n)  # emulators may not emit resource events
                    return stack
                history.extend(events.poll())
                raise failure_error(
                    action, name, status, history, str((stack or {}).get("StackStatusReason", ""))
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"stack {name}: still {status} after {timeout:.0f} s; it keeps running in "
                    "CloudFormation - check it there, or wait and run the command again",
                    stack=name,
                    status=status,
                )
            time.sleep(delay)
            delay = min(delay * 2, poll)


# --------------------------------------------------------------------------------------
# Deploy


def deploy_stack(
    name: str,
    template_path: str | Path = DEFAULT_TEMPLATE,
    parameters: Mapping[str, Any] | None = None,
    *,
    client: Any = None,
    settings: Settings | None = None,
    capabilities: Sequence[str] = ("CAPABILITY_NAMED_IAM",),
    tags: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout: float = 3600.0,
    poll: float = 5.0,
    s3: Any = None,
    iot: Any = None,
) -> StackResult:
    """Create or update stack ``name`` from a template through a change set.

    An update without changes returns ``changed=False`` and touches nothing. A stack
    left in ROLLBACK_COMPLETE by an earlier failed create is deleted first (it cannot
    be updated). ``s3``/``iot`` clients are only used for that delete.
    """
    declared = template_parameters(template_path)
    body, _ = load_template(template_path)
    _check_stack_name(name)
    # Names and values first, before any call; required-but-missing needs the stack.
    validate_parameters(declared, parameters or {}, template=template_path, existing=declared)
    cfn = _client(client, "cloudformation", settings)

    stack = _describe(cfn, name)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        log.warning(
            "stack %s is in ROLLBACK_COMPLETE from an earlier failed create (%s); "
            "deleting it before creating it again",
            name,
            stack.get("StackStatusReason") or "no reason recorded",
        )
        delete_stack(name, client=cfn, settings=settings, s3=s3, iot=iot, progress=progress)
        stack = None
    if stack is not None:
        _check_updatable(name, str(stack["StackStatus"]))
    creating = stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS"
    existing = [] if creating else [p["ParameterKey"] for p in stack.get("Parameters") or []]
    cfn_parameters = validate_parameters(
        declared, parameters or {}, template=template_path, existing=existing
    )

    change_set = _create_change_set(
        cfn, name, body, cfn_parameters, capabilities, tags, "CREATE" if creating else "UPDATE"
    )
    if change_set is None:  # nothing to change
        current = _describe(cfn, name) or {}
        log.info("stack %s: no changes", name)
        return StackResult(
            name=name,
            stack_id=str(current.get("StackId", "")),
            status=str(current.get("StackStatus", "")),
            outputs=outputs_of(current),
            changed=False,
        )
    change_set_id, stack_id, total = change_set

    events = EventStream(cfn, stack_id)
    try:
        cfn.execute_change_set(ChangeSetName=change_set_id)
    except ClientError as exc:
        raise stack_call_error(exc, name, "run the change set") from exc
    final = _wait(
        cfn,
        name,
        stack_id,
        events,
        action="create" if creating else "update",
        total=total,
        show=progress,
        timeout=timeout,
        poll=poll,
    )
    assert final is not None
    return StackResult(
        name=name, stack_id=stack_id, status=str(final["StackStatus"]), outputs=outputs_of(final)
    )


_STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")


def _check_stack_name(name: str) -> None:
    if not _STACK_NAME.fullmatch(name):
        raise StackError(
            f"stack name {name!r} is not valid: start with a letter, then letters, digits "
            "and hyphens, at most 128 characters"
        )


def _check_updatable(name: str, status: str) -> None:
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise StackError(
            f"stack {name} is busy ({status}); wait until it finishes, then deploy again",
            stack=name,
            status=status,
        )
    if status in {"ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"}:
        todo = WHAT_TO_DO[status].format(name=name)
        raise StackError(
            f"stack {name} is in {status} and cannot be updated; {todo}", stack=name, status=status
        )


def _create_change_set(
    cfn: Any,
    name: str,
    body: str,
    parameters: list[dict[str, Any]],
    capabilities: Sequence[str],
    tags: Mapping[str, str] | None,
    change_set_type: str,
) -> tuple[str, str, int] | None:
    """Create and wait for a change set; (id, stack id, number of changes), None if empty."""
    change_set_name = f"edgekit-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    request: dict[str, Any] = {
        "StackName": name,
        "ChangeSetName": change_set_name,
        "ChangeSetType": change_set_type,
        "TemplateBody": body,
        "Parameters": parameters,
        "Capabilities": list(capabilities),
        "Description": "edgekit deploy",
    }
    if tags:
        request["Tags"] = [{"Key": k, "Value": str(v)} for k, v in tags.items()]
    try:
        created = cfn.create_change_set(**request)
    except ClientError as exc:
        raise stack_call_error(exc, name, "create a change set") from exc
    change_set_id, stack_id = created["Id"], created["StackId"]

    delay = 0.2
    deadline = time.monotonic() + 600
    while True:
        try:
            described = cfn.describe_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise stack_call_error(exc, name, "read its change set") from exc
        status = described["Status"]
        if status == "CREATE_COMPLETE":
            return change_set_id, stack_id, len(described.get("Changes") or [])
        if status == "FAILED":
            reason = str(described.get("StatusReason") or "")
            if any(marker in reason for marker in NO_CHANGES):
                try:
                    cfn.delete_change_set(ChangeSetName=change_set_id)
                except ClientError as exc:
                    raise stack_call_error(exc, name, "delete its empty change set") from exc
                return None
            raise StackError(
                f"stack {name}: change set failed: {reason or 'no reason given'}",
                stack=name,
                status=status,
                reason=reason,
            )
        if time.monotonic() > deadline:
            raise StackError(f"stack {name}: change set still {status} after 10 minutes")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


# --------------------------------------------------------------------------------------
# Delete


def _stack_resources(cfn: Any, name: str, stack_id: str) -> list[Mapping[str, Any]]:
    try:
        return list(
            paginate(cfn, "list_stack_resources", "StackResourceSummaries", StackName=stack_id)
        )
    except ClientError as exc:
        raise stack_call_error(exc, name, "list its resources") from exc


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker in ``bucket``; how many were removed."""
    removed = 0
    try:
        for kind in ("Versions", "DeleteMarkers"):
            batch: list[dict[str, str]] = []
            for item in paginate(s3, "list_object_versions", kind, Bucket=bucket):
                batch.append({"Key": item["Key"], "VersionId": item["VersionId"]})
                if len(batch) == _DELETE_BATCH:
                    removed += _delete_objects(s3, bucket, batch)
                    batch = []
            if batch:
                removed += _delete_objects(s3, bucket, batch)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            return removed
        raise map_client_error(
            exc, f"bucket {bucket}", "empty it", default=StackError, hint=_BUCKET_HINT
        ) from exc
    return removed


# DeleteObjects takes at most 1000 keys per request.
_DELETE_BATCH = 1000
_BUCKET_HINT = "empty the bucket by hand, or delete with --keep-objects and remove it later"


def _delete_objects(s3: Any, bucket: str, batch: list[dict[str, str]]) -> int:
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    errors = answer.get("Errors") or []
    if errors:
        first = errors[0]
        raise StackError(
            f"bucket {bucket}: cannot delete {first.get('Key')} "
            f"(version {first.get('VersionId')}): {first.get('Message')}; {_BUCKET_HINT}"
        )
    return len(batch)


def detach_iot_policy(iot: Any, policy_name: str) -> list[str]:
    """Detach an IoT policy from every target (e.g. device certificates); the targets."""
    targets: list[str] = []
    try:
        targets.extend(paginate(iot, "list_targets_for_policy", "targets", policyName=policy_name))
        for target in targets:
            iot.detach_policy(policyName=policy_name, target=target)
    except ClientError as exc:
        if is_not_found(exc):
            return targets
        raise map_client_error(
            exc,
            f"IoT policy {policy_name}",
            "detach it",
            default=StackError,
            hint="detach it from its certificates in the IoT console, then delete again",
        ) from exc
    return targets


def delete_stack(
    name: str,
    *,
    client: Any = None,
    settings: Settings | None = None,
    s3: Any = None,
    iot: Any = None,
    empty_buckets: bool = True,
    detach_iot_policies: bool = True,
    progress: bool = True,
    timeout: float = 3600.0,
    poll: float = 5.0,
) -> bool:
    """Delete stack ``name`` and wait; False if there was no such stack.

    CloudFormation cannot delete a bucket that still holds objects, nor an IoT policy
    still attached to a certificate (the Greengrass installer attaches the stack's
    policies to the device certificate it creates). So first, when asked, every object
    version and delete marker of the stack's buckets is deleted and the stack's IoT
    policies are detached from their targets.
    """
    cfn = _client(client, "cloudformation", settings)
    stack = _describe(cfn, name)
    if stack is None:
        log.info("stack %s does not exist; nothing to delete", name)
        return False
    stack_id = str(stack["StackId"])
    resources = _stack_resources(cfn, name, stack_id)
    for resource in resources:
        physical = resource.get("PhysicalResourceId")
        if not physical or resource.get("ResourceStatus") == "DELETE_COMPLETE":
            continue
        if empty_buckets and resource["ResourceType"] == "AWS::S3::Bucket":
            s3 = _client(s3, "s3", settings)
            removed = empty_bucket(s3, physical)
            log.info("bucket %s: deleted %d object version(s)", physical, removed)
        if detach_iot_policies and resource["ResourceType"] == "AWS::IoT::Policy":
            iot = _client(iot, "iot", settings)
            for target in detach_iot_policy(iot, physical):
                log.info("IoT policy %s: detached from %s", physical, target)

    events = EventStream(cfn, stack_id)
    try:
        cfn.delete_stack(StackName=stack_id)
    except ClientError as exc:
        raise stack_call_error(exc, name, "delete it") from exc
    _wait(
        cfn,
        name,
        stack_id,
        events,
        action="delete",
        total=len(resources) or None,
        show=progress,
        timeout=timeout,
        poll=poll,
    )
    return True


__all__ = [
    "DEFAULT_TEMPLATE",
    "StackError",
    "StackResult",
    "delete_stack",
    "deploy_stack",
    "describe_stack",
    "detach_iot_policy",
    "device_parameters",
    "empty_bucket",
    "first_failure",
    "load_template",
    "outputs_of",
    "parameters_of",
    "stack_outputs",
    "stack_status",
    "template_parameters",
    "validate_parameters",
]
