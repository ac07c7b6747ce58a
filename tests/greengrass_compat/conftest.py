"""Shared fixtures of the Greengrass compatibility tests: real components, plain boto3.

Each test module gets its own local endpoints (``gg_local``, module-scoped): moto on
loopback (S3, IoT, ...), the ``greengrassv2`` control-plane emulator and the MQTT broker,
plus ``gg_local.start_device(thing)`` which starts a real local device for a thing (one
device per module is the rule: tests are slow otherwise). Components live under
``tests/greengrass_compat/components/<name>/`` (``recipe.yaml`` + ``artifacts/``) and are
published with ``gg_local.publish(name)`` exactly as a user would with boto3: artifacts to
S3, then ``create_component_version``. ``deploy_and_wait(gg, thing_arn, components)``
creates a deployment and waits until the core device reports it final.

Conftest modules are not importable under ``--import-mode=importlib``, so the helpers are
fixtures returning the function.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from edgekit.local.device.runtime import DeviceRuntime
    from edgekit.local.mqtt import Broker

REGION = "us-east-1"
ACCOUNT = "123456789012"
COMPONENTS = Path(__file__).resolve().parent / "components"
#: Final core-device execution states of an effective deployment.
FINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "COMPLETED")
#: The placeholder bucket in test recipes' artifact URIs (``s3://BUCKET/...``).
BUCKET_PLACEHOLDER = "s3://BUCKET/"


def thing_arn(thing: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"


@dataclass
class GreengrassLocal:
    """The local endpoints of one test module, with plain boto3 clients on them."""

    moto_url: str
    greengrass_url: str
    mqtt_endpoint: str
    bucket: str
    root: Path
    gg: Any
    s3: Any
    iot: Any
    devices: list[DeviceRuntime] = field(default_factory=list)

    def thing_arn(self, thing: str) -> str:
        return thing_arn(thing)

    def start_device(
        self,
        thing: str | None = None,
        *,
        root: Path | None = None,
        greengrass_url: str | None = None,
        **options: Any,
    ) -> DeviceRuntime:
        """Create the IoT thing (if new) and start a local device for it (stopped at teardown).

        ``root``: the device's root folder (default: under the module's temporary folder);
        ``greengrass_url``: another control plane (e.g. one that does not answer);
        ``options``: DeviceRuntime keyword arguments."""
        from edgekit.local.device.runtime import DeviceRuntime

        thing = thing or f"compat-{uuid.uuid4().hex[:6]}"
        with contextlib.suppress(self.iot.exceptions.ResourceAlreadyExistsException):
            self.iot.create_thing(thingName=thing)
        kwargs: dict[str, Any] = {"poll": 0.1, "settle": 0.3, "group_refresh": 0.5}
        kwargs.update(options)
        runtime = DeviceRuntime(
            thing,
            root or self.root / "devices" / thing,
            greengrass_url or self.greengrass_url,
            self.moto_url,
            self.mqtt_endpoint,
            REGION,
            **kwargs,
        ).start()
        self.devices.append(runtime)
        return runtime

    @staticmethod
    def component_log(
        device: DeviceRuntime, name: str, *, contains: str = "", timeout: float = 30.0
    ) -> str:
        """The component's log file on ``device``; with ``contains``, wait until that text
        is in it (a deployment succeeds once the component runs, not once it printed)."""
        path = device.layout.component_log(name)
        deadline = time.monotonic() + timeout
        while True:
            text = path.read_text() if path.exists() else ""
            if contains in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{contains!r} not in the log of {name} after {timeout} s:\n{text[-2000:]}"
                )
            time.sleep(0.05)

    def publish(
        self, name: str, *, recipe_file: str = "recipe.yaml", replace: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Publish ``components/<name>/`` as a user would: artifacts to S3, then the recipe.

        Files under ``artifacts/`` go to ``s3://<bucket>/<name>/<file>``; the recipe's
        ``s3://BUCKET/`` URIs point at the module's bucket. ``replace`` substitutes other
        literal strings in the recipe text (e.g. a version). Returns the
        CreateComponentVersion response.
        """
        folder = COMPONENTS / name
        for path in sorted((folder / "artifacts").glob("**/*")):
            if path.is_file():
                key = f"{name}/{path.relative_to(folder / 'artifacts').as_posix()}"
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        text = (folder / recipe_file).read_text()
        text = text.replace(BUCKET_PLACEHOLDER, f"s3://{self.bucket}/")
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        return self.gg.create_component_version(inlineRecipe=text.encode())


