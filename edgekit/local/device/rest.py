"""The AWS calls a device runtime makes, as plain HTTP to the local backend (no boto3).

A device runtime runs for the device's whole life, and boto3 with two clients held some
35 MB of it for a few small GET requests. The calls it makes are REST-JSON operations of
the public APIs on the loopback emulators: `Greengrass` (greengrassv2 GetComponent,
ListComponentVersions, GetComponentVersionArtifact, DeleteCoreDevice) and `Iot` (AWS IoT
ListThingGroupsForThing). Each method takes the operation's parameter names and returns
its response as boto3 would (``recipe`` decoded from base64 to bytes), so ``control``
reads them the same way.

The requests are not signed: the local emulators do not check signatures. They carry the
credential scope of an ``Authorization`` header (the local dummy access key, the region,
the service), which is where the emulators read the region and account from.

An error answer raises `AwsCallError` (an `AwsServiceError`) with the AWS error code and a
botocore-shaped ``response`` (``Error.Code``, ``Error.Message``,
``ResponseMetadata.HTTPStatusCode``), so `edgekit.awsapi.error_code` reads it like a
``ClientError``; no answer at all raises `Unreachable`.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from edgekit.errors import AwsServiceError, LocalBackendError

HTTP_TIMEOUT = 30.0
LOCAL_ACCESS_KEY_ID = "testing"
"""The local backend's dummy access key (edgekit.local.endpoints.DUMMY_ACCESS_KEY_ID)."""


class AwsCallError(AwsServiceError):
    """The service answered an operation with an AWS error (``code``, HTTP ``status``)."""

    def __init__(self, operation: str, code: str, message: str, status: int) -> None:
        super().__init__(f"{operation}: {code or 'HTTP ' + str(status)}: {message}")
        self.code = code
        self.status = status
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class Unreachable(LocalBackendError):
    """No answer from the endpoint (down, refused, timed out)."""


def _label(value: str, *, greedy: bool = False) -> str:
    """A URI label encoded as botocore encodes it (a greedy ``{name+}`` keeps its slashes)."""
    return urllib.parse.quote(value, safe="/~" if greedy else "~")


class RestJsonService:
    """One REST-JSON service at ``endpoint`` (``service`` names it in the credential scope)."""

    service = ""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region

    def _authorization(self) -> str:
        day = time.strftime("%Y%m%d", time.gmtime())
        scope = f"{LOCAL_ACCESS_KEY_ID}/{day}/{self.region}/{self.service}/aws4_request"
        return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=unsigned"

    def call(
        self, operation: str, method: str, path: str, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The JSON answer of ``method path?query`` ({} for an empty one)."""
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        url = self.endpoint + path + ("?" + urllib.parse.urlencode(params) if params else "")
        request = urllib.request.Request(
            url, method=method, headers={"Authorization": self._authorization()}
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise _error(operation, exc) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"{operation}: {self.endpoint} does not answer ({exc})") from exc
        return json.loads(body) if body.strip() else {}


def _error(operation: str, exc: urllib.error.HTTPError) -> AwsCallError:
    text = exc.read().decode(errors="replace")
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(exc.headers.get("x-amzn-ErrorType") or body.get("__type") or body.get("code") or "")
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]  # "prefix#Code:http://..." -> "Code"
    message = str(body.get("message") or body.get("Message") or text[:500] or exc.reason)
    return AwsCallError(operation, code, message, exc.code)


class Greengrass(RestJsonService):
    """The greengrassv2 operations a core device calls."""

    service = "greengrass"

    def get_component(self, *, arn: str, recipeOutputFormat: str = "JSON") -> dict[str, Any]:  # noqa: N803
        out = self.call(
            "GetComponent",
            "GET",
            f"/greengrass/v2/components/{_label(arn)}",
            {"recipeOutputFormat": recipeOutputFormat},
        )
        if isinstance(out.get("recipe"), str):
            out["recipe"] = base64.b64decode(out["recipe"])  # a blob, as boto3 returns it
        return out

    def list_component_versions(
        self,
        *,
        arn: str,
        nextToken: str | None = None,  # noqa: N803
        maxResults: int | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        return self.call(
            "ListComponentVersions",
            "GET",
            f"/greengrass/v2/components/{_label(arn)}/versions",
            {"nextToken": nextToken, "maxResults": maxResults},
        )

    def get_component_version_artifact(self, *, arn: str, artifactName: str) -> dict[str, Any]:  # noqa: N803
        name = _label(artifactName, greedy=True)
        path = f"/greengrass/v2/components/{_label(arn)}/artifacts/{name}"
        return self.call("GetComponentVersionArtifact", "GET", path)

    def delete_core_device(self, *, coreDeviceThingName: str) -> dict[str, Any]:  # noqa: N803
        return self.call(
            "DeleteCoreDevice",
            "DELETE",
            f"/greengrass/v2/coreDevices/{_label(coreDeviceThingName)}",
        )


class Iot(RestJsonService):
    """The AWS IoT operation a core device's runtime calls here (its thing groups)."""

    service = "iot"

    def list_thing_groups_for_thing(
        self,
        *,
        thingName: str,  # noqa: N803
        nextToken: str | None = None,  # noqa: N803
        maxResults: int | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        return self.call(
            "ListThingGroupsForThing",
            "GET",
            f"/things/{_label(thingName)}/thing-groups",
            {"nextToken": nextToken, "maxResults": maxResults},
        )
