"""CloudFormation stacks: deploy through change sets, wait with progress, outputs, delete.

Every deploy goes through a change set (CREATE for a new stack, UPDATE for an existing
one), so an unchanged template and parameters are a no-op instead of an error, and the
same calls work against AWS and against the local moto endpoint. Waiting streams the
stack's events into a progress bar; a failure raises :class:`StackError` naming the
first resource that failed and why, with what to do next.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import EdgekitError
from edgekit.progress import progress as progress_bar

if TYPE_CHECKING:
    from edgekit.settings import Settings

log = logging.getLogger(__name__)

#: The Greengrass core device template shipped in the repository.
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-device.yaml"

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
# Secondary failures: resources CloudFormation stopped because another one failed.
_CANCELLED = ("Resource creation cancelled", "Resource update cancelled")

_WHAT_TO_DO = {
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


class StackError(EdgekitError):
    """A stack could not be deployed, read or deleted; names the resource and the reason."""

    def __init__(
        self,
        message: str,
        *,
        stack: str | None = None,
        status: str | None = None,
        logical_id: str | None = None,
        resource_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.stack = stack
        self.status = status
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


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


class _TemplateLoader:
    """A YAML loader that reads CloudFormation's short-form tags (!Ref, !Sub...) as data."""

    @staticmethod
    def load(text: str) -> Any:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
            name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
                if suffix == "GetAtt":  # !GetAtt Res.Attr is the long form's [Res, Attr]
                    return {name: value.split(".", 1)}
                return {name: value}
            if isinstance(node, yaml.SequenceNode):
                return {name: loader.construct_sequence(node, deep=True)}
            return {name: loader.construct_mapping(node, deep=True)}

        Loader.add_multi_constructor("!", tag)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass


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


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(v) for v in value)
    return str(value)


def validate_parameters(
    declared: Mapping[str, Mapping[str, Any]],
    given: Mapping[str, Any],
    *,
    template: str | Path = "template",
    existing: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """CloudFormation ``Parameters`` for ``given``, or StackError naming the bad parameter.

    Unknown names, missing required values (no ``Default``) and values outside
    ``AllowedValues``/``AllowedPattern``/length limits fail here, before AWS is called.
    A required parameter the stack already has (``existing``) keeps its previous value.
    """
    known = ", ".join(sorted(declared)) or "none"
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StackError(
            f"{template}: unknown parameter(s) {', '.join(unknown)}; the template declares: {known}"
        )
    existing = set(existing)
    result: list[dict[str, Any]] = []
    missing: list[str] = []
    for name, decl in declared.items():
        if name in given:
            value = _as_text(given[name])
            _check_value(name, value, decl, template)
            result.append({"ParameterKey": name, "ParameterValue": value})
        elif "Default" in decl:
            continue  # CloudFormation applies the default
        elif name in existing:
            result.append({"ParameterKey": name, "UsePreviousValue": True})
        else:
            missing.append(name)
    if missing:
        raise StackError(
            f"{template}: missing required parameter(s) {', '.join(missing)} (no Default in "
            "the template); pass them, e.g. --param "
            + " --param ".join(f"{m}=..." for m in missing)
        )
    return result


def _check_value(name: str, value: str, decl: Mapping[str, Any], template: str | Path) -> None:
    allowed = decl.get("AllowedValues")
    if allowed is not None and value not in [_as_text(a) for a in allowed]:
        raise StackError(
            f"{template}: parameter {name}={value!r} is not one of "
            + ", ".join(_as_text(a) for a in allowed)
        )
    pattern = decl.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        hint = decl.get("ConstraintDescription") or decl.get("Description") or ""
        raise StackError(
            f"{template}: parameter {name}={value!r} does not match {pattern}"
            + (f" ({hint})" if hint else "")
        )
    for key, ok in (
        ("MinLength", lambda n: len(value) >= n),
        ("MaxLength", lambda n: len(value) <= n),
    ):
        if key in decl and not ok(int(decl[key])):
            raise StackError(f"{template}: parameter {name}={value!r} breaks {key}={decl[key]}")
    if decl.get("Type") == "Number":
        try:
            float(value)
        except ValueError:
            raise StackError(f"{template}: parameter {name}={value!r} is not a number") from None


def device_parameters(settings: Settings, **overrides: Any) -> dict[str, str]:
    """Parameters of the shipped device template that follow from ``settings``."""
    params = {
        "ProjectName": settings.project_name,
        "ThingGroupName": settings.thing_group,
        "TopicPrefix": settings.results_topic.split("/", 1)[0],
    }
    params.update({k: _as_text(v) for k, v in overrides.items() if v is not None})
    return params


# --------------------------------------------------------------------------------------
# Reading stacks


def _client(client: Any, service: str, settings: Settings | None) -> Any:
    if client is not None:
        return client
    from edgekit.clients import client as make_client

    return make_client(service, settings)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _error_message(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))


