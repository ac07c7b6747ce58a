"""edgekit.local.device.paths: the device root's layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.paths import DeviceLayout
from edgekit.unix_socket import fits


def test_a_long_root_puts_the_ipc_socket_in_the_per_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a shared /tmp name another user could bind first (issue 12, item 4 sibling)."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert DeviceLayout.of(tmp_path).socket_path == tmp_path / "ipc.socket"
    long_root = tmp_path / ("x" * 120)
    path = DeviceLayout.of(long_root).socket_path
    assert path.parent == Path(f"/tmp/edgekit-{os.geteuid()}") and fits(path)
    assert path.name.startswith("ipc-") and path != DeviceLayout.of(tmp_path / "y").socket_path
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert DeviceLayout.of(long_root).socket_path.parent == tmp_path / "edgekit"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape", "a\x00b"])
def test_component_names_that_are_not_one_folder_fail_the_deployment(
    tmp_path: Path, name: str
) -> None:
    layout = DeviceLayout.of(tmp_path)
    for where in (
        lambda: layout.work(name),
        lambda: layout.artifacts(name, "1.0.0"),
        lambda: layout.unarchived(name, "1.0.0"),
        lambda: layout.recipe_file(name, "1.0.0"),
        lambda: layout.component_log(name),
        lambda: layout.artifacts("com.example.Ok", name),
    ):
        with pytest.raises(DeploymentFailure, match="cannot be a folder name"):
            where()


@pytest.mark.parametrize("name", ["com.example.Ok", "a..b", ".hidden", "x-1_2"])
def test_ordinary_component_names_stay_inside_their_folders(tmp_path: Path, name: str) -> None:
    layout = DeviceLayout.of(tmp_path)
    assert layout.work(name).parent == tmp_path / "work"
    assert layout.artifacts(name, "1.0.0").parent.parent == tmp_path / "packages" / "artifacts"
