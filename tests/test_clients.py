"""edgekit.clients: Settings -> where boto3 calls land, for both backends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgekit import clients
from edgekit.errors import LocalBackendError
from edgekit.local import process
from edgekit.local.endpoints import SERVERS
from edgekit.local.home import HomeLayout
from edgekit.settings import Settings

MOTO = "http://127.0.0.1:4566"
GREENGRASS = "http://127.0.0.1:4567"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose endpoints.json is "running" (pid files name this live test process)."""
    for key in list(os.environ):
        if key.startswith("AWS_") or key == "EDGEKIT_LOCAL_HOME":
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    layout = HomeLayout(tmp_path / "home").ensure()
    ticks = process.process_start_ticks(os.getpid())
    for name in SERVERS:
        record = process.ProcessRecord(name, os.getpid(), ticks, ["pytest"], 0.0)
        layout.pid_file(name).write_text(record.to_json())
    layout.endpoints_file.write_text(
        json.dumps(
            {
                "region": "us-east-1",
                "account_id": "123456789012",
                "moto": MOTO,
                "greengrass": GREENGRASS,
                "mqtt": "127.0.0.1:1884",
            }
        )
    )
    return layout.root


def test_local_clients_use_recorded_endpoints(home: Path) -> None:
    settings = Settings(backend="local", region="eu-central-1", local_home=home)
    for service in ("s3", "iot", "cloudformation", "sagemaker", "iam", "sts", "ssm", "ec2"):
        c = clients.client(service, settings)
        assert c.meta.endpoint_url == MOTO, service
        assert c.meta.region_name == "eu-central-1"
    assert clients.client("greengrassv2", settings).meta.endpoint_url == GREENGRASS
    creds = clients.session(settings).get_credentials()
    assert (creds.access_key, creds.secret_key) == ("testing", "testing")


def test_local_client_config(home: Path) -> None:
    c = clients.client("s3", Settings(local_home=home))
    cfg = c.meta.config
    assert cfg.retries["mode"] == "standard"
    assert cfg.connect_timeout == 3 and cfg.read_timeout == 60
    assert cfg.s3["addressing_style"] == "path"


def test_home_in_settings_and_env_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert clients.client("s3", Settings().replace(local_home=home)).meta.endpoint_url == MOTO
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    assert clients.client("s3").meta.endpoint_url == MOTO  # Settings.from_env() + env home


def test_local_without_up_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LocalBackendError, match="edgekit local up"):
        clients.client("s3", Settings(local_home=tmp_path / "empty"))


def test_aws_backend_uses_botocore_endpoints_and_profile(home: Path, tmp_path: Path) -> None:
    settings = Settings(backend="aws", region="eu-west-1", local_home=home)
    c = clients.client("s3", settings)
    assert c.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert c.meta.config.retries["mode"] == "standard"
    assert clients.client("greengrassv2", settings).meta.endpoint_url == (
        "https://greengrass.eu-west-1.amazonaws.com"
    )
    res = clients.resolver(settings.replace(aws_profile="edge"))
    assert isinstance(res, clients.AwsResolver)
    assert res.session_kwargs() == {"region_name": "eu-west-1", "profile_name": "edge"}
    assert res.client_kwargs("s3") == {}


def test_resolver_strategy_per_backend(home: Path) -> None:
    local = clients.resolver(Settings(local_home=home))
    assert isinstance(local, clients.LocalEndpointsResolver)
    assert local.client_kwargs("iot") == {"endpoint_url": MOTO}
    assert isinstance(clients.resolver(Settings(backend="aws")), clients.AwsResolver)


def test_explicit_kwargs_win(home: Path) -> None:
    c = clients.client("s3", Settings(local_home=home), endpoint_url="http://127.0.0.1:9")
    assert c.meta.endpoint_url == "http://127.0.0.1:9"


def test_resource(home: Path) -> None:
    s3 = clients.resource("s3", Settings(local_home=home))
    assert s3.meta.client.meta.endpoint_url == MOTO


def test_no_home_keyword_beside_settings() -> None:
    """One rule for the home: it travels in Settings, never as a second argument."""
    import inspect

    for function in (clients.client, clients.resource, clients.session, clients.resolver):
        assert "home" not in inspect.signature(function).parameters, function.__name__
