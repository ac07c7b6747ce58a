"""The local backend's state folder ("home") and its fixed layout.

Every process of the local backend (servers, device runtimes) records its pid,
log and state under one folder, so `edgekit local down` can find everything a
notebook started even after the notebook kernel restarted.

```
home/endpoints.json     where the running servers listen (written by `local up`)
home/run/<name>.pid     one pid file per process started
home/logs/<name>.log    stdout/stderr of each process
home/greengrass/        control-plane state
home/moto/state.pickle  the emulated AWS services' state (moto), saved by the moto server
home/devices/<thing>/   a device's root
home/.lock              serializes concurrent `local up` / `local down`
```
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigurationError, LocalBackendError
from edgekit.files import held_lock
from edgekit.settings import LOCAL_HOME_ENV, resolve_local_home

HOME_ENV = LOCAL_HOME_ENV
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def local_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The explicit ``path``, else ``$EDGEKIT_LOCAL_HOME``, else the per-user default."""
    return resolve_local_home(path)


HOME_HELP = "state folder (default: $EDGEKIT_LOCAL_HOME or ~/.local/state/edgekit)"


def add_home_option(parser: argparse.ArgumentParser) -> None:
    """``--home DIR`` on a command of the ``edgekit local`` tree.

    SUPPRESS: `edgekit local --home D up` and `edgekit local up --home D` both work,
    and a sub-command without the flag does not reset the group's value.
    """
    parser.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help=HOME_HELP)


def check_name(name: str) -> str:
    """A process or device name must be usable as a file name; say so early if not."""
    if not _NAME.match(name):
        raise ConfigurationError(
            f"name {name!r} cannot be used for a pid/log file; use letters, digits, '.', '_', "
            "':' or '-' (starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class HomeLayout:
    """Paths inside one home folder; `ensure()` creates the folders."""

    root: Path

    @classmethod
    def of(cls, home: str | os.PathLike[str] | None = None) -> HomeLayout:
        return cls(local_home(home))

    @property
    def endpoints_file(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def greengrass_dir(self) -> Path:
        return self.root / "greengrass"

    @property
    def moto_state_file(self) -> Path:
        return self.root / "moto" / "state.pickle"

    @property
    def devices_dir(self) -> Path:
        return self.root / "devices"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{check_name(name)}.pid"

    def port_file(self, name: str) -> Path:
        return self.run_dir / f"{check_name(name)}.port"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{check_name(name)}.log"

    def device_root(self, thing: str) -> Path:
        return self.devices_dir / check_name(thing)

    def ensure(self) -> HomeLayout:
        try:
            for folder in (self.root, self.run_dir, self.logs_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalBackendError(
                f"cannot create the local home {self.root}: {exc}; choose another folder with "
                f"--home or {HOME_ENV}"
            ) from exc
        return self


@contextlib.contextmanager
def home_lock(
    home: str | os.PathLike[str] | None = None, *, timeout: float = 120.0
) -> Iterator[Path]:
    """Hold an exclusive lock on ``home/.lock`` so two `local up` calls do not race.

    The lock is an advisory ``flock``: the kernel drops it when the holder dies,
    so a crashed `up` never leaves the home locked.
    """
    layout = HomeLayout.of(home).ensure()
    with held_lock(
        layout.lock_file,
        timeout=timeout,
        poll=0.05,
        timed_out=lambda: LocalBackendError(
            f"another edgekit command holds {layout.lock_file} for more than "
            f"{timeout:.0f} s; wait for it to finish or stop it"
        ),
    ):
        yield layout.lock_file
