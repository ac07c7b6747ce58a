"""edgekit.workflow.devices: which device stack a later notebook uses."""

from __future__ import annotations

from pathlib import Path

from edgekit.handover import PROVISIONED, write_handover
from edgekit.settings import Settings
from edgekit.workflow.devices import stack_name_for

SETTINGS = Settings(backend="local")
AWS = Settings(backend="aws", region="eu-west-1")


def test_stack_name_comes_from_provisioned_json_of_the_same_backend(tmp_path: Path) -> None:
    assert stack_name_for(SETTINGS, tmp_path) == "edgekit-device"
    write_handover(tmp_path, PROVISIONED, {"backend": "local", "stack_name": "line-a"})
    assert stack_name_for(SETTINGS, tmp_path) == "line-a"
    assert stack_name_for(AWS, tmp_path) == "edgekit-device"  # another backend's stack
