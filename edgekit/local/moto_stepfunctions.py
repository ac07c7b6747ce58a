"""Step Functions on the local backend: moto runs the state machines, as on AWS.

moto can execute state machines (its ``stepfunctions`` configuration
``execute_state_machine``), but out of the box the deploy-on-approval workflow cannot run
on it. This module closes each gap the way AWS behaves, in the moto server process:

- **execution on**: the configuration flag is set, so ``StartExecution`` runs the
  definition (moto's ASL interpreter) instead of only recording it.
- **execution names**: one started without a name gets a UUID, as on AWS (moto named
  it "None", so a second one failed with ExecutionAlreadyExists).
- **where ``aws-sdk:`` tasks land**: moto's interpreter makes a boto3 client per task,
  pointed at ``http://localhost:<MOTO_PORT>``. ``greengrassv2`` is not moto's here:
  edgekit's own control plane answers it on another port, which the moto server reads
  from the Greengrass emulator's port file at each call (the emulator may restart on
  another port). Every other service goes to this moto server, on ``127.0.0.1``.
- **service and error names**: Step Functions calls IoT's data plane ``iotdataplane``
  (botocore: ``iot-data``) and names its errors ``IotDataPlane.<Error>``; a blob in a
  result (GetThingShadow's ``Payload``) comes back as its text, for ``States.StringToJson``.
- **timestamps in Choice rules**: RFC 3339 with fractional seconds and offsets, as on AWS
  (moto compared only whole seconds with a Z); ``$$.Execution.StartTime`` is a string with
  milliseconds, as on AWS (moto put a datetime object there).
- **parameter and response names of ``aws-sdk:`` tasks**: on AWS they are PascalCase
  even where the service API is camelCase (``TargetArn`` for Greengrass's ``targetArn``),
  and so are the fields of the result. moto passes them through unchanged; here they are
  mapped to and from botocore's member names with the operation's shapes (structures,
  lists and map values: a map's keys, such as component names, stay as written).
- **CloudFormation**: moto's ``AWS::StepFunctions::StateMachine`` handler reads only
  ``DefinitionString`` and creates the state machine in the backend that does not
  execute. Ours also reads ``Definition``, ``DefinitionS3Location`` (from moto's S3) and
  ``DefinitionSubstitutions`` and creates it where ``StartExecution`` looks.
- **EventBridge to Step Functions**: moto's rules deliver to logs, SQS, event buses and
  API destinations, not to state machines; a rule target that is a state machine now
  starts an execution with the event (or the target's ``Input``) as input.
- **SageMaker's UpdateModelPackage** replaced the customer metadata and the approval
  description with None when a request left them out; it keeps them now, as SageMaker does.
- **SageMaker's events**: moto's SageMaker emits none. Like SageMaker on AWS, creating a
  model package and changing its approval status now puts a "SageMaker Model Package
  State Change" event (source ``aws.sagemaker``) on the default event bus, so a plain
  boto3 ``update_model_package(ModelApprovalStatus="Approved")`` starts the rule's target.

Call :func:`install` once in the moto server process, before it serves requests.
Imports moto at the top: only the moto server process and tests import it. Must not
import any edgekit module but ``errors`` and ``moto_backends`` (whose snapshot saves
an execution without its worker thread: running ones as ABORTED).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.core.config import default_user_config
from moto.core.models import botocore_stubber
from moto.events import models as events_models
from moto.s3.models import s3_backends
from moto.sagemaker import models as sagemaker_models
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.is_operator import (  # noqa: E501
    IsTimestamp,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk,
)
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.parser.utils import camel_to_snake_case, snake_to_camel_case
from moto.stepfunctions.responses import get_backend as sfn_backend
from moto.utilities.utils import get_partition

from edgekit.errors import LocalBackendError
from edgekit.local.moto_backends import SNAPSHOT_REDUCERS

HOST = "127.0.0.1"
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
# Services whose aws-sdk tasks go to edgekit's Greengrass control plane, not to moto.
GREENGRASS_SERVICES = frozenset({"greengrassv2"})
# Step Functions' aws-sdk service names that are not botocore's, and the service part of
# their error names (``IotDataPlane.ResourceNotFoundException``).
SFN_TO_BOTO_SERVICE = {"iotdataplane": "iot-data"}
SFN_ERROR_SERVICE = {"iotdataplane": "IotDataPlane", "greengrassv2": "GreengrassV2"}

# A Choice rule's timestamp: RFC 3339 with an uppercase T, and Z or a numeric offset;
# fractional seconds allowed (``$$.Execution.StartTime`` has milliseconds on AWS).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)

_installed = False
_lock = threading.Lock()
_botocore = botocore.session.get_session()


class _Routes:
    """Where the aws-sdk tasks' clients connect: this moto server, or the emulator."""

    def __init__(self, moto_port: int, greengrass_port_file: Path | None) -> None:
        self.moto_port = moto_port
        self.greengrass_port_file = greengrass_port_file

    def url_for(self, service: str) -> str:
        if service in GREENGRASS_SERVICES:
            if self.greengrass_port_file is None:
                raise LocalBackendError(
                    f"a state machine called {service}, but this moto server was started "
                    "without --greengrass-port-file; start it with `edgekit local up`"
                )
            try:
                port = int(self.greengrass_port_file.read_text().strip())
            except (OSError, ValueError) as exc:
                raise LocalBackendError(
                    f"{self.greengrass_port_file}: cannot read the Greengrass emulator's port "
                    f"({exc}); is it running? `edgekit local up` starts it"
                ) from exc
            return f"http://{HOST}:{port}"
        return f"http://{HOST}:{self.moto_port}"