def _describe(cfn: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if _error_code(exc) == "ValidationError" and "does not exist" in _error_message(exc):
            return None
        raise StackError(f"stack {name}: cannot describe it: {_error_message(exc)}") from exc
    return stacks[0] if stacks else None


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


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
    return _outputs(stack)


# --------------------------------------------------------------------------------------
# Events


class _EventStream:
    """New stack events, oldest first, since the newest event seen at construction."""

    def __init__(self, cfn: Any, stack_id: str) -> None:
        self.cfn = cfn
        self.stack_id = stack_id
        self.seen: set[str] = set()
        newest = self._pages()
        first = next(newest, None)
        newest.close()
        self.baseline = first["EventId"] if first else None

    def _pages(self) -> Iterator[dict[str, Any]]:
        paginator = self.cfn.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=self.stack_id):
            yield from page["StackEvents"]

    def poll(self) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        fresh: list[dict[str, Any]] = []
        try:
            for event in self._pages():  # newest first
                if event["EventId"] == self.baseline or event["EventId"] in self.seen:
                    break
                fresh.append(event)
        except ClientError as exc:
            # Some endpoints (moto) forget a deleted stack's events; AWS keeps them.
            if "does not exist" not in _error_message(exc):
                raise
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
        if not str(event.get("ResourceStatusReason", "")).startswith(_CANCELLED):
            return event
    return failed[0] if failed else None


def _failure_error(
    action: str, name: str, status: str, events: Sequence[Mapping[str, Any]], stack_reason: str
) -> StackError:
    event = first_failure(events, name)
    todo = _WHAT_TO_DO.get(status, "see the stack's events in the CloudFormation console")
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


def _wait(
    cfn: Any,
    name: str,
    stack_id: str,
    events: _EventStream,
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
                raise _failure_error(
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
            outputs=_outputs(current),
            changed=False,
        )
    change_set_id, stack_id, total = change_set

    events = _EventStream(cfn, stack_id)
    from botocore.exceptions import ClientError

    try:
        cfn.execute_change_set(ChangeSetName=change_set_id)
    except ClientError as exc:
        raise StackError(
            f"stack {name}: CloudFormation refused to run the change set: {_error_message(exc)}",
            stack=name,
            reason=_error_message(exc),
        ) from exc
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
        name=name, stack_id=stack_id, status=str(final["StackStatus"]), outputs=_outputs(final)
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
        todo = _WHAT_TO_DO[status].format(name=name)
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
    from botocore.exceptions import ClientError

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
        raise StackError(
            f"stack {name}: cannot create a change set: {_error_message(exc)}",
            stack=name,
            reason=_error_message(exc),
        ) from exc
    change_set_id, stack_id = created["Id"], created["StackId"]

    delay = 0.2
    deadline = time.monotonic() + 600
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id)
        status = described["Status"]
        if status == "CREATE_COMPLETE":
            return change_set_id, stack_id, len(described.get("Changes") or [])
        if status == "FAILED":
            reason = str(described.get("StatusReason") or "")
            if any(marker in reason for marker in NO_CHANGES):
                cfn.delete_change_set(ChangeSetName=change_set_id)
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


def _stack_resources(cfn: Any, stack_id: str) -> list[dict[str, Any]]:
    paginator = cfn.get_paginator("list_stack_resources")
    return [
        summary
        for page in paginator.paginate(StackName=stack_id)
        for summary in page["StackResourceSummaries"]
    ]


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker in ``bucket``; how many were removed."""
    from botocore.exceptions import ClientError

    removed = 0
    paginator = s3.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(Bucket=bucket):
            batch = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for item in page.get(kind) or []
            ]
            for start in range(0, len(batch), 1000):
                chunk = batch[start : start + 1000]
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                errors = answer.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise StackError(
                        f"bucket {bucket}: cannot delete {first.get('Key')} "
                        f"(version {first.get('VersionId')}): {first.get('Message')}"
                    )
                removed += len(chunk)
    except ClientError as exc:
        if _error_code(exc) == "NoSuchBucket":
            return removed
        raise StackError(f"bucket {bucket}: cannot empty it: {_error_message(exc)}") from exc
    return removed


def detach_iot_policy(iot: Any, policy_name: str) -> list[str]:
    """Detach an IoT policy from every target (e.g. device certificates); the targets."""
    from botocore.exceptions import ClientError

    targets: list[str] = []
    try:
        paginator = iot.get_paginator("list_targets_for_policy")
        for page in paginator.paginate(policyName=policy_name):
            targets.extend(page.get("targets") or [])
        for target in targets:
            iot.detach_policy(policyName=policy_name, target=target)
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return targets
        raise StackError(
            f"IoT policy {policy_name}: cannot detach it: {_error_message(exc)}"
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
    resources = _stack_resources(cfn, stack_id)
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

    events = _EventStream(cfn, stack_id)
    from botocore.exceptions import ClientError

    try:
        cfn.delete_stack(StackName=stack_id)
    except ClientError as exc:
        raise StackError(
            f"stack {name}: cannot delete it: {_error_message(exc)}",
            stack=name,
            reason=_error_message(exc),
        ) from exc
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
    "detach_iot_policy",
    "device_parameters",
    "empty_bucket",
    "first_failure",
    "load_template",
    "stack_outputs",
    "stack_status",
    "template_parameters",
    "validate_parameters",
]
