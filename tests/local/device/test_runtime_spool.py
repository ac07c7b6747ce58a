"""A device runtime killed (SIGKILL) during a broker outage loses no result (issue 12, item 2).

A component publishes N results with QoS 1 while the MQTT broker is down and, like the
inference app, forgets each once PublishToIoTCore answers. The runtime is killed with
SIGKILL and started again, and the broker comes back, in either order: a subscriber
that drops duplicate ``message_id``s gets all N. Before the disk spool the bridge held
those messages in memory, and the restart lost every one.

Also: the runtime's ``status.json`` (``edgekit local device status``) shows the spool.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import paho.mqtt.client as paho  # noqa: E402

from edgekit.local import process  # noqa: E402
from edgekit.local.device.status import read_local_status  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REGION = "us-east-1"
N = 150

PUBLISHER = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    work, thing, n = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    done = work / "published"
    if not done.exists():  # like the inference app: a result acknowledged is forgotten
        ipc = GreengrassCoreIPCClientV2()
        for i in range(n):
            body = {"message_id": f"{thing}-{i}", "i": i}
            ipc.publish_to_iot_core(
                topic_name=f"results/{thing}", qos="1", payload=json.dumps(body).encode()
            )
            (work / "count").write_text(str(i + 1))
        done.write_text(str(n))
    time.sleep(3600)
    """
)


@dataclass
class Cloud:
    greengrass_url: str
    moto_url: str
    iot: Any
    gg: Any


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[Cloud]:
    import boto3

    from edgekit.local.greengrass.server import GreengrassServer

    server = GreengrassServer(tmp_path_factory.mktemp("gg"), moto_url, REGION).start()
    kw = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        yield Cloud(
            server.url,
            moto_url,
            boto3.client("iot", endpoint_url=moto_url, **kw),
            boto3.client("greengrassv2", endpoint_url=server.url, **kw),
        )
    finally:
        server.stop()


def _free_port() -> int:
    probe = Broker(host="127.0.0.1", port=0).start()
    port = probe.port
    probe.stop()
    return port


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class DedupSubscriber:
    """The cloud side: collects results, dropping duplicate message_ids."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.ids: set[str] = set()
        self.received = 0
        self._got: queue.Queue[bytes] = queue.Queue()
        subacked: queue.Queue[int] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud-dedup")
        self.client.on_message = lambda c, u, m: self._got.put(m.payload)
        self.client.on_subscribe = lambda c, u, mid, rc, p: subacked.put(mid)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        _, mid = self.client.subscribe(topic, 1)
        assert subacked.get(timeout=5) == mid

    def collect(self, n: int, timeout: float) -> set[str]:
        deadline = time.monotonic() + timeout
        while len(self.ids) < n and time.monotonic() < deadline:
            try:
                payload = self._got.get(timeout=0.2)
            except queue.Empty:
                continue
            self.received += 1
            self.ids.add(json.loads(payload)["message_id"])
        return self.ids

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("order", ["runtime-then-broker", "broker-then-runtime"])
def test_results_spooled_during_an_outage_survive_a_kill_9_of_the_runtime(
    cloud: Cloud, tmp_path: Path, order: str
) -> None:
    thing = f"spool-{uuid.uuid4().hex[:6]}"
    comp = f"com.test.Publisher{uuid.uuid4().hex[:6]}"
    cloud.iot.create_thing(thingName=thing)
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": comp,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "accessControl": {
                    "aws.greengrass.ipc.mqttproxy": {
                        f"{comp}:pub": {
                            "operations": ["aws.greengrass#PublishToIoTCore"],
                            "resources": [f"results/{thing}"],
                        }
                    }
                }
            }
        },
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Run": f"exec {sys.executable} {script} {{work:path}} {thing} {N}"},
            }
        ],
    }
    cloud.gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())

    port = _free_port()  # the broker is down: nothing listens there yet
    home, root = tmp_path / "home", tmp_path / "root"
    name = f"device-{thing}"
    argv = process.python_argv(
        "edgekit.local.device",
        "--thing", thing, "--root", str(root),
        "--greengrass-endpoint", cloud.greengrass_url, "--aws-endpoint", cloud.moto_url,
        "--mqtt", f"127.0.0.1:{port}", "--region", REGION, "--poll", "0.1", "--settle", "0.3",
    )  # fmt: skip

    def reported() -> bool:
        try:
            cloud.gg.get_core_device(coreDeviceThingName=thing)
            return True
        except cloud.gg.exceptions.ResourceNotFoundException:
            return False

    broker: Broker | None = None
    subscriber: DedupSubscriber | None = None
    pid = process.start_process(home, name, argv, ready=reported, timeout=60)
    try:
        cloud.gg.create_deployment(
            targetArn=f"arn:aws:iot:{REGION}:123456789012:thing/{thing}",
            components={comp: {"componentVersion": "1.0.0"}},
        )
        work = root / "work" / comp
        _wait(lambda: (work / "published").exists(), 90, f"{N} results published")
        status = _wait(
            lambda: (
                (read_local_status(root) or {}).get("mqtt", {}).get("queued") == N
                and read_local_status(root)
            ),
            10,
            "status.json showing the spooled results",
        )
        assert status["mqtt"]["connected"] is False and status["mqtt"]["storage"] == "Disk"

        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not process.is_running(home, name), 10, "the runtime dead")

        def start_broker() -> None:
            nonlocal broker, subscriber
            broker = Broker(host="127.0.0.1", port=port).start()
            subscriber = DedupSubscriber(broker, f"results/{thing}")

        if order == "broker-then-runtime":
            start_broker()
        pid = process.start_process(home, name, argv, ready=lambda: True, timeout=30)
        if order == "runtime-then-broker":
            _wait(
                lambda: (read_local_status(root) or {}).get("mqtt", {}).get("replayed") == N,
                30,
                "the restarted runtime reading its spool back",
            )
            os.kill(pid, signal.SIGSTOP)  # so the subscriber is in place before the bridge
            try:
                start_broker()
            finally:
                os.kill(pid, signal.SIGCONT)
        assert subscriber is not None
        ids = subscriber.collect(N, 60)
        print(f"{order}: {len(ids)} distinct results of {N}, {subscriber.received} received")
        assert ids == {f"{thing}-{i}" for i in range(N)}
        _wait(
            lambda: (read_local_status(root) or {}).get("mqtt", {}).get("queued") == 0,
            20,
            "the spool drained (PUBACKs)",
        )
        final = read_local_status(root)
        assert final is not None
        assert final["mqtt"]["connected"] is True
        assert final["mqtt"]["dropped"] == final["mqtt"]["refused_full"] == 0
    finally:
        process.stop_process(home, name)
        if subscriber is not None:
            subscriber.close()
        if broker is not None:
            broker.stop()
