"""Chaos: the whole inspection flow keeps every result while its parts are killed -9.

Two local devices inspect at 20 images a second each. While they do, the broker, one
device runtime, the other device's model agent and the local endpoints (moto and the
Greengrass emulator) are each killed with SIGKILL and brought back. Afterwards every
result a device produced (its spool's sequence numbers, 0 to the last one taken) has
reached a persistent-session subscriber; duplicates are allowed only as the same
``message_id`` (QoS 1 is at least once). The counts are printed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import paho.mqtt.client as paho  # noqa: E402

from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy  # noqa: E402
from edgekit.edge.spool import Spool  # noqa: E402
from edgekit.local import endpoints, process  # noqa: E402
from edgekit.local.device import add_device, remove_device  # noqa: E402
from edgekit.local.device.manager import process_name  # noqa: E402
from edgekit.local.home import HomeLayout  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.chaos]
GROUP = "chaos-line"
THINGS = ("chaos-1", "chaos-2")
INTERVAL = 0.05  # 20 results a second per device
SETTLE = 90.0  # seconds a step may take to see results flow again


class Subscriber:
    """A persistent-session (clean session 0) QoS 1 subscriber that keeps every result."""

    def __init__(self, endpoint: str, topic: str) -> None:
        host, _, port = endpoint.rpartition(":")
        self.lock = threading.Lock()
        self.ids: dict[str, set[str]] = defaultdict(set)
        self.sequences: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.received = 0
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id="edgekit-chaos-subscriber",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        self.client.reconnect_delay_set(0.2, 2.0)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        result = json.loads(msg.payload)
        thing, message_id = str(result["thing_name"]), str(result["message_id"])
        spool_id = message_id[len(thing) + 1 :].split("-")[0]
        with self.lock:
            self.received += 1
            self.ids[thing].add(message_id)
            self.sequences[(thing, spool_id)].add(int(result["sequence"]))

    def highest(self, thing: str) -> int:
        with self.lock:
            seqs = [max(s) for (t, _), s in self.sequences.items() if t == thing and s]
        return max(seqs, default=-1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[Path, Settings, Subscriber]]:
    home = tmp_path / "home"
    local = endpoints.up(home)
    settings = Settings(local_home=home, thing_group=GROUP)
    subscriber = Subscriber(local.mqtt, settings.results_topic)
    try:
        for thing in THINGS:
            add_device(thing, GROUP, home)
        private, _ = signing_keys(None, settings)
        model = build_tiny_model(tmp_path / "tiny.onnx")
        pkg = build_package(
            model, name=settings.model_name, version="1.0.0", key=private, out=tmp_path / "m.tar.gz"
        ).path
        built = build_components(settings, out_dir=tmp_path / "built", model_package=pkg)
        publish_components(settings, built)
        deploy(
            settings,
            thing_group=GROUP,
            configuration={settings.inference_component: {"InferenceInterval": INTERVAL}},
            timeout=180,
        )
        yield home, settings, subscriber
    finally:
        subscriber.close()
        endpoints.down(home)


def kill9(pid: int | None, what: str) -> None:
    """SIGKILL ``pid`` and wait until it is gone (or a zombie): a dying broker still holds
    its port and answers `local up`'s liveness check, which then kept it instead of
    starting a new one (a race seen on a loaded CI machine)."""
    assert pid is not None, f"{what} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} (pid {pid}) still runs 10 s after SIGKILL")


def agent_pid(device_root: Path) -> int | None:
    """The model agent process of the device at ``device_root`` (its argv names its work folder)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if " agent serve " in f" {text} " and str(device_root) in text:
            return int(entry.name)
    return None


def flowing(subscriber: Subscriber, things: tuple[str, ...], what: str) -> float:
    """Wait until each device's results advance by 20 after ``what``; the seconds it took."""
    start = time.monotonic()
    marks = {thing: subscriber.highest(thing) for thing in things}
    while time.monotonic() - start < SETTLE:
        if all(subscriber.highest(t) >= marks[t] + 20 for t in things):
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(
        f"results stopped after {what}: highest {marks} -> "
        f"{ {t: subscriber.highest(t) for t in things} }"
    )


