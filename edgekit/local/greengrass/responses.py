"""REST-JSON protocol of the local Greengrass control plane.

Requests are parsed and validated, and responses serialized, from botocore's
own ``greengrassv2`` service model: members are read from the URI, query
string, headers or JSON body as the model says, checked against the model's
constraints (required, enums, lengths, ranges, patterns), and errors come back
in the AWS REST-JSON error shape with ``x-amzn-ErrorType``, so boto3 raises the
same modeled exceptions it raises against AWS.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from botocore.model import OperationModel, Shape

from edgekit.local.greengrass import urls
from edgekit.local.greengrass.api_model import service_model
from edgekit.local.greengrass.errors import (
    GreengrassApiError,
    InternalServerException,
    ValidationException,
)
from edgekit.local.greengrass.models import GreengrassBackend
from edgekit.recipes import nesting_problem, too_deep_message

log = logging.getLogger(__name__)


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


# --- request parsing ----------------------------------------------------------------


def _fail(name: str, message: str, value: Any = None) -> ValidationException:
    shown = "" if value is None else f"Value {_short(value)!r} at "
    text = f"1 validation error detected: {shown}'{name}' failed to satisfy constraint: {message}"
    return ValidationException(text, fields=[{"name": name, "message": message}])


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def _coerce_scalar(shape: Shape, raw: str, name: str) -> Any:
    """A URI/query/header string as the member's type."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            raise _fail(name, "Member must be an integer", raw) from None
    if kind in ("float", "double"):
        try:
            return float(raw)
        except ValueError:
            raise _fail(name, "Member must be a number", raw) from None
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise _fail(name, "Member must be true or false", raw)
        return raw.lower() == "true"
    return raw


def _from_json(shape: Shape, value: Any, name: str) -> Any:
    """A JSON body value as Python data of the member's type (blobs decoded)."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _fail(name, "Member must be an object", value)
        out = {}
        for key, member_value in value.items():
            member = shape.members.get(key)
            if member is None:
                continue  # like AWS, ignore members it does not know
            out[key] = _from_json(member, member_value, f"{name}.{key}" if name else key)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _fail(name, "Member must be a list", value)
        return [_from_json(shape.member, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _fail(name, "Member must be a map", value)
        return {k: _from_json(shape.value, v, f"{name}.{k}") for k, v in value.items()}
    if kind == "blob":
        if not isinstance(value, str):
            raise _fail(name, "Member must be base64-encoded binary data", value)
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise _fail(name, "Member must be base64-encoded binary data", value) from None
    if kind == "timestamp":
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise _fail(name, "Member must be a timestamp", value) from None
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, "Member must be an integer", value)
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(name, "Member must be a number", value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(name, "Member must be a boolean", value)
        return value
    if not isinstance(value, str):
        raise _fail(name, "Member must be a string", value)
    return value


def validate_shape(shape: Shape, value: Any, name: str) -> None:
    """Check ``value`` against the model constraints of ``shape`` (as the service does)."""
    if value is None:
        return
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        for member_name in shape.required_members:
            if value.get(member_name) is None:
                path = f"{name}.{member_name}" if name else member_name
                raise _fail(path, "Member must not be null")
        for key, member_value in value.items():
            validate_shape(shape.members[key], member_value, f"{name}.{key}" if name else key)
        return
    if kind in ("list", "map"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            raise _fail(name, f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            raise _fail(name, f"Member must have length less than or equal to {meta['max']}")
        if kind == "list":
            for i, item in enumerate(value):
                validate_shape(shape.member, item, f"{name}[{i}]")
        else:
            for key, item in value.items():
                validate_shape(shape.key, key, f"{name}.{key}")
                validate_shape(shape.value, item, f"{name}.{key}")
        return
    if kind == "string":
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            raise _fail(name, f"Member must satisfy enum value set: [{', '.join(enum)}]", value)
        if "min" in meta and len(value) < meta["min"]:
            raise _fail(
                name, f"Member must have length greater than or equal to {meta['min']}", value
            )
        if "max" in meta and len(value) > meta["max"]:
            raise _fail(name, f"Member must have length less than or equal to {meta['max']}", value)
        pattern = meta.get("pattern")
        if pattern and not re.search(pattern, value):
            raise _fail(name, f"Member must satisfy regular expression pattern: {pattern}", value)
        return
    if kind in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            raise _fail(
                name, f"Member must have value greater than or equal to {meta['min']}", value
            )
        if "max" in meta and value > meta["max"]:
            raise _fail(name, f"Member must have value less than or equal to {meta['max']}", value)


def parse_request(
    op: OperationModel,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The operation's input as a dict keyed by member names, validated against the model."""
    shape = op.input_shape
    if shape is None:
        return {}
    body_json: dict[str, Any] = {}
    has_body_members = any("location" not in m.serialization for m in shape.members.values())
    if has_body_members and body.strip():
        body_json = load_json_object(body)
    lower_headers = {k.lower(): v for k, v in headers.items()}
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in labels:
                params[name] = _coerce_scalar(member, labels[wire], name)
        elif location == "querystring":
            values = query.get(wire)
            if values:
                if member.type_name == "list":
                    params[name] = [_coerce_scalar(member.member, v, name) for v in values]
                else:
                    params[name] = _coerce_scalar(member, values[-1], name)
        elif location == "header":
            if wire.lower() in lower_headers:
                params[name] = _coerce_scalar(member, lower_headers[wire.lower()], name)
        elif name in body_json:
            params[name] = _from_json(member, body_json[name], name)
    validate_shape(shape, params, "")
    return params


# --- response serialization --------------------------------------------------------------