_routes: _Routes | None = None


def _client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto's ``boto_client_for``, pointed at the endpoint that serves ``service`` here."""
    if _routes is None:  # pragma: no cover - install() sets it
        raise LocalBackendError("edgekit.local.moto_stepfunctions.install() was not called")
    # In-process moto (its decorator, in tests) intercepts the calls itself, as in moto's
    # own boto_client_for; the moto server process routes them.
    endpoint = None if botocore_stubber.enabled else _routes.url_for(service)
    return boto3.client(
        service_name=service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=60,
            read_timeout=60,
        ),
    )


def _operation(task: Any) -> Any:
    service = task._get_boto_service_name()
    action = task.resource.api_action
    model = _botocore.get_service_model(service)
    return model.operation_model(action[:1].upper() + action[1:])


def _to_boto(value: Any, shape: Any) -> Any:
    """A task's parameter value with botocore's member names (PascalCase ``TargetArn`` ->
    ``targetArn``), down through structures, lists and map values (map keys, such as
    component names, stay as written); an object for a blob becomes its JSON bytes."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = {camel_to_snake_case(name): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = members.get(camel_to_snake_case(key), key)
            out[name] = _to_boto(item, shape.members.get(name))
        return out
    if kind == "list" and isinstance(value, list):
        return [_to_boto(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _to_boto(item, shape.value) for key, item in value.items()}
    if kind == "blob" and not isinstance(value, bytes):
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return text.encode("utf-8")
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value)
    return value


def _to_sfn(value: Any, shape: Any) -> Any:
    """A service's result with PascalCase field names, as Step Functions returns it."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {
            snake_to_camel_case(camel_to_snake_case(key)): _to_sfn(item, shape.members.get(key))
            for key, item in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_to_sfn(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _to_sfn(item, shape.value) for key, item in value.items()}
    if kind == "blob":
        # A blob result (GetThingShadow's payload, S3's Body) is its text, as on AWS.
        data = value.read() if hasattr(value, "read") else value
        return data.decode("utf-8") if isinstance(data, bytes) else data
    return value


