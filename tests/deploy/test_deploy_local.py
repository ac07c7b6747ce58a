"""Publish and deploy against the local backend: moto, the Greengrass emulator, a device runtime.

The end-to-end test runs the real components on a local device: the model
component unpacks a signed package, the agent serves it over gRPC, the inference
app publishes results through IPC to the local broker, where paho receives them.
"""

from __future__ import annotations

import json
import queue
import socket
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
from edgekit.deploy import deploy, target_devices  # noqa: E402
from edgekit.errors import ConfigurationError, DeviceDeploymentError  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints, process  # noqa: E402
from edgekit.local.device import add_device, device_logs, list_devices, remove_device  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.package.keys import fingerprint  # noqa: E402
from edgekit.recipes import parse_recipe  # noqa: E402
from edgekit.schemas import validate_result  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = pytest.mark.integration
GROUP = "edgekit-e2e"
THING = "e2e-device"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        yield home, Settings(local_home=home, thing_group=GROUP)
    finally:
        endpoints.down(home)


@pytest.fixture(scope="module")
def model_package(local: tuple[Path, Settings]) -> Path:
    home, settings = local
    private, _ = signing_keys(None, settings)
    model = build_tiny_model(home / "tiny.onnx")
    return build_package(
        model, name=settings.model_name, version="1.4.0", key=private, out=home / "m.tar.gz"
    ).path


def test_publish_twice_increments_versions(local: tuple[Path, Settings], tmp_path: Path) -> None:
    home, settings = local
    built = build_components(settings, out_dir=tmp_path, names=[settings.agent_component])
    first = publish_components(settings, built)
    second = publish_components(settings, built)
    name = settings.agent_component
    assert (first[name], second[name]) == ("1.0.0", "1.0.1")
    greengrass = clients.client("greengrassv2", settings)
    stored = greengrass.get_component(arn=second.details[name].arn, recipeOutputFormat="JSON")
    recipe = parse_recipe(stored["recipe"])  # validates as the service stored it
    artifact = recipe["Manifests"][0]["Artifacts"][0]
    assert artifact["URI"].startswith(f"s3://{settings.project_name}-artifacts-")
    assert "/1.0.1/" in artifact["URI"] and artifact["Algorithm"] == "SHA-256"
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert Path(defaults["PythonExecutable"]).exists()  # the local profile: this interpreter
    assert "1.0.1" in second.table() and second.details[name].arn.endswith(":versions:1.0.1")


def test_deploy_refuses_unknown_group_and_version(local: tuple[Path, Settings]) -> None:
    home, settings = local
    with pytest.raises(ConfigurationError, match="thing group nobody"):
        deploy(settings, thing_group="nobody", wait=False)
    clients.client("iot", settings).create_thing_group(thingGroupName="empty-group")
    with pytest.raises(ConfigurationError, match="no version 9.9.9"):
        deploy(
            settings,
            thing_group="empty-group",
            components={settings.agent_component: "9.9.9"},
            wait=False,
        )


