"""The device's side of the control plane: the private device API and the public greengrassv2 API.

Status reports and deployment polling use edgekit's private ``/_edgekit``
routes (plain JSON over HTTP); recipes, published versions and artifact URLs
come from the public greengrassv2 API, the same calls a core device makes to AWS;
thing groups come from AWS IoT (moto locally). Both through ``rest`` (plain HTTP, no
boto3: the runtime lives as long as the device).
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from edgekit.awsapi import error_code, paginate_calls
from edgekit.errors import LocalBackendError
from edgekit.local.device import rest
from edgekit.local.device.failures import DeploymentFailure

DEFAULT_ACCOUNT = "123456789012"
"""moto's default account, edgekit.local.endpoints.ACCOUNT_ID (not imported from there: that
module loads the MQTT broker and botocore; tests/local/device/test_rest.py ties the two)."""
HTTP_TIMEOUT = 10.0
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "ResourceNotFound", "NoSuchEntity"})


class ControlPlaneUnavailable(LocalBackendError):
    """The control plane did not answer (down, restarting, or refused the request)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status when it answered with an error

    @property
    def refused(self) -> bool:
        """The control plane answered and refused the request for good (a 4xx, not a retry)."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                408,
                429,
            )
        )


def artifact_request_name(uri: str) -> str:
    """The artifactName GetComponentVersionArtifact expects: the URI without ``s3://``."""
    return uri.split("://", 1)[1] if "://" in uri else uri


class ControlPlane:
    """Calls one device makes; every method raises ControlPlaneUnavailable when unreachable."""

    def __init__(
        self,
        thing: str,
        greengrass_url: str,
        aws_endpoint: str,
        region: str,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.thing = thing
        self.greengrass_url = greengrass_url.rstrip("/")
        self.aws_endpoint = aws_endpoint
        self.region = region
        self.account_id = account_id
        self._gg: Any = None
        self._iot: Any = None
        self._lock = threading.Lock()

    # --- ARNs ----------------------------------------------------------------------------

    @property
    def thing_arn(self) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thing/{self.thing}"

    def group_arn(self, group: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thinggroup/{group}"

    def component_arn(self, name: str, version: str | None = None) -> str:
        arn = f"arn:aws:greengrass:{self.region}:{self.account_id}:components:{name}"
        return arn if version is None else f"{arn}:versions:{version}"

    # --- private device API ----------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.greengrass_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ControlPlaneUnavailable(
                f"control plane {self.greengrass_url} answered {method} {path} with HTTP "
                f"{exc.code}: {detail}",
                status=exc.code,
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ControlPlaneUnavailable(
                f"control plane {self.greengrass_url} does not answer ({exc}); is `edgekit local "
                "up` running?"
            ) from exc
        return json.loads(text) if text else {}

    def _thing_path(self) -> str:
        return "/_edgekit/devices/" + urllib.parse.quote(self.thing, safe="")

    def report_status(self, payload: dict[str, Any]) -> None:
        self._request("POST", self._thing_path() + "/status", payload)

    def deployments(self, groups: list[str]) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"groups": ",".join(groups)})
        return list(
            self._request("GET", f"{self._thing_path()}/deployments?{query}").get("deployments")
            or []
        )

    def update_deployment(self, deployment_id: str, body: dict[str, Any]) -> None:
        path = f"{self._thing_path()}/deployments/{urllib.parse.quote(deployment_id, safe='')}"
        self._request("PUT", path, body)

    # --- public APIs -----------------------------------------------------------------------

    def _greengrass(self) -> Any:
        with self._lock:
            if self._gg is None:
                self._gg = rest.Greengrass(self.greengrass_url, self.region)
            return self._gg

    def _iot_client(self) -> Any:
        with self._lock:
            if self._iot is None:
                self._iot = rest.Iot(self.aws_endpoint, self.region)
            return self._iot

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn(**kwargs)``; KeyError when the resource does not exist."""
        try:
            return fn(**kwargs)
        except rest.Unreachable as exc:
            raise ControlPlaneUnavailable(f"{what} failed: {exc}") from exc
        except Exception as exc:
            response = getattr(exc, "response", None)
            if not isinstance(response, dict):
                raise  # not an AWS error answer (rest.AwsCallError, a botocore ClientError)
            if error_code(exc) in NOT_FOUND_CODES:
                raise KeyError(what) from exc
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise ControlPlaneUnavailable(
                f"{what} failed: {exc}", status=status if isinstance(status, int) else None
            ) from exc

    def _items(
        self, what: str, fn: Callable[..., Any], key: str, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of every page of a list call (`_call` for each page)."""

        def page(**page_kwargs: Any) -> Any:
            return self._call(what, fn, **page_kwargs)

        yield from paginate_calls(page, key, **kwargs)

    def thing_groups(self) -> list[str] | None:
        """The thing's groups; None if AWS IoT does not know the thing (yet, or any more)."""
        iot = self._iot_client()
        try:
            return [
                g["groupName"]
                for g in self._items(
                    "ListThingGroupsForThing",
                    iot.list_thing_groups_for_thing,
                    "thingGroups",
                    thingName=self.thing,
                )
            ]
        except KeyError:
            return None

    def recipe(self, name: str, version: str) -> dict[str, Any]:
        gg = self._greengrass()
        try:
            resp = self._call(
                f"GetComponent {name} {version}",
                gg.get_component,
                arn=self.component_arn(name, version),
                recipeOutputFormat="JSON",
            )
        except KeyError:
            raise DeploymentFailure(
                f"component {name} version {version} is not published in the control plane; "
                "publish it (CreateComponentVersion) or fix the version in the deployment",
                codes=["NO_AVAILABLE_COMPONENT_VERSION", "RESOURCE_NOT_FOUND"],
                types=["REQUEST_ERROR"],
            ) from None
        raw = resp["recipe"]
        if isinstance(raw, (bytes, bytearray)):
            raw = raw.decode()
        return json.loads(raw)

    def versions(self, name: str) -> list[str]:
        gg = self._greengrass()
        out: list[str] = []
        try:
            for v in self._items(
                f"ListComponentVersions {name}",
                gg.list_component_versions,
                "componentVersions",
                arn=self.component_arn(name),
            ):
                out.append(v["componentVersion"])
        except KeyError:
            pass  # not published (any more): the versions listed so far
        return out

    def artifact_url(self, name: str, version: str, uri: str) -> str:
        gg = self._greengrass()
        try:
            resp = self._call(
                f"GetComponentVersionArtifact {name} {version} {uri}",
                gg.get_component_version_artifact,
                arn=self.component_arn(name, version),
                artifactName=artifact_request_name(uri),
            )
        except KeyError:
            raise DeploymentFailure(
                f"{name} {version}: the control plane has no artifact {uri}; upload it to S3 and "
                "publish a new component version",
                codes=["ARTIFACT_DOWNLOAD_ERROR", "S3_GET_OBJECT_RESOURCE_NOT_FOUND"],
                types=["REQUEST_ERROR"],
            ) from None
        return str(resp["preSignedUrl"])

    def delete_core_device(self) -> None:
        gg = self._greengrass()
        with contextlib.suppress(KeyError):
            self._call("DeleteCoreDevice", gg.delete_core_device, coreDeviceThingName=self.thing)