def _rfc3339(text: Any) -> datetime | None:
    """A Choice rule's timestamp as an aware datetime, None when it is not one (moto read
    only ``%Y-%m-%dT%H:%M:%SZ``, so a time with milliseconds compared as no timestamp)."""
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    fraction = (match.group(7) or "0")[:6].ljust(6, "0")
    zone = match.group(8)
    offset = timedelta(0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        return datetime(
            *(int(match.group(n)) for n in range(1, 7)),
            int(fraction),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None


def _aws_time(value: Any) -> Any:
    """A datetime as the context object's times read on AWS: ``2026-12-06T05:30:00.123Z``."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _with_string_start_time(make_environment: Any) -> Any:
    """moto's evaluation environment, ``$$.Execution.StartTime`` a string as on AWS (moto put
    the datetime there, which no Choice rule or intrinsic function could use)."""

    def environment(self: Any) -> Any:
        env = make_environment(self)
        execution = env.states.context_object.context_object_data["Execution"]
        execution["StartTime"] = _aws_time(execution.get("StartTime"))
        return env

    return environment


def _normalise_parameters(self: Any, parameters: dict[str, Any], *_: Any, **__: Any) -> None:
    """PascalCase parameters (as AWS takes them) to the operation's member names."""
    converted = _to_boto(dict(parameters), _operation(self).input_shape)
    parameters.clear()
    parameters.update(converted)


def _normalise_response(self: Any, response: Any, *_: Any, **__: Any) -> None:
    """The operation's result with PascalCase field names, as AWS returns it."""
    if isinstance(response, dict):
        converted = _to_sfn(dict(response), _operation(self).output_shape)
        response.clear()
        response.update(converted)


_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


def definition_of(properties: dict[str, Any], account_id: str) -> str:
    """The definition a state machine resource names, with its substitutions made."""
    if "DefinitionString" in properties:
        text = str(properties["DefinitionString"])
    elif "Definition" in properties:
        text = json.dumps(properties["Definition"])
    elif "DefinitionS3Location" in properties:
        location = properties["DefinitionS3Location"]
        bucket, key = location["Bucket"], location["Key"]
        s3 = s3_backends[account_id][get_partition("us-east-1")]
        try:
            text = s3.get_object(bucket, key).value.decode("utf-8")
        except Exception as exc:  # moto raises its own MissingBucket / MissingKey
            raise LocalBackendError(
                f"DefinitionS3Location s3://{bucket}/{key}: cannot read it ({exc!r}); "
                "upload the definition before deploying the stack"
            ) from exc
    else:
        raise LocalBackendError(
            "AWS::StepFunctions::StateMachine: no Definition, DefinitionString or "
            "DefinitionS3Location"
        )
    substitutions = {
        str(k): str(v) for k, v in (properties.get("DefinitionSubstitutions") or {}).items()
    }

    def one(match: re.Match[str]) -> str:
        # As on AWS: a ${Name} without a substitution stays as it is.
        return substitutions.get(match.group(1), match.group(0))

    return _SUBSTITUTION.sub(one, text)


class StateMachineResource(sfn_models.StateMachine, CloudFormationModel):
    """``AWS::StepFunctions::StateMachine`` created where StartExecution finds it."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return "StateMachineName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::StepFunctions::StateMachine"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        name = properties.get("StateMachineName", resource_name)
        definition = definition_of(properties, account_id)
        tags = [{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags", [])]
        backend = sfn_backend(account_id, region_name)
        return backend.create_state_machine(
            name, definition, properties.get("RoleArn", ""), tags=tags
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        backend = sfn_backend(account_id, region_name)
        name = properties.get("StateMachineName", original_resource.name)
        if name != original_resource.name:
            new = cls.create_from_cloudformation_json(
                name, cloudformation_json, account_id, region_name
            )
            backend.delete_state_machine(original_resource.arn)
            return new
        return backend.update_state_machine(
            original_resource.arn,
            definition=definition_of(properties, account_id),
            role_arn=properties.get("RoleArn"),
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        backend = sfn_backend(account_id, region_name)
        arn = resource_name
        if not arn.startswith("arn:"):
            found = [sm.arn for sm in backend.state_machines if sm.name == resource_name]
            if not found:
                return
            arn = found[0]
        backend.delete_state_machine(arn)


def _state_machine(target: Mapping[str, Any]) -> list[str] | None:
    """The ARN parts of a target that is a state machine, else None."""
    parts = str(target.get("Arn", "")).split(":")
    if len(parts) < 7 or parts[2] != "states" or parts[5] != "stateMachine":
        return None
    return parts


def _with_state_machine_targets(send: Any) -> Any:
    """moto's ``Rule.send_to_targets`` (which refuses a state machine target), plus: each
    state machine target starts one execution, its input the event (or the target's Input)."""

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        machines = [t for t in self.targets if _state_machine(t) is not None]
        if not machines:
            send(self, original_event, transform_input)
            return
        others = [t for t in self.targets if _state_machine(t) is None]
        if others:
            rest = copy.copy(self)
            rest.targets = others
            send(rest, original_event, transform_input)
        if not self.event_pattern.matches_event(original_event):
            return
        for target in machines:
            parts = _state_machine(target) or []
            payload = target.get("Input") or json.dumps(original_event, default=str)
            sfn_backend(parts[4], parts[3]).start_execution(
                state_machine_arn=target["Arn"],
                name=str(uuid.uuid4()),
                execution_input=payload,
            )

    return send_to_targets


def model_package_event(package: Any) -> dict[str, Any]:
    """The Detail of SageMaker's "Model Package State Change" event for ``package``."""
    return {
        "ModelPackageGroupName": package.model_package_group_name,
        "ModelPackageVersion": package.model_package_version,
        "ModelPackageArn": package.arn,
        "ModelPackageName": package.model_package_name,
        "ModelApprovalStatus": package.model_approval_status,
        "ModelPackageStatus": "Completed",
        "CreationTime": str(package.creation_time),
    }


def _emit(backend: Any, package: Any) -> None:
    events = events_models.events_backends[backend.account_id][backend.region_name]
    events.put_events(
        [
            {
                "Source": EVENT_SOURCE,
                "DetailType": EVENT_DETAIL_TYPE,
                "Detail": json.dumps(model_package_event(package)),
                "Resources": [package.arn],
            }
        ]
    )


def _emitting_update(update: Any) -> Any:
    """moto's UpdateModelPackage, which (1) now emits the state change event when the
    approval status changes, and (2) like SageMaker keeps the customer metadata and the
    approval description a request does not mention (moto replaced them with None, so a
    plain ``update_model_package(ModelApprovalStatus="Approved")`` lost edgekit's facts);
    given metadata keys are added or replaced, ``CustomerMetadataPropertiesToRemove``
    removed, as on AWS."""

    def update_model_package(
        self: Any,
        model_package_arn: str,
        model_approval_status: str | None = None,
        approval_description: str | None = None,
        customer_metadata_properties: dict[str, str] | None = None,
        customer_metadata_properties_to_remove: list[str] | None = None,
        additional_inference_specifications_to_add: list[Any] | None = None,
    ) -> str:
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        current = self.model_packages.get(name)
        before = getattr(current, "model_approval_status", None)
        old_props = dict(getattr(current, "customer_metadata_properties", None) or {})
        merged = {**old_props, **(customer_metadata_properties or {})}
        if approval_description is None:
            approval_description = getattr(current, "approval_description", None)
        arn = update(
            self,
            model_package_arn=model_package_arn,
            model_approval_status=model_approval_status,
            approval_description=approval_description,
            customer_metadata_properties=merged if (merged or old_props) else None,
            customer_metadata_properties_to_remove=customer_metadata_properties_to_remove or [],
            additional_inference_specifications_to_add=additional_inference_specifications_to_add,
        )
        package = self.model_packages.get(name)
        if package is not None and package.model_approval_status != before:
            _emit(self, package)
        return str(arn)

    return update_model_package


def _emitting_create(create: Any) -> Any:
    def create_model_package(self: Any, *args: Any, **kwargs: Any) -> Any:
        arn = create(self, *args, **kwargs)
        name = self.model_package_name_mapping.get(arn, arn)
        package = self.model_packages.get(name)
        if package is not None and package.model_package_group_name:
            _emit(self, package)
        return arn

    return create_model_package


class _Events:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def get_event_history(self) -> list[Any]:
        return list(self.events)


class _Env:
    def __init__(self, events: list[Any]) -> None:
        self.event_manager = _Events(events)


class RecordedWorker:
    """What a saved execution keeps of its worker thread: the history it wrote."""

    def __init__(self, events: list[Any]) -> None:
        self.env = _Env(events)

    def stop(self, **_: Any) -> None:
        """Nothing runs any more."""


def _restored_execution(state: dict[str, Any]) -> Execution:
    execution = Execution.__new__(Execution)
    execution.__dict__.update(state)
    return execution


def _reduce_execution(execution: Execution) -> tuple[Any, tuple[dict[str, Any]]]:
    """An execution for the moto snapshot: its worker thread becomes the history it
    recorded, and one still RUNNING is saved as ABORTED (no thread resumes it after a
    restart, as on AWS nothing of a lost execution would)."""
    state = dict(execution.__dict__)
    worker = state.get("exec_worker")
    env = getattr(worker, "env", None)
    events = list(env.event_manager.get_event_history()) if env is not None else []
    state["exec_worker"] = RecordedWorker(events)
    if state.get("exec_status") == ExecutionStatus.RUNNING:
        state["exec_status"] = ExecutionStatus.ABORTED
        state["error"] = "edgekit.MotoRestarted"
        state["cause"] = "the local moto server saved its state while this execution ran"
    return _restored_execution, (state,)


def _named(start: Any) -> Any:
    """moto's StartExecution, which named an execution started without a name "None" (so a
    second one failed with ExecutionAlreadyExists); AWS names it with a UUID."""

    def start_execution(
        self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        return start(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    return start_execution


def install(*, moto_port: int, greengrass_port_file: Path | None) -> None:
    """Apply every change above to this process's moto (once; later calls update the
    ports only)."""
    global _installed, _routes
    with _lock:
        _routes = _Routes(moto_port, greengrass_port_file)
        if _installed:
            return
        default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
        SNAPSHOT_REDUCERS[Execution] = _reduce_execution
        aws_sdk.boto_client_for = _client_for
        service = aws_sdk.StateTaskServiceAwsSdk
        service._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
        service._normalise_response = _normalise_response  # type: ignore[method-assign]
        service._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES = {  # type: ignore[misc]
            **service._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES,
            **SFN_TO_BOTO_SERVICE,
        }
        aws_sdk._SERVICE_ERROR_NAMES.update(SFN_ERROR_SERVICE)
        IsTimestamp.string_to_timestamp = staticmethod(_rfc3339)  # type: ignore[method-assign]
        ExecutionWorker._get_evaluation_environment = _with_string_start_time(  # type: ignore[method-assign]
            ExecutionWorker._get_evaluation_environment
        )
        parser = StepFunctionsParserBackend
        parser.start_execution = _named(parser.start_execution)  # type: ignore[method-assign]
        rule = events_models.Rule
        rule.send_to_targets = _with_state_machine_targets(rule.send_to_targets)  # type: ignore[method-assign]
        backend = sagemaker_models.SageMakerModelBackend
        backend.update_model_package = _emitting_update(backend.update_model_package)  # type: ignore[method-assign]
        backend.create_model_package = _emitting_create(backend.create_model_package)  # type: ignore[method-assign]
        parsing.get_model_list.cache_clear()
        parsing.get_model_map.cache_clear()
        parsing.get_name_type_map.cache_clear()
        if parsing.get_model_map().get(StateMachineResource.cloudformation_type()) is not (
            StateMachineResource
        ):  # pragma: no cover
            raise LocalBackendError(
                "moto did not take edgekit's AWS::StepFunctions::StateMachine handler; "
                "install the moto version pyproject.toml names"
            )
        _installed = True


__all__ = ["EVENT_DETAIL_TYPE", "EVENT_SOURCE", "definition_of", "install", "model_package_event"]