class Subscriber:
    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"e2e-{id(self)}")
        self.client.on_message = lambda c, u, m: self.messages.put(json.loads(m.payload))
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("qualityinspection/scratch-detection", 1)
        assert ready.wait(10)

    def take(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"received only {len(got)} of {count} results"
            got.append(self.messages.get(timeout=remaining))
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Gate:
    """Holds the broker's port while the broker is down: the device's MQTT client connects,
    gets no CONNACK, and waits, so it cannot reach the restarted broker before the test's
    subscriber does (which would make the first redelivered results unobservable)."""

    def __init__(self, port: int) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.closing = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close_listener(self) -> None:
        # accept() in another thread would keep the socket listening after close(): stop it first.
        self.closing.set()
        self.thread.join(5)
        self.listener.close()

    def release(self) -> None:
        for conn in self.held:
            conn.close()


@pytest.mark.slow
def test_end_to_end_results_config_update_and_outage(
    local: tuple[Path, Settings], model_package: Path, tmp_path: Path
) -> None:
    home, settings = local
    started = time.monotonic()
    add_device(THING, GROUP, home)
    built = build_components(settings, out_dir=tmp_path, model_package=model_package)
    published = publish_components(settings, built)
    mqtt_port = endpoints.LocalEndpoints.load(home).mqtt_port
    subscriber = Subscriber(mqtt_port)
    result = deploy(
        settings,
        thing_group=GROUP,
        configuration={settings.inference_component: {"InferenceInterval": 0.2}},
        timeout=120,
    )
    (device,) = result.devices
    assert device.thing_name == THING and device.ready
    assert device.components[settings.model_component] == (
        published[settings.model_component],
        "FINISHED",
    )
    assert device.components[settings.inference_component][1] == "RUNNING"
    assert THING in result.table()
    proof = result.proofs[THING]
    assert proof.proven and proof.package_sha256 == sha256_file(model_package)
    assert proof.results >= 3 and result.criteria.key_fingerprint == proof.key_fingerprint

    results = subscriber.take(5)
    for msg in results:
        validate_result(msg)
        assert msg["thing_name"] == THING
        assert msg["model"] == {
            "name": settings.model_name,
            "version": "1.4.0",
            "package_sha256": sha256_file(model_package),
        }

    # A configuration-only deployment: same versions, new values, no restart of the app.
    deploy(
        settings,
        thing_group=GROUP,
        configuration={
            settings.inference_component: {"InferenceInterval": 0.1, "ScoreThreshold": 0.999}
        },
        timeout=60,
    )
    deadline = time.monotonic() + 15
    while True:
        msg = subscriber.take(1)[0]
        if all(d["score"] >= 0.999 for d in msg["detections"]) and msg["sequence"] > 0:
            following = subscriber.take(3)
            if all(d["score"] >= 0.999 for m in following for d in m["detections"]):
                break
        assert time.monotonic() < deadline, "the configuration update never took effect"
    log = device_logs(THING, settings.inference_component, home)
    assert log.count("inspecting ") == 1, "the app restarted instead of re-reading its config"

    # The broker goes away for a while; nothing is lost and order is kept.
    last_seen = subscriber.take(1)[0]["sequence"]
    process.stop_process(home, "mqtt")
    gate = Gate(mqtt_port)
    broker: Broker | None = None
    try:
        subscriber.close()
        # What reached the broker before it died, then what the device delivers afterwards.
        before = []
        while not subscriber.messages.empty():
            before.append(subscriber.messages.get()["sequence"])
        time.sleep(3.0)
        gate.close_listener()
        broker = Broker(host="127.0.0.1", port=mqtt_port).start()
        after = Subscriber(mqtt_port)
        gate.release()
        received = [m["sequence"] for m in after.take(25, timeout=30)]
        after.close()
        sequences = [s for s in before + received if s > last_seen]
        assert sequences, "nothing was delivered after the outage"
        # In order and without gaps; a result the broker had already taken may come twice.
        deduped = [s for i, s in enumerate(sequences) if s not in sequences[:i]]
        assert deduped == list(range(last_seen + 1, last_seen + 1 + len(deduped))), sequences
        assert len(deduped) >= 25
    finally:
        gate.release()
        if not gate.closing.is_set():
            gate.close_listener()
        if broker is not None:
            broker.stop()
        endpoints.up(home)  # the broker process again, on its port, for the tests after this
    assert time.monotonic() - started < 90


def test_the_app_reports_its_health_to_the_named_shadow(
    local: tuple[Path, Settings], model_package: Path
) -> None:
    """Issue 14: the app writes its health summary to the edgekit-health shadow over MQTT and
    the local backend's Device Shadow service keeps it where GetThingShadow reads it (the
    device writes it only over MQTT: a shadow here is that path working)."""
    home, settings = local
    if not any(d.thing == THING and d.running for d in list_devices(home)):
        pytest.skip("needs the device of the end-to-end test")
    sha = sha256_file(model_package)
    data = clients.client("iot-data", settings)
    deadline = time.monotonic() + 30  # HealthInterval is 5 s; a new package updates at once
    shadow: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            answer = data.get_thing_shadow(thingName=THING, shadowName="edgekit-health")
        except data.exceptions.ResourceNotFoundException:
            time.sleep(0.5)
            continue
        shadow = json.loads(answer["payload"].read())["state"]["reported"]
        if shadow.get("package_sha256") == sha and shadow.get("results_published", 0) >= 1:
            break
        time.sleep(0.5)
    assert shadow.get("package_sha256") == sha, f"no health shadow with {sha[:12]}: {shadow}"
    assert shadow["thing_name"] == THING and shadow["results_published"] >= 1
    assert shadow["model_version"] == "1.4.0"
    assert shadow["timestamp"].endswith("Z") and "T" in shadow["timestamp"]


@pytest.mark.slow
def test_failed_deployment_names_the_device_and_rolls_back(local: tuple[Path, Settings]) -> None:
    """A PublicKey the agent cannot read: the agent breaks, the device rolls back, we say why."""
    home, settings = local
    if not any(d.thing == THING and d.running for d in list_devices(home)):
        pytest.skip("needs the device of the end-to-end test")
    with pytest.raises(DeviceDeploymentError) as info:
        deploy(
            settings,
            thing_group=GROUP,
            configuration={settings.agent_component: {"PublicKey": "not a key"}},
            timeout=120,
        )
    assert info.value.device == THING
    assert settings.agent_component in info.value.reason
    assert f"edgekit local device logs {THING}" in str(info.value)
    assert "rolled back" in info.value.reason


@pytest.mark.slow
def test_a_package_signed_with_a_new_key_reaches_a_device_that_ran_the_old_key(
    local: tuple[Path, Settings], tmp_path: Path
) -> None:
    """Issue 11: the agent kept the PublicKey of an older deployment and refused the new
    package while `deploy --wait` said SUCCEEDED. The build owns PublicKey; the deployment
    resets it, and the proof (health: package sha256 and the agent's key) says so."""
    home, settings = local
    group, thing = "edgekit-keys", "keys-device"
    add_device(thing, group, home)
    model = build_tiny_model(tmp_path / "tiny.onnx")
    proofs = []
    for name, version in (("old-key", "2.0.0"), ("new-key", "2.0.1")):
        private, public = signing_keys(tmp_path / name, settings)
        package = build_package(
            model,
            name=settings.model_name,
            version=version,
            key=private,
            out=tmp_path / f"{name}.tar.gz",
        ).path
        built = build_components(
            settings,
            out_dir=tmp_path / f"build-{name}",
            model_package=package,
            key_dir=tmp_path / name,
        )
        publish_components(settings, built)
        result = deploy(
            settings,
            thing_group=group,
            configuration={settings.inference_component: {"InferenceInterval": 0.2}},
            timeout=120,
        )
        proof = result.proofs[thing]
        assert proof.proven, proof
        assert proof.package_sha256 == sha256_file(package)
        assert proof.key_fingerprint == fingerprint(public) == result.criteria.key_fingerprint
        proofs.append(proof)
    assert proofs[0].key_fingerprint != proofs[1].key_fingerprint


@pytest.mark.slow
def test_a_silent_device_fails_the_deployment_and_the_others_are_proven(
    local: tuple[Path, Settings], model_package: Path, tmp_path: Path
) -> None:
    """Issue 11: "3 device(s) ready" while two devices never inspected. Every device of the
    group must prove itself; one that says nothing is FAILED by name at the timeout."""
    home, settings = local
    group = "edgekit-silent"
    add_device("talks", group, home)
    add_device("silent", group, home)
    greengrass = clients.client("greengrassv2", settings)
    arn = clients.client("iot", settings).describe_thing_group(thingGroupName=group)
    deadline = time.monotonic() + 30
    # A core device of the group: registered, with its group membership reported.
    iot = clients.client("iot", settings)
    while "silent" not in target_devices(greengrass, iot, arn["thingGroupArn"]):
        assert time.monotonic() < deadline, "the device never registered in its group"
        time.sleep(0.2)
    remove_device("silent", home)  # still a core device of the group, but nothing runs
    built = build_components(settings, out_dir=tmp_path, model_package=model_package)
    publish_components(settings, built)
    with pytest.raises(DeviceDeploymentError) as info:
        deploy(
            settings,
            thing_group=group,
            configuration={settings.inference_component: {"InferenceInterval": 0.2}},
            timeout=40,
        )
    error = info.value
    assert list(error.devices) == ["silent"] and error.device == "silent"
    assert "1 of 2 device(s) did not prove inspection" in str(error)
    assert "no health message since the deployment started" in error.reason
    assert error.result.proofs["talks"].proven
    assert error.result.proofs["talks"].package_sha256 == sha256_file(model_package)
