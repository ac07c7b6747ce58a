"""Shadow mode on a local device: a second model component carries the candidate.

The real components run on a local device runtime (as in tests/deploy/test_deploy_local.py):
``com.qualityinspection.model.shadow`` is built from the model recipe template, and a
configuration update points the running app at it (``ShadowPackagePath`` relative to the
nucleus's work folder). The app's health reports the shadow's package sha256 as the agent
verified it, its latency and its agreement; every result still comes from the current model.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import paho.mqtt.client as paho  # noqa: E402

from edgekit import clients  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.package.keys import fingerprint  # noqa: E402
from edgekit.schemas import validate_health, validate_result  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "edgekit-shadow"
THING = "shadow-device"
SHADOW = "com.qualityinspection.model.shadow"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        yield home, Settings(local_home=home, thing_group=GROUP)
    finally:
        endpoints.down(home)


class Listener:
    def __init__(self, port: int, settings: Settings) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sh-{id(self)}")
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("qualityinspection/#", 1)
        assert ready.wait(10)
        self.settings = settings
        self.results: list[dict[str, Any]] = []

    def health_until(self, until: Any, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no health message matched; the last one: {last}"
            try:
                topic, msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if topic == self.settings.results_topic:
                self.results.append(validate_result(msg))
            elif topic == self.settings.health_topic:
                last = validate_health(msg)
                if until(msg):
                    return msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _shadow(msg: dict[str, Any]) -> dict[str, Any] | None:
    found = [m for m in msg.get("models") or [] if m["role"] == "shadow"]
    return found[0] if found else None


def test_a_shadow_model_component_runs_beside_the_current_model(
    local: tuple[Path, Settings], tmp_path: Path
) -> None:
    home, settings = local
    private, public = signing_keys(None, settings)
    model = build_tiny_model(home / "tiny.onnx")
    current = build_package(
        model, name=settings.model_name, version="1.4.0", key=private, out=home / "cur.tar.gz"
    ).path
    candidate = build_package(
        model, name=settings.model_name, version="1.5.0", key=private, out=home / "cand.tar.gz"
    ).path
    add_device(THING, GROUP, home)
    built = build_components(settings, out_dir=tmp_path / "cur", model_package=current)
    publish_components(settings, built)
    listener = Listener(endpoints.LocalEndpoints.load(home).mqtt_port, settings)
    try:
        result = deploy(
            settings,
            thing_group=GROUP,
            configuration={settings.inference_component: {"InferenceInterval": 0.2}},
            timeout=180,
        )
        assert result.proofs[THING].proven

        # The candidate as a second model component, from the same recipe template.
        shadow_settings = settings.replace(model_component=SHADOW)
        shadow_built = build_components(
            shadow_settings,
            out_dir=tmp_path / "shadow",
            model_package=candidate,
            names=[SHADOW],
        )
        shadow_version = publish_components(shadow_settings, shadow_built)[SHADOW]
        components: dict[str, Any] = {
            name: {"componentVersion": version} for name, version in result.components.items()
        }
        components[SHADOW] = {"componentVersion": shadow_version}
        components[settings.inference_component]["configurationUpdate"] = {
            "merge": json.dumps(
                {"InferenceInterval": 0.2, "ShadowPackagePath": f"{SHADOW}/package"}
            )
        }
        greengrass = clients.client("greengrassv2", settings)
        greengrass.create_deployment(
            targetArn=result.target_arn, deploymentName="shadow", components=components
        )
        health = listener.health_until(
            lambda m: (
                (s := _shadow(m)) is not None
                and s["state"] == "running"
                and s["agreement"]["since_start"]["images_compared"] >= 3
            )
        )
    finally:
        listener.close()
    cur, shadow = health["models"]
    assert cur["role"] == "current" and cur["version"] == "1.4.0"
    assert cur["package_sha256"] == sha256_file(current)
    assert (shadow["name"], shadow["version"]) == (settings.model_name, "1.5.0")
    assert shadow["package_sha256"] == sha256_file(candidate)  # from the shadow's Install marker
    assert shadow["package_sha256_source"] == "install-marker"
    assert shadow["key_fingerprint"] == cur["key_fingerprint"] == fingerprint(public)
    assert shadow["since_start"]["latency_ms"]["p95"] is not None
    assert shadow["agreement"]["since_start"]["defect_agreement"] == 1.0  # same weights
    assert shadow["agreement"]["since_start"]["detection_agreement"] == 1.0
    assert listener.results and all(r["model"]["version"] == "1.4.0" for r in listener.results)