def spool_of(home: Path, settings: Settings, thing: str) -> Path:
    root = HomeLayout.of(home).device_root(thing)
    return root / "work" / settings.inference_component / "spool" / "results.sqlite3"


def test_every_result_survives_kill_9_of_each_part(
    line: tuple[Path, Settings, Subscriber],
) -> None:
    home, settings, subscriber = line
    layout = HomeLayout.of(home)
    flowing(subscriber, THINGS, "the deployment")
    thing = THINGS[0]

    def kill_broker() -> None:
        kill9(process.pid_of(home, endpoints.MQTT), "the broker")

    def kill_runtime() -> None:
        kill9(process.pid_of(home, process_name(thing)), f"the runtime of {thing}")

    def kill_agent() -> None:
        kill9(agent_pid(layout.device_root(THINGS[1])), f"the agent of {THINGS[1]}")

    def kill_endpoints() -> None:
        for name in (endpoints.MOTO, endpoints.GREENGRASS):
            kill9(process.pid_of(home, name), name)

    def broker_up() -> None:
        endpoints.up(home)

    def runtime_up() -> None:
        add_device(thing, GROUP, home)

    def subscriber_away() -> None:
        subscriber.client.disconnect()  # its persistent session queues the results
        subscriber.client.loop_stop()

    def subscriber_back() -> None:
        subscriber.client.reconnect()
        subscriber.client.loop_start()

    def pause() -> None:
        time.sleep(2.0)  # results pile up in the spools meanwhile

    # Each scenario is a sequence of actions; results must flow again after each.
    scenarios: dict[str, list[Callable[[], None]]] = {
        "broker": [kill_broker, pause, broker_up],
        # What the broker acknowledged and queued for an absent subscriber outlives it.
        "broker while the subscriber is away": [
            subscriber_away, pause, kill_broker, broker_up, pause, subscriber_back,
        ],
        # The loss: the runtime dies while the broker is down (restarted first).
        "runtime during an outage, runtime first": [
            kill_broker, pause, kill_runtime, runtime_up, pause, broker_up,
        ],
        "runtime during an outage, broker first": [
            kill_broker, pause, kill_runtime, pause, broker_up, runtime_up,
        ],
        "agent": [kill_agent, pause],  # the device runtime restarts its component
        "local endpoints": [kill_endpoints, pause, broker_up],
    }  # fmt: skip
    timings: dict[str, float] = {}
    for name, actions in scenarios.items():
        for action in actions:
            action()
        timings[name] = flowing(subscriber, THINGS, f"kill -9 of the {name}")

    # Stop producing (a graceful stop keeps the spools), note the last sequence each
    # device took, then start again: the spools drain to the subscriber.
    for thing in THINGS:
        remove_device(thing, home)
    last: dict[str, tuple[str, int, int]] = {}
    for thing in THINGS:
        with Spool(spool_of(home, settings, thing)) as spool:
            last[thing] = (spool.spool_id, spool.last_sequence, spool.dropped)
    for thing in THINGS:
        add_device(thing, GROUP, home)
    deadline = time.monotonic() + SETTLE
    missing: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        with subscriber.lock:
            missing = {
                thing: sorted(set(range(seq + 1)) - subscriber.sequences[(thing, sid)])
                for thing, (sid, seq, _dropped) in last.items()
            }
        if not any(missing.values()):
            break
        time.sleep(0.5)
    produced = sum(seq + 1 for _sid, seq, _d in last.values())
    unique = sum(len(ids) for ids in subscriber.ids.values())
    print(
        f"\nchaos: produced {produced} results (before the final stop), "
        f"{subscriber.received} messages received, {unique} unique, "
        f"{subscriber.received - unique} duplicates (same message_id); "
        f"recovery seconds {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}; "
        f"spool drops {[d for _s, _q, d in last.values()]}"
    )
    assert all(d == 0 for _s, _q, d in last.values()), f"the app's spool dropped results: {last}"
    assert not any(missing.values()), {t: (len(m), m[:20]) for t, m in missing.items()}
