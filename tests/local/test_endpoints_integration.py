"""`edgekit local up/status/env/down` against real servers on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.local import endpoints as ep
from edgekit.local import process
from edgekit.local.home import HomeLayout

pytestmark = pytest.mark.integration


@pytest.fixture
def clean_aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS variables or config files from the developer's machine leak into the test."""
    for key in list(os.environ):
        if key.startswith("AWS_") or key in ("EDGEKIT_LOCAL_HOME", "EDGEKIT_BACKEND"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    ep.down(home)  # whatever happened, no server outlives the test
    assert process.running(home) == {}


def _edgekit(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", "local", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "EDGEKIT_QUIET": "1"},
    )


def test_plain_boto3_reaches_moto_through_the_env_variables(
    home: Path, clean_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval "$(edgekit local env)"` then plain boto3.client("s3"): the calls land on moto."""
    import boto3

    layout = HomeLayout(home).ensure()
    port_file = layout.port_file("moto")
    argv = process.python_argv(
        "edgekit.local.moto_server", "--port", "0", "--port-file", str(port_file)
    )

    def ready() -> bool:
        return port_file.exists() and ep.http_answers(
            f"http://127.0.0.1:{port_file.read_text().strip()}", "/moto-api/"
        )

    process.start_process(home, "moto", argv, ready=ready, timeout=30)
    moto_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    local = ep.LocalEndpoints(
        "us-east-1", ep.ACCOUNT_ID, moto_url, "http://127.0.0.1:9", "x:1", home
    )
    for key, value in local.env().items():
        monkeypatch.setenv(key, value)

    bucket = f"edgekit-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")  # no endpoint_url: only the variables point it at moto
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="model.onnx", Body=b"onnx")
    iot = boto3.client("iot")
    iot.create_thing(thingName="edge-1")

    direct = dict(
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    body = boto3.client("s3", **direct).get_object(Bucket=bucket, Key="model.onnx")["Body"]
    assert body.read() == b"onnx"
    things = boto3.client("iot", **direct).list_things()["things"]
    assert [t["thingName"] for t in things] == ["edge-1"]
    assert boto3.client("sts").get_caller_identity()["Account"] == ep.ACCOUNT_ID


@pytest.mark.skipif(
    not ep.greengrass_available(),
    reason="edgekit.local.greengrass (the control-plane emulator) is not written yet",
)
def test_up_is_idempotent_and_down_leaves_nothing(home: Path, clean_aws_env: None) -> None:
    t0 = time.monotonic()
    # Two concurrent `up`s: the home lock makes one start the servers, the other find them.
    ups = [
        subprocess.Popen(
            [sys.executable, "-m", "edgekit", "local", "up", "--home", str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in ups]
    for p, (_out, err) in zip(ups, outputs, strict=True):
        assert p.returncode == 0, err
    assert outputs[0][0] == outputs[1][0]
    first = process.running(home)
    assert set(first) == {"moto", "greengrass", "mqtt", "scheduler"}
    recorded = json.loads((home / "endpoints.json").read_text())
    assert recorded["moto"] in outputs[0][0] and recorded["mqtt"] in outputs[0][0]
    assert recorded["scheduler"].startswith("http://127.0.0.1:")  # the local scheduler

    again = _edgekit(home, "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout == outputs[0][0]  # same endpoints
    assert process.running(home) == first  # same pids

    env_out = _edgekit(home, "env", "--format", "json")
    assert env_out.returncode == 0, env_out.stderr
    env = json.loads(env_out.stdout)
    assert env["AWS_ENDPOINT_URL_S3"] == recorded["moto"]
    assert env["AWS_ENDPOINT_URL_GREENGRASSV2"] == recorded["greengrass"]
    assert env["EDGEKIT_MQTT_ENDPOINT"] == recorded["mqtt"]

    # The same code path a notebook uses: edgekit.clients with the local backend.
    from edgekit import clients
    from edgekit.settings import Settings

    settings = Settings(backend="local", local_home=home)
    s3 = clients.client("s3", settings)
    s3.create_bucket(Bucket="edgekit-artifacts")
    s3.put_object(Bucket="edgekit-artifacts", Key="a.txt", Body=b"hello")
    assert s3.get_object(Bucket="edgekit-artifacts", Key="a.txt")["Body"].read() == b"hello"
    iot = clients.client("iot", settings)
    iot.create_thing(thingName="edge-1")
    assert iot.describe_thing(thingName="edge-1")["thingName"] == "edge-1"
    assert "components" in clients.client("greengrassv2", settings).list_components()

    status = _edgekit(home, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert {r[0]: r[1:] for r in rows} == {
        name: [str(first[name]), recorded[name], "yes", "yes"] for name in first
    }

    # A dead server is restarted alone, on its old port; the others keep their pids.
    process.stop_process(home, "mqtt")
    assert _edgekit(home, "status").returncode == 1
    healed = ep.up(home)
    assert healed.mqtt == recorded["mqtt"]
    now = process.running(home)
    assert now["moto"] == first["moto"] and now["greengrass"] == first["greengrass"]
    assert now["mqtt"] != first["mqtt"]

    # If its old port is taken meanwhile, it moves to a free one and endpoints.json follows.
    process.stop_process(home, "mqtt")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", healed.mqtt_port))
        squatter.listen()
        moved_mqtt = ep.up(home)
    assert moved_mqtt.mqtt != healed.mqtt
    assert json.loads((home / "endpoints.json").read_text())["mqtt"] == moved_mqtt.mqtt
    healed = moved_mqtt
    now = process.running(home)

    # Another region: only the emulator (which stamps ARNs with it) is restarted.
    moved = ep.up(home, region="eu-west-1")
    assert (moved.region, moved.moto_url, moved.mqtt) == ("eu-west-1", healed.moto_url, healed.mqtt)
    after = process.running(home)
    assert after["moto"] == now["moto"] and after["mqtt"] == now["mqtt"]
    assert after["greengrass"] != now["greengrass"]
    now = after

    down = _edgekit(home, "down")
    assert down.returncode == 0, down.stderr
    assert process.running(home) == {}
    for pid in now.values():
        assert process._proc_stat(pid) is None or process._proc_stat(pid)[0] in ("Z", "X")
    assert not (home / "endpoints.json").exists()
    assert _edgekit(home, "down").stdout.strip() == "nothing was running"
    assert _edgekit(home, "status").returncode == 1
    assert time.monotonic() - t0 < 30
