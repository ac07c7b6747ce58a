"""The inference app survives its model agent restarting with another set of trusted keys.

A rollout's shadow stage changes the agent's ``AdditionalPublicKeys``, which reinstalls and
restarts the agent. On Greengrass the app (a HARD dependent) is restarted with it; here the
agent alone restarts under a running app, the harder case: the app must reconnect, load its
model again, keep publishing results, and its shadow model (signed with a key the first
agent did not trust) must load once the new agent trusts that key, reporting that key's
fingerprint in health.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import paho.mqtt.client as paho  # noqa: E402

from edgekit.agent.server import AgentServer  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components.artifacts import sample_images_zip  # noqa: E402
from edgekit.edge.app import InferenceApp  # noqa: E402
from edgekit.edge.ipc import GreengrassIpc  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.package import build_package, generate_keypair, open_package  # noqa: E402
from edgekit.package.keys import fingerprint  # noqa: E402

pytestmark = pytest.mark.integration

COMPONENT = "com.qualityinspection"
RESULTS = "qualityinspection/scratch-detection"
HEALTH = "qualityinspection/health"
ACCESS = {
    "aws.greengrass.ipc.mqttproxy": {
        f"{COMPONENT}:mqttproxy:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": [RESULTS, HEALTH],
        }
    }
}


def _unpacked(archive: Path, folder: Path) -> Path:
    with open_package(archive, dest=folder):
        pass
    (folder.parent / (folder.name + ".sha256")).write_text(sha256_file(archive))
    return folder


def test_the_app_survives_an_agent_restart_that_adds_a_trusted_key(
    broker: Broker, sockdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_a, key_b = generate_keypair(tmp_path / "a"), generate_keypair(tmp_path / "b")
    model = build_tiny_model(tmp_path / "tiny.onnx")
    current = build_package(
        model,
        name="tag-scratch-detector",
        version="1.0.0",
        key=key_a.private_key,
        out=tmp_path / "current.tar.gz",
    ).path
    candidate = build_package(
        model,
        name="tag-scratch-detector",
        version="1.1.0",
        key=key_b.private_key,
        out=tmp_path / "candidate.tar.gz",
    ).path
    current_dir = _unpacked(current, tmp_path / "model" / "package")
    shadow_dir = _unpacked(candidate, tmp_path / "shadow" / "package")
    images = tmp_path / "camera"
    with zipfile.ZipFile(sample_images_zip(tmp_path, count=3)) as zf:
        zf.extractall(images)

    messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    cloud = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud-restart")
    cloud.on_message = lambda c, u, m: messages.put((m.topic, json.loads(m.payload)))
    subscribed = threading.Event()
    cloud.on_subscribe = lambda *a: subscribed.set()
    cloud.connect(broker.host, broker.port)
    cloud.loop_start()
    cloud.subscribe("qualityinspection/#", 0)
    assert subscribed.wait(5)

    def shadow_of(health: dict[str, Any]) -> dict[str, Any]:
        return next((m for m in health.get("models", []) if m["role"] == "shadow"), {})

    def wait_for(until: Any, timeout: float = 40.0) -> tuple[dict[str, Any], int]:
        """The first health message matching ``until``, and the results seen meanwhile."""
        deadline, results = time.monotonic() + timeout, 0
        last = None
        while time.monotonic() < deadline:
            try:
                topic, msg = messages.get(timeout=0.5)
            except queue.Empty:
                continue
            if topic == RESULTS:
                results += 1
            elif topic == HEALTH:
                last = msg
                if until(msg):
                    return msg, results
        raise AssertionError(f"no health message matched; the last one: {last}")

    socket_path = sockdir / "agent.sock"
    host = MemoryHost(thing_name="edge-restart", mqtt_endpoint=broker.endpoint)
    ipc_server = IpcServer(sockdir / "ipc.sock", host).start()
    agent = AgentServer(socket_path, key_a.public_key).start()
    token = host.add_component(
        COMPONENT,
        configuration={
            "ImageDirectory": str(images),
            "InferenceInterval": 0.1,
            "PublishResultsOnTopic": RESULTS,
            "HealthTopic": HEALTH,
            "HealthInterval": 0.5,
            "CaptureBand": [],
            "ModelName": "tag-scratch-detector",
            "ShadowPackagePath": str(shadow_dir),
        },
        access_control=ACCESS,
    )
    monkeypatch.setenv(
        "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", str(ipc_server.socket_path)
    )
    monkeypatch.setenv("SVCUID", token)
    ipc = GreengrassIpc()
    env = {
        "EDGEKIT_MODEL_PACKAGE": str(current_dir),
        "EDGEKIT_AGENT_SOCKET": str(socket_path),
        "EDGEKIT_SPOOL_DIR": str(sockdir / "spool"),
    }
    app = InferenceApp(ipc, thing_name="edge-restart", env=env, work_dir=sockdir)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(app.run()), daemon=True)
    thread.start()
    try:
        # The first agent trusts key A only: the current model runs, the shadow is refused.
        health, _ = wait_for(lambda m: shadow_of(m).get("state") == "failed")
        assert fingerprint(key_a.public_key) in shadow_of(health)["problem"]
        assert health["models"][0]["key_fingerprint"] == fingerprint(key_a.public_key)

        # The agent restarts (as a configuration change reinstalls it) trusting A and B.
        agent.stop()
        extra = tmp_path / "additional_public_keys.pem"
        extra.write_text(key_b.public_key.read_text())
        agent = AgentServer(socket_path, key_a.public_key, additional_public_keys=extra).start()

        health, _ = wait_for(
            lambda m: (
                shadow_of(m).get("state") == "running"
                and shadow_of(m)["since_start"]["images"] >= 3
            )
        )
        assert thread.is_alive() and not code, "the app kept running"
        current_entry, shadow = health["models"]
        assert current_entry["key_fingerprint"] == fingerprint(key_a.public_key)
        assert current_entry["state"] == "running"
        assert shadow["key_fingerprint"] == fingerprint(key_b.public_key)
        assert shadow["version"] == "1.1.0"
        # And results keep flowing from the current model after the restart.
        before = current_entry["since_start"]["results_published"]
        later, _ = wait_for(
            lambda m: m["models"][0]["since_start"]["results_published"] >= before + 3
        )
        assert later["state"] == "running"
    finally:
        app.stop()
        thread.join(15)
        ipc.close()
        agent.stop()
        ipc_server.stop()
        cloud.disconnect()
        cloud.loop_stop()
    assert code == [0]
