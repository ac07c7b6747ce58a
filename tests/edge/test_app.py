"""The inference app against real parts: IPC server, MQTT broker, model agent (no device runtime).

The app runs in a thread of the test process, talks to an ``IpcServer`` backed by a
``MemoryHost`` (the component's configuration), which bridges PublishToIoTCore to
an in-process broker; a paho client plays the cloud side.
"""

from __future__ import annotations

import json
import queue
import threading
import time
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
from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.package import build_package, generate_keypair, open_package  # noqa: E402
from edgekit.schemas import validate_health, validate_result  # noqa: E402

pytestmark = pytest.mark.integration

COMPONENT = "com.qualityinspection"
RESULTS = "qualityinspection/scratch-detection"
HEALTH = "qualityinspection/health"
SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed tiny model package, unpacked as the model component would, and its key."""
    root = tmp_path_factory.mktemp("package")
    keys = generate_keypair(root / "keys")
    model = build_tiny_model(root / "tiny.onnx")
    built = build_package(
        model,
        name="tag-scratch-detector",
        version="2.0.1",
        key=keys.private_key,
        out=root / "p.tar.gz",
    )
    with open_package(built.path, dest=root / "package"):
        pass
    other = generate_keypair(root / "other")
    return {"dir": root / "package", "public_key": keys.public_key, "other_key": other.public_key}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import zipfile

    root = tmp_path_factory.mktemp("images")
    archive = sample_images_zip(root, count=4)
    folder = root / "camera"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


class Cloud:
    """A paho client on the broker (QoS 0 towards it: see tests/test_ipc_server.py)."""

    def __init__(self, broker: Broker) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"cloud-{id(self)}")
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("qualityinspection/#", 0)
        assert subscribed.wait(5)

    def take(self, topic: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(got)} of {count} messages on {topic}"
            t, msg = self.messages.get(timeout=remaining)
            if t == topic:
                got.append(msg)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _config(images: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ImageDirectory": str(images),
        "InferenceInterval": 0.1,
        "PublishResultsOnTopic": RESULTS,
        "HealthTopic": HEALTH,
        "HealthInterval": 0.5,
        "ScoreThreshold": None,
        "CaptureBand": [0.0, 1.0],
        "ModelName": "tag-scratch-detector",
        "AgentSocket": "",
        "UseSharedMemory": True,
    }
    config.update(overrides)
    return config


ACCESS = {
    "aws.greengrass.ipc.mqttproxy": {
        f"{COMPONENT}:mqttproxy:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": [RESULTS, HEALTH],
        }
    }
}


def _start(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    public_key: Path | None = None,
    **config: Any,
) -> tuple[MemoryHost, InferenceApp, threading.Thread, list[int], list[Any]]:
    host = MemoryHost(thing_name="edge-test", mqtt_endpoint=broker.endpoint)
    server = IpcServer(sockdir / "ipc.sock", host).start()
    agent = AgentServer(
        sockdir / "agent.sock",
        public_key or package["public_key"],
        capture_dir=sockdir / "captures",
    ).start()
    token = host.add_component(
        COMPONENT, configuration=_config(images, **config), access_control=ACCESS
    )
    monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
    monkeypatch.setenv("SVCUID", token)
    ipc = GreengrassIpc()
    env = {
        "EDGEKIT_MODEL_PACKAGE": str(package["dir"]),
        "EDGEKIT_AGENT_SOCKET": str(sockdir / "agent.sock"),
        "EDGEKIT_SPOOL_DIR": str(sockdir / "spool"),
    }
    app = InferenceApp(ipc, thing_name="edge-test", env=env, work_dir=sockdir)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(app.run()), daemon=True)
    thread.start()
    return host, app, thread, code, [ipc, agent, server]


def _stop(app: InferenceApp, thread: threading.Thread, parts: list[Any]) -> None:
    app.stop()
    thread.join(15)
    assert not thread.is_alive()
    ipc, agent, server = parts
    ipc.close()
    agent.stop()
    server.stop()


def test_results_health_skips_captures_and_config_updates(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud = Cloud(broker)
    host, app, thread, code, parts = _start(broker, sockdir, package, images, monkeypatch)
    try:
        results = cloud.take(RESULTS, 6)
        for msg in results:
            validate_result(msg)
        assert {m["image_name"] for m in results} <= {f"tag-{i:03d}.jpg" for i in range(4)}
        assert results[0]["model"] == {"name": "tag-scratch-detector", "version": "2.0.1"}
        assert results[0]["thing_name"] == "edge-test"
        sequences = [m["sequence"] for m in results]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        for msg in results:  # boxes are in pixels of the 450x300 original, not the model input
            for det in msg["detections"]:
                left, top, width, height = det["box"]
                assert left >= 0 and left + width <= 450.01 and top + height <= 300.01
        assert (COMPONENT, "RUNNING") in host.reported_states

        health = cloud.take(HEALTH, 2)[-1]
        validate_health(health)
        assert health["images_skipped"] == 1  # counted once, not on every round
        assert health["skipped"][0]["image_name"] == "broken.jpg"
        assert health["model"] == {"name": "tag-scratch-detector", "version": "2.0.1"}
        assert health["state"] == "running"
        assert any((sockdir / "captures").iterdir())  # band [0, 1]: every image captured

        # A configuration update applies without a restart: nothing under 0.999 remains.
        host.update_configuration(COMPONENT, [], {"ScoreThreshold": 0.999}, time.time())
        deadline = time.monotonic() + 10
        while True:
            msg = cloud.take(RESULTS, 1)[0]
            if all(d["score"] >= 0.999 for d in msg["detections"]):
                break
            assert time.monotonic() < deadline, "ScoreThreshold update never took effect"
        later = cloud.take(RESULTS, 3)
        assert all(d["score"] >= 0.999 for m in later for d in m["detections"])
        # An invalid update is refused; the app keeps inspecting with the previous values.
        host.update_configuration(COMPONENT, [], {"InferenceInterval": -1}, time.time())
        cloud.take(RESULTS, 2)
        assert thread.is_alive()
    finally:
        _stop(app, thread, parts)
        cloud.close()
    assert code == [0]


def test_spool_keeps_results_across_restarts(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud = Cloud(broker)
    host, app, thread, code, parts = _start(
        broker, sockdir, package, images, monkeypatch, CaptureBand=[]
    )
    try:
        first = cloud.take(RESULTS, 3)
    finally:
        _stop(app, thread, parts)
    host, app, thread, code, parts = _start(
        broker, sockdir, package, images, monkeypatch, CaptureBand=[]
    )
    try:
        second = cloud.take(RESULTS, 3)
    finally:
        _stop(app, thread, parts)
        cloud.close()
    # Same spool file: the sequence continues and message ids stay unique.
    assert second[0]["sequence"] > first[-1]["sequence"]
    ids = [m["message_id"] for m in first + second]
    assert len(set(ids)) == len(ids)


def test_package_signed_by_another_key_is_fatal(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, app, thread, code, parts = _start(
        broker, sockdir, package, images, monkeypatch, public_key=package["other_key"]
    )
    thread.join(20)
    try:
        assert code == [1]
        assert (COMPONENT, "ERRORED") in host.reported_states
    finally:
        _stop(app, thread, parts)
