"""The local home, endpoints.json, the environment it exports, and `edgekit local` arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgekit.errors import LocalBackendError
from edgekit.local import endpoints as ep
from edgekit.local import process
from edgekit.local.home import HomeLayout, home_lock, local_home


def fake_running_home(home: Path, *, region: str = "us-east-1") -> ep.LocalEndpoints:
    """endpoints.json plus pid files naming this test process (alive, ours) for each server.

    Enough for code that reads the endpoints without talking to them.
    """
    layout = HomeLayout(home).ensure()
    ticks = process.process_start_ticks(os.getpid())
    for name in ep.SERVERS:
        record = process.ProcessRecord(name, os.getpid(), ticks, ["pytest"], 0.0)
        layout.pid_file(name).write_text(record.to_json())
    data = {
        "region": region,
        "account_id": "123456789012",
        "moto": "http://127.0.0.1:4566",
        "greengrass": "http://127.0.0.1:4567",
        "mqtt": "127.0.0.1:1884",
    }
    layout.endpoints_file.write_text(json.dumps(data))
    return ep.LocalEndpoints.load(home)


# --- home ---------------------------------------------------------------------------------


def test_local_home_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKIT_LOCAL_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert local_home() == tmp_path / "xdg" / "edgekit"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "env"))
    assert local_home() == tmp_path / "env"
    assert local_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert local_home("~/x") == Path.home() / "x"


def test_layout_paths(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path).ensure()
    assert layout.endpoints_file == tmp_path / "endpoints.json"
    assert layout.pid_file("device-thing1") == tmp_path / "run" / "device-thing1.pid"
    assert layout.log_file("moto") == tmp_path / "logs" / "moto.log"
    assert layout.device_root("thing1") == tmp_path / "devices" / "thing1"
    assert layout.greengrass_dir == tmp_path / "greengrass"
    assert (tmp_path / "run").is_dir() and (tmp_path / "logs").is_dir()


def test_home_lock_is_exclusive(tmp_path: Path) -> None:
    # A second holder (here: the same process through a new descriptor) must wait.
    with (
        home_lock(tmp_path),
        pytest.raises(LocalBackendError, match=r"\.lock"),
        home_lock(tmp_path, timeout=0.2),
    ):
        pass
    with home_lock(tmp_path, timeout=0.2):  # released after the first block
        pass


# --- endpoints.json and env -----------------------------------------------------------------


def test_load_without_up_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LocalBackendError, match="edgekit local up"):
        ep.LocalEndpoints.load(tmp_path)


def test_load_with_a_dead_server_says_which(tmp_path: Path) -> None:
    fake_running_home(tmp_path)
    HomeLayout(tmp_path).pid_file("mqtt").unlink()
    with pytest.raises(LocalBackendError, match=r"mqtt stopped.*edgekit local up"):
        ep.LocalEndpoints.load(tmp_path)


def test_load_with_corrupt_file(tmp_path: Path) -> None:
    fake_running_home(tmp_path)
    HomeLayout(tmp_path).endpoints_file.write_text("{not json")
    with pytest.raises(LocalBackendError, match="endpoints.json is not readable JSON"):
        ep.LocalEndpoints.load(tmp_path)


def test_load_and_env(tmp_path: Path) -> None:
    e = fake_running_home(tmp_path, region="eu-west-1")
    assert (e.region, e.account_id, e.mqtt_host, e.mqtt_port) == (
        "eu-west-1",
        "123456789012",
        "127.0.0.1",
        1884,
    )
    assert e.url_for("s3") == e.moto_url == "http://127.0.0.1:4566"
    assert e.url_for("greengrassv2") == e.greengrass_url
    env = e.env()
    for name in (
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_IOT",
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
        "AWS_ENDPOINT_URL_SAGEMAKER",
        "AWS_ENDPOINT_URL_IAM",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
        "AWS_ENDPOINT_URL",
    ):
        assert env[name] == "http://127.0.0.1:4566", name
    assert env["AWS_ENDPOINT_URL_GREENGRASSV2"] == "http://127.0.0.1:4567"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["EDGEKIT_MQTT_ENDPOINT"] == "127.0.0.1:1884"
    assert env["EDGEKIT_LOCAL_HOME"] == str(tmp_path)


def test_endpoint_variable_names_match_botocore() -> None:
    """botocore reads AWS_ENDPOINT_URL_<serviceId, upper-cased, spaces to underscores>."""
    import botocore.session

    session = botocore.session.get_session()
    for service, variable in ep.ENDPOINT_ENV.items():
        service_id = session.get_service_model(service).service_id
        expected = "AWS_ENDPOINT_URL_" + str(service_id).upper().replace(" ", "_")
        assert variable == expected, service


def test_botocore_picks_up_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain boto3 client (no endpoint_url) resolves to the local endpoints from env()."""
    import boto3

    e = fake_running_home(tmp_path)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in e.env().items():
        monkeypatch.setenv(key, value)
    for service in ("s3", "iot", "cloudformation", "sagemaker", "iam", "sts", "logs", "ssm"):
        assert boto3.client(service).meta.endpoint_url == e.moto_url, service
    assert boto3.client("greengrassv2").meta.endpoint_url == e.greengrass_url
    assert boto3.client("s3").meta.region_name == "us-east-1"


def test_status_of_an_empty_home_reports_everything_down(tmp_path: Path) -> None:
    rows = ep.status(tmp_path)
    assert [r.name for r in rows] == ["moto", "greengrass", "mqtt"]
    assert not any(r.ok for r in rows)
    assert ep.down(tmp_path) == []  # nothing to stop; idempotent
    assert ep.down(tmp_path / "never-created") == []


def test_up_fails_clearly_without_the_greengrass_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ep, "GREENGRASS_MODULE", "edgekit.local.no_such_emulator")
    with pytest.raises(
        LocalBackendError, match=r"edgekit\.local\.no_such_emulator.*not importable"
    ):
        ep.up(tmp_path)
    assert process.running(tmp_path) == {}  # nothing was started


# --- CLI ------------------------------------------------------------------------------------


def test_cli_env_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    home = tmp_path / "a home"  # a space: values must be quoted
    e = fake_running_home(home)
    assert main(["local", "env", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"export AWS_ENDPOINT_URL_S3={e.moto_url}\n" in out
    assert f"export EDGEKIT_LOCAL_HOME='{home}'\n" in out

    assert main(["local", "--home", str(home), "env", "--format", "dotenv"]) == 0
    out = capsys.readouterr().out
    assert "AWS_ENDPOINT_URL_GREENGRASSV2=http://127.0.0.1:4567\n" in out
    assert f'EDGEKIT_LOCAL_HOME="{home}"\n' in out

    assert main(["local", "env", "--home", str(home), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == e.env()


def test_cli_env_without_up_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli import main

    assert main(["local", "env", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edgekit local up" in err


def test_cli_status_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    assert main(["local", "status", "--home", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "PID", "ENDPOINT", "ALIVE", "ANSWERING"]
    assert "moto" in out and "mqtt" in out
