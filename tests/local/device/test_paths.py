"""edgekit.local.device.paths: the device root's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.paths import DeviceLayout


def test_socket_path_falls_back_to_tmp_for_long_roots(tmp_path: Path) -> None:
    assert DeviceLayout.of(tmp_path).socket_path == tmp_path / "ipc.socket"
    long_root = tmp_path / ("x" * 120)
    path = DeviceLayout.of(long_root).socket_path
    assert str(path).startswith("/tmp/edgekit-ipc-") and len(str(path)) < 100


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