def to_json(shape: Shape, value: Any) -> Any:
    """Python data of ``shape`` as REST-JSON (timestamps as epoch seconds, blobs base64)."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for key, member in shape.members.items():
            if member.serialization.get("location"):
                continue  # header/status members are not in the body
            if key in value and value[key] is not None:
                out[key] = to_json(member, value[key])
        return out
    if kind == "list":
        return [to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: to_json(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        raw = value.encode("utf-8") if isinstance(value, str) else value
        return base64.b64encode(raw).decode("ascii")
    if kind == "timestamp":
        return float(value.timestamp()) if isinstance(value, dt.datetime) else float(value)
    return value


def _json_response(status: int, payload: Any, request_id: str) -> HttpResponse:
    body = b"" if status == 204 else json.dumps(payload).encode("utf-8")
    headers = {"x-amzn-RequestId": request_id}
    if status != 204:
        headers["Content-Type"] = "application/json"
    return HttpResponse(status, body, headers)


def error_response(error: GreengrassApiError, request_id: str) -> HttpResponse:
    payload = error.body()
    headers = {
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": error.code,
        "Content-Type": "application/json",
    }
    return HttpResponse(error.status, json.dumps(payload).encode("utf-8"), headers)


# --- dispatch -------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class GreengrassResponses:
    """Maps HTTP requests to ``GreengrassBackend`` calls and back."""

    def __init__(self, backend: GreengrassBackend) -> None:
        self.backend = backend
        self.model = service_model()
        self._public: dict[str, Callable[..., dict[str, Any]]] = {
            "CreateComponentVersion": self._create_component_version,
            "DescribeComponent": backend.describe_component,
            "GetComponent": backend.get_component,
            "GetComponentVersionArtifact": backend.get_component_version_artifact,
            "ListComponents": backend.list_components,
            "ListComponentVersions": backend.list_component_versions,
            "DeleteComponent": backend.delete_component,
            "ResolveComponentCandidates": backend.resolve_component_candidates,
            "CreateDeployment": backend.create_deployment,
            "GetDeployment": backend.get_deployment,
            "ListDeployments": backend.list_deployments,
            "CancelDeployment": backend.cancel_deployment,
            "DeleteDeployment": backend.delete_deployment,
            "ListEffectiveDeployments": backend.list_effective_deployments,
            "ListInstalledComponents": backend.list_installed_components,
            "GetCoreDevice": backend.get_core_device,
            "ListCoreDevices": backend.list_core_devices,
            "DeleteCoreDevice": backend.delete_core_device,
            "ListTagsForResource": backend.list_tags_for_resource,
            "TagResource": backend.tag_resource,
            "UntagResource": backend.untag_resource,
        }
        # Members the backend does not take (they only shape the wire format).
        self._ignored = {"s3EndpointType", "iotEndpointType"}

    def _create_component_version(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("inline_recipe", None)
        return self.backend.create_component_version(**kwargs)

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResponse:
        request_id = str(uuid.uuid4())
        raw_path, _, raw_query = target.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        try:
            found = urls.resolve(method.upper(), raw_path)
            if found is None:
                if urls.path_exists(raw_path):
                    raise ValidationException(
                        f"{method} is not allowed on {raw_path}", reason="UNKNOWN_OPERATION"
                    )
                return error_response(
                    _UnknownOperation(f"No operation matches {method} {raw_path}"), request_id
                )
            route, labels = found
            if route.private:
                payload = self._private(route.name, labels, query, body)
                return _json_response(200, payload, request_id)
            op = self.model.operation_model(route.name)
            handler = self._public.get(route.name)
            if handler is None:
                raise ValidationException(
                    f"{route.name} is not implemented by the edgekit local Greengrass emulator; "
                    "run against AWS (backend='aws') for it",
                    reason="UNKNOWN_OPERATION",
                )
            params = parse_request(op, labels, query, headers, body)
            kwargs = {_snake(k): v for k, v in params.items() if k not in self._ignored}
            result = handler(**kwargs)
            status = int(op.http.get("responseCode", 200))
            payload = to_json(op.output_shape, result) if op.output_shape is not None else {}
            return _json_response(status, payload, request_id)
        except GreengrassApiError as exc:
            return error_response(exc, request_id)
        except Exception as exc:  # a bug: report it as AWS would, and keep serving
            log.exception("internal error handling %s %s", method, target)
            return error_response(
                InternalServerException(f"internal error in the local emulator: {exc!r}"),
                request_id,
            )

    # -- private device API --

    def _private(
        self, name: str, labels: dict[str, str], query: dict[str, list[str]], body: bytes
    ) -> dict[str, Any]:
        if name == "health":
            return {"status": "ok", "region": self.backend.region}
        thing = labels["thing"]
        if name == "device_deployments":
            groups: list[str] = []
            for value in query.get("groups", []):
                groups.extend(g.strip() for g in value.split(",") if g.strip())
            return self.backend.device_deployments(thing, groups)
        payload = load_json_object(body or b"{}")
        if name == "device_status":
            return self.backend.report_device_status(thing, payload)
        return self.backend.report_deployment_status(thing, labels["deploymentId"], payload)


class _UnknownOperation(GreengrassApiError):
    code = "UnknownOperationException"
    status = 404


def load_json_object(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or the ValidationException AWS answers with
    (not JSON, not an object, or nested deeper than MAX_NESTING_DEPTH)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationException(
            f"The request body is not valid JSON: {exc}", reason="CANNOT_PARSE"
        ) from None
    except RecursionError:
        raise ValidationException(
            f"The request body {too_deep_message()}", reason="CANNOT_PARSE"
        ) from None
    if not isinstance(data, dict):
        raise ValidationException("The request body must be a JSON object", reason="CANNOT_PARSE")
    problem = nesting_problem(data)
    if problem:
        raise ValidationException(f"The request body {problem}", reason="CANNOT_PARSE")
    return data
