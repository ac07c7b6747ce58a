"""``edgekit local device restart | status`` (issue 12, item 2).

A device restarts while the MQTT broker is down (it used to be refused: "mqtt
stopped; run `edgekit local up`") and comes up spooling; ``status`` shows the IoT
Core bridge, its spool and every drop counter.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgekit.local.device.cli import MQTT_COUNTERS, format_status

REGION = "us-east-1"

MQTT = {
    "connected": False,
    "reconnects": 2,
    "storage": "Disk",
    "queued": 7,
    "queued_bytes": 700,
    "max_bytes": 2621440,
    "replayed": 5,
    "refused_full": 3,
    "dropped_qos0": 4,
    "lost_qos0": 0,
    "dropped": 1,
    "refusals": 2,
    "corrupt": 1,
}
ROW = {"componentName": "com.example.App", "componentVersion": "1.2.3", "lifecycleState": "RUNNING"}


@pytest.mark.parametrize(
    ("pid", "status", "expected", "absent"),
    [
        (None, None, ["device t: stopped", "no status written yet"], ["IoT Core"]),
        (
            7,
            {"status": "HEALTHY", "writtenAt": time.time(), "components": [ROW], "mqtt": {}},
            ["running (pid 7)", "com.example.App", "1.2.3", "RUNNING", "IoT Core bridge: none"],
            ["spool"],
        ),
        (
            7,
            {"status": "HEALTHY", "writtenAt": time.time(), "components": [], "mqtt": MQTT},
            [
                "NOT connected (spooling)",
                "spool (Disk): 7 messages, 700 of 2621440 bytes",
                "5 read back at the last start",
                "publishes refused, spool full",
            ],
            [],
        ),
        (
            7,
            {
                "status": "HEALTHY",
                "controlPlaneReachable": False,
                "mqtt": {**MQTT, "connected": True},
            },
            ["control plane (local endpoints) was unreachable", "IoT Core bridge: connected;"],
            ["NOT connected"],
        ),
    ],
)
def test_format_status(
    pid: int | None, status: Any, expected: list[str], absent: list[str]
) -> None:
    text = format_status("t", pid, status)
    for part in expected:
        assert part in text, (part, text)
    for part in absent:
        assert part not in text, (part, text)


def test_every_drop_counter_is_printed() -> None:
    text = format_status("t", 1, {"mqtt": MQTT, "components": []})
    for key, label in MQTT_COUNTERS:
        line = next(line for line in text.splitlines() if label in line)
        assert line.split()[-1] == str(MQTT[key])


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_device_restarts_while_the_broker_is_down_and_spools(tmp_path: Path, capsys: Any) -> None:
    from edgekit.cli import main
    from edgekit.local import endpoints, process
    from edgekit.local.device.manager import add_device, list_devices

    if not endpoints.greengrass_available():
        pytest.skip("the Greengrass emulator is not importable")
    home = tmp_path / "home"
    endpoints.up(home, region=REGION, timeout=60)
    thing = f"cli-spool-{uuid.uuid4().hex[:6]}"
    try:
        first = add_device(thing, "", home, poll=0.1)
        assert process.stop_process(home, endpoints.MQTT)  # the broker goes down

        assert main(["local", "device", "restart", thing, "--home", str(home)]) == 0
        assert "restarted" in capsys.readouterr().out
        [device] = [d for d in list_devices(home) if d.thing == thing]
        assert device.running and device.pid != first.pid

        deadline = time.monotonic() + 20
        out = ""
        while time.monotonic() < deadline and "NOT connected (spooling)" not in out:
            assert main(["local", "device", "status", thing, "--home", str(home)]) == 0
            out = capsys.readouterr().out
            time.sleep(0.2)
        assert f"device {thing}: running (pid {device.pid})" in out
        assert "NOT connected (spooling)" in out and "spool (Disk): 0 messages" in out

        endpoints.up(home, region=REGION, timeout=60)  # brings the broker back
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "IoT Core bridge: connected" not in out:
            assert main(["local", "device", "status", thing, "--home", str(home)]) == 0
            out = capsys.readouterr().out
            time.sleep(0.2)
        assert "IoT Core bridge: connected" in out
        assert main(["local", "device", "status", thing, "--json", "--home", str(home)]) == 0
        assert '"queued": 0' in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["local", "device", "status", "--home", str(home)])  # THING is required
        assert main(["local", "device", "status", "no-such-thing", "--home", str(home)]) != 0
    finally:
        endpoints.down(home)
