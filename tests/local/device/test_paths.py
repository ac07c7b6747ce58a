"""edgekit.local.device.paths: the device root's layout."""

from __future__ import annotations

from pathlib import Path

from edgekit.local.device.paths import DeviceLayout


def test_socket_path_falls_back_to_tmp_for_long_roots(tmp_path: Path) -> None:
    assert DeviceLayout.of(tmp_path).socket_path == tmp_path / "ipc.socket"
    long_root = tmp_path / ("x" * 120)
    path = DeviceLayout.of(long_root).socket_path
    assert str(path).startswith("/tmp/edgekit-ipc-") and len(str(path)) < 100