def _wait_final(gg: Any, thing: str, deployment_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rows = gg.list_effective_deployments(coreDeviceThingName=thing).get(
            "effectiveDeployments", []
        )
        row = next((r for r in rows if r["deploymentId"] == deployment_id), {})
        if row.get("coreDeviceExecutionStatus") in FINAL:
            return row
        time.sleep(0.05)
    raise AssertionError(f"deployment {deployment_id} not final after {timeout} s: {row}")


def deploy_and_wait(
    gg: Any,
    target_arn: str,
    components: dict[str, Any],
    *,
    policy: str = "ROLLBACK",
    timeout: float = 60.0,
    **create_kwargs: Any,
) -> dict[str, Any]:
    """CreateDeployment with plain boto3 and wait until the core device reports it final.

    ``components`` maps names to a version string or to the full
    ``ComponentDeploymentSpecification`` dict. ``target_arn`` must be a thing ARN (the
    effective deployment is read for that core device). Returns the effective deployment
    row (``coreDeviceExecutionStatus``, ``reason``...) with the ``deploymentId``.
    """
    specs = {
        name: {"componentVersion": spec} if isinstance(spec, str) else spec
        for name, spec in components.items()
    }
    response = gg.create_deployment(
        targetArn=target_arn,
        deploymentName=f"compat-{uuid.uuid4().hex[:6]}",
        components=specs,
        # Other policies (e.g. componentUpdatePolicy) may come in create_kwargs.
        deploymentPolicies={
            "failureHandlingPolicy": policy,
            **create_kwargs.pop("deploymentPolicies", {}),
        },
        **create_kwargs,
    )
    thing = target_arn.rsplit("/", 1)[-1]
    return _wait_final(gg, thing, response["deploymentId"], timeout)


@pytest.fixture(scope="module")
def gg_local(
    tmp_path_factory: pytest.TempPathFactory, moto_url: str, broker: Broker
) -> Iterator[GreengrassLocal]:
    """Module-scoped local endpoints (moto, greengrassv2 emulator, MQTT broker) + boto3 clients."""
    import boto3

    from edgekit.local.greengrass.server import GreengrassServer

    root = tmp_path_factory.mktemp("ggcompat")
    server = GreengrassServer(root / "greengrass", moto_url, REGION).start()
    kw = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=moto_url, **kw)
    bucket = f"compat-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    local = GreengrassLocal(
        moto_url=moto_url,
        greengrass_url=server.url,
        mqtt_endpoint=broker.endpoint,
        bucket=bucket,
        root=root,
        gg=boto3.client("greengrassv2", endpoint_url=server.url, **kw),
        s3=s3,
        iot=boto3.client("iot", endpoint_url=moto_url, **kw),
    )
    try:
        yield local
    finally:
        for device in local.devices:
            device.stop()
        server.stop()


@pytest.fixture(name="deploy_and_wait", scope="session")
def deploy_and_wait_fixture() -> Callable[..., dict[str, Any]]:
    """``deploy_and_wait(gg_client, thing_arn, components, policy=..., timeout=...)``."""
    return deploy_and_wait


@pytest.fixture(name="recipe_json", scope="session")
def recipe_json_fixture() -> Callable[[dict[str, Any]], bytes]:
    """A recipe dict as the inlineRecipe bytes CreateComponentVersion takes."""
    return lambda recipe: json.dumps(recipe).encode()
