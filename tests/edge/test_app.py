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
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.package import build_package, generate_keypair, open_package  # noqa: E402
from edgekit.package.keys import fingerprint  # noqa: E402
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
    # The model component's Install writes the archive's sha256 beside the unpacked folder.
    (root / "package.sha256").write_text(sha256_file(built.path))
    # A candidate (same weights, next version) as a shadow model component would install it.
    shadow = build_package(
        model,
        name="tag-scratch-detector",
        version="2.1.0",
        key=keys.private_key,
        out=root / "shadow.tar.gz",
    )
    shadow_dir = root / "work" / "com.qualityinspection.model.shadow" / "package"
    with open_package(shadow.path, dest=shadow_dir):
        pass
    (shadow_dir.parent / "package.sha256").write_text(sha256_file(shadow.path))
    other = generate_keypair(root / "other")
    foreign = build_package(
        model,
        name="tag-scratch-detector",
        version="9.0.0",
        key=other.private_key,
        out=root / "foreign.tar.gz",
    )
    with open_package(foreign.path, dest=root / "foreign"):
        pass
    return {
        "dir": root / "package",
        "sha256": sha256_file(built.path),
        "shadow_dir": shadow_dir,
        "shadow_sha256": sha256_file(shadow.path),
        "foreign_dir": root / "foreign",
        "public_key": keys.public_key,
        "other_key": other.public_key,
    }


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

    def take_health(
        self, until: Any, timeout: float = 20.0, results: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Health messages until ``until(msg)``; EVERY one is validated against the schema.

        Results that arrive meanwhile are validated and appended to ``results``.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no health message matched; the last one: {last}"
            try:
                topic, msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if topic == RESULTS:
                validate_result(msg)
                if results is not None:
                    results.append(msg)
                continue
            if topic != HEALTH:
                continue
            validate_health(msg)
            last = msg
            if until(msg):
                return msg

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
            # As in the recipe: the health summary goes to the edgekit-health shadow too.
            "resources": [RESULTS, HEALTH, "$aws/things/+/shadow/name/edgekit-health/update"],
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
        assert results[0]["model"] == {
            "name": "tag-scratch-detector",
            "version": "2.0.1",
            "package_sha256": package["sha256"],  # as the agent verified it
        }
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
        health = cloud.take_health(
            lambda m: m["models"] and m["models"][0]["since_start"]["results_published"] >= 3
        )
        (current,) = health["models"]
        assert current["role"] == "current" and current["state"] == "running"
        assert (current["name"], current["version"]) == ("tag-scratch-detector", "2.0.1")
        assert current["package_sha256"] == package["sha256"]  # what the agent verified
        assert current["package_sha256_source"] == "install-marker"
        assert current["key_fingerprint"] == fingerprint(package["public_key"])
        assert current["since_start"]["images"] >= current["since_start"]["results_published"]
        assert (
            current["since_start"]["latency_ms"]["p95"]
            >= current["since_start"]["latency_ms"]["p50"]
        )
        assert current["window"]["seconds"] == 60.0
        assert health["started_at"] <= health["timestamp"]
        assert health["other_model_results"] == 0
        assert health["publish_errors"] == {"results": 0, "health": 0}
        assert results[0]["model"]["package_sha256"] == package["sha256"]
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


def test_health_goes_out_right_after_the_first_result(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud = Cloud(broker)
    started = time.monotonic()
    host, app, thread, code, parts = _start(
        broker, sockdir, package, images, monkeypatch, HealthInterval=60.0, CaptureBand=[]
    )
    try:
        health = cloud.take_health(
            lambda m: (
                bool(m.get("models")) and m["models"][0]["since_start"]["results_published"] >= 1
            ),
            timeout=15,
        )
        assert time.monotonic() - started < 15  # not HealthInterval=60 s later
        assert health["models"][0]["package_sha256"] == package["sha256"]
    finally:
        _stop(app, thread, parts)
        cloud.close()


def test_shadow_model_runs_on_the_same_frames_and_is_never_published(
    broker: Broker,
    sockdir: Path,
    package: dict[str, Path],
    images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Candidate beside the current model: measured and compared in health, never published."""
    cloud = Cloud(broker)
    host, app, thread, code, parts = _start(
        broker,
        sockdir,
        package,
        images,
        monkeypatch,
        CaptureBand=[],
        HealthWindow=30,
        ShadowPackagePath=str(package["shadow_dir"]),
    )
    results: list[dict[str, Any]] = []

    def shadow_of(msg: dict[str, Any]) -> dict[str, Any] | None:
        found = [m for m in msg.get("models", []) if m["role"] == "shadow"]
        return found[0] if found else None

    try:
        health = cloud.take_health(
            lambda m: (
                (s := shadow_of(m)) is not None
                and s["agreement"]["since_start"]["images_compared"] >= 3
            ),
            results=results,
        )
        current, shadow = health["models"]
        assert current["role"] == "current" and current["version"] == "2.0.1"
        assert shadow["state"] == "running" and "problem" not in shadow
        assert (shadow["name"], shadow["version"]) == ("tag-scratch-detector", "2.1.0")
        assert shadow["package_sha256"] == package["shadow_sha256"]
        assert shadow["key_fingerprint"] == fingerprint(package["public_key"])
        assert shadow["since_start"]["images"] >= 3 and shadow["since_start"]["errors"] == 0
        assert shadow["since_start"]["latency_ms"]["p50"] is not None
        assert shadow["window"]["seconds"] == 30.0 and current["window"]["seconds"] == 30.0
        # Same weights on the same frames: they agree on every image and every detection.
        for span in ("since_start", "window"):
            assert shadow["agreement"][span]["defect_agreement"] == 1.0
            assert shadow["agreement"][span]["detection_agreement"] == 1.0
        assert shadow["since_start"]["defect_rate"] == pytest.approx(
            current["since_start"]["defect_rate"], abs=0.5
        )

        # A candidate signed by another key: refused by the agent, reported, current unharmed.
        host.update_configuration(
            COMPONENT, [], {"ShadowPackagePath": str(package["foreign_dir"])}, time.time()
        )
        health = cloud.take_health(
            lambda m: (s := shadow_of(m)) is not None and s["state"] == "failed", results=results
        )
        problem = shadow_of(health)["problem"]
        assert str(package["foreign_dir"]) in problem
        assert fingerprint(package["other_key"]) in problem  # the signer's key
        assert fingerprint(package["public_key"]) in problem  # the agent's key
        assert health["state"] == "running" and health["models"][0]["state"] == "running"

        # A candidate whose component is not there (yet): failed, naming the path.
        missing = sockdir / "no-such-component" / "package"
        host.update_configuration(COMPONENT, [], {"ShadowPackagePath": str(missing)}, time.time())
        health = cloud.take_health(
            lambda m: (
                (s := shadow_of(m)) is not None
                and s["state"] == "failed"
                and str(missing) in s.get("problem", "")
            ),
            results=results,
        )
        before = len(results)
        cloud.take_health(lambda m: len(results) >= before + 3, results=results)

        # Off again: the shadow entry disappears.
        host.update_configuration(COMPONENT, [], {"ShadowPackagePath": ""}, time.time())
        cloud.take_health(lambda m: shadow_of(m) is None and m["models"], results=results)
    finally:
        _stop(app, thread, parts)
        cloud.close()
    assert code == [0]
    assert results, "no results arrived"
    # Only the current model's results are ever published.
    assert {r["model"]["version"] for r in results} == {"2.0.1"}
    assert {r["model"]["package_sha256"] for r in results} == {package["sha256"]}
