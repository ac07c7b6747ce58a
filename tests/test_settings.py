from __future__ import annotations

import pytest

from edgekit.errors import ConfigurationError
from edgekit.settings import Settings


def test_env_then_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_REGION", "eu-west-1")
    monkeypatch.setenv("EDGEKIT_THING_GROUP", "from-env")
    s = Settings.from_env(thing_group="explicit", project_name=None)
    assert s.region == "eu-west-1"
    assert s.thing_group == "explicit"
    assert s.project_name == "edgekit"


def test_bad_backend_names_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="backend='gcp'.*local, aws"):
        Settings(backend="gcp")  # type: ignore[arg-type]


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="thing_grop"):
        Settings.from_env(thing_grop="x")


def test_aws_region_follows_boto3_when_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKIT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert Settings.from_env(backend="aws").region == "eu-west-1"
    assert Settings.from_env(backend="aws", region="ap-south-1").region == "ap-south-1"
    monkeypatch.setenv("EDGEKIT_REGION", "us-west-2")
    assert Settings.from_env(backend="aws").region == "us-west-2"
    monkeypatch.delenv("EDGEKIT_REGION")
    assert Settings.from_env(backend="local").region == "us-east-1"
