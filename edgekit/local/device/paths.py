"""Where a device runtime keeps things under its root, laid out like a Greengrass core.

```
<root>/packages/recipes/<name>-<version>.json       recipes fetched from the control plane
<root>/packages/artifacts/<name>/<version>/          downloaded artifacts ({artifacts:path})
<root>/packages/artifacts-unarchived/<name>/<version>/
                                             unpacked archives ({artifacts:decompressedPath})
<root>/work/<name>/                                  each component's working folder ({work:path})
<root>/logs/<name>.log, <root>/logs/greengrass.log   component logs and the runtime's own log
<root>/config/state.json                             applied deployments, versions, configuration
```
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgekit.local.device.failures import DeploymentFailure
from edgekit.unix_socket import fits, user_socket_dir


def path_segment(value: str, what: str) -> str:
    """``value`` if it can be one folder name under the root; else the deployment fails.

    Component names and versions become path segments (``{work:path}`` and the artifact
    folders): ``.``, ``..``, ``/`` or a NUL would point outside the component's own folder.
    """
    if value in ("", ".", "..") or "/" in value or "\x00" in value:
        raise DeploymentFailure(
            f"{what} {value!r} cannot be a folder name on the device (it is empty, '.' or "
            "'..', or holds '/' or NUL); AWS IoT Greengrass refuses such names: rename it "
            "and publish the component again",
            codes=["COMPONENT_METADATA_NOT_VALID_IN_DEPLOYMENT"],
            types=["REQUEST_ERROR"],
        )
    return value


@dataclass(frozen=True)
class DeviceLayout:
    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> DeviceLayout:
        return cls(Path(root).expanduser().absolute())

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def recipes_dir(self) -> Path:
        return self.packages / "recipes"

    def recipe_file(self, name: str, version: str) -> Path:
        return self.recipes_dir / f"{_name(name)}-{_version(version)}.json"

    def artifacts(self, name: str, version: str) -> Path:
        return self.packages / "artifacts" / _name(name) / _version(version)

    def unarchived(self, name: str, version: str) -> Path:
        return self.packages / "artifacts-unarchived" / _name(name) / _version(version)

    def work(self, name: str) -> Path:
        return self.root / "work" / _name(name)

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def component_log(self, name: str) -> Path:
        return self.logs_dir / f"{_name(name)}.log"

    @property
    def runtime_log(self) -> Path:
        return self.logs_dir / "greengrass.log"

    @property
    def state_file(self) -> Path:
        return self.root / "config" / "state.json"

    @property
    def socket_path(self) -> Path:
        """``<root>/ipc.socket``; when that would not fit a unix socket address,
        ``ipc-<hash of the root>.sock`` in this user's private socket folder (never a name
        in a folder another user can write: see `edgekit.unix_socket`)."""
        path = self.root / "ipc.socket"
        if fits(path):
            return path
        digest = hashlib.sha1(os.fsencode(str(self.root))).hexdigest()[:12]
        return user_socket_dir() / f"ipc-{digest}.sock"

    def ensure(self) -> DeviceLayout:
        for folder in (self.recipes_dir, self.logs_dir, self.state_file.parent, self.root / "work"):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _name(name: str) -> str:
    return path_segment(name, "component name")


def _version(version: str) -> str:
    return path_segment(version, "component version")


def remove_root(root: Path) -> None:
    """Delete a device root, read-only artifact files included."""
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
