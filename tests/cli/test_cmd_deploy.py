"""A missing thing group: the error suggests what the README teaches on that backend
(``edgekit provision``), not ``edgekit local device add``."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.deploy import missing_group_message
from edgekit.settings import Settings


@pytest.mark.parametrize(
    ("backend", "hint"),
    [
        ("local", "`edgekit provision --devices N` (or notebook 01_provision_device)"),
        ("aws", "`EDGEKIT_BACKEND=aws edgekit provision` (the device stack and its EC2"),
    ],
)
def test_the_hint_is_the_readme_command_of_the_backend(
    backend: str, hint: str, tmp_path: Path
) -> None:
    message = missing_group_message(Settings(backend=backend, local_home=tmp_path), "g")
    assert message.startswith("thing group g does not exist; provision the devices first: ")
    assert hint in message and "local device add" not in message


@pytest.mark.integration
def test_deploy_to_a_missing_group_suggests_provision(
    moto_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    assert main(["deploy", "--thing-group", "no-such-group"]) == 1
    err = capsys.readouterr().err
    assert "thing group no-such-group does not exist; provision the devices first" in err
    assert "EDGEKIT_BACKEND=aws edgekit provision" in err
    assert "local device add" not in err
