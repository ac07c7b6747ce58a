"""Notebook 01's output for the later notebooks: the device stack and healthy devices."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.handover import PROVISIONED, PathLike, read_handover, same_backend
from edgekit.provision import (
    Provisioned,
    default_stack_name,
    device_backend,
    find_provisioned,
    provision,
)
from edgekit.settings import Settings

#: Devices to provision when none exist yet.
DEFAULT_DEVICE_COUNT = 2


def stack_name_for(settings: Settings, output_dir: PathLike | None = None) -> str:
    """The device stack: the one ``provisioned.json`` names (same backend), else the default."""
    data = read_handover(output_dir, PROVISIONED) if output_dir is not None else None
    if same_backend(data, settings) and data and data.get("stack_name"):
        return str(data["stack_name"])
    return default_stack_name(settings)


@dataclass(frozen=True)
class Devices:
    """The provisioned devices and whether this call had to create (or repair) them."""

    provisioned: Provisioned
    created: bool

    @property
    def how(self) -> str:
        return "provisioned now" if self.created else "found"


def ensure_devices(
    settings: Settings,
    output_dir: PathLike | None = None,
    *,
    device_count: int = DEFAULT_DEVICE_COUNT,
    thing_group: str | None = None,
    progress: bool = True,
) -> Devices:
    """The device stack and healthy devices: found if they exist, else provisioned.

    Uses the stack named in ``provisioned.json`` (notebook 01) when present. A stack
    whose devices all report HEALTHY is used as it is (``device_count`` is then
    ignored); a missing stack, or devices that are not healthy (e.g. after the local
    endpoints restarted), get :func:`edgekit.provision.provision`, which only creates
    what is missing. On the local backend the endpoints are started if needed.
    ``thing_group`` is only used when a new stack is made (default: Settings'); an
    existing stack keeps its own group.
    """
    stack_name = stack_name_for(settings, output_dir)
    backend = device_backend(settings)
    found = None
    if backend.reachable():
        found = find_provisioned(settings, stack_name)
    if found is not None and found.things and found.healthy:
        return Devices(found, created=False)
    count = backend.device_count(device_count, len(found.things) if found is not None else None)
    made = provision(
        settings,
        stack_name=stack_name,
        thing_group=thing_group,
        device_count=count,
        progress=progress,
    )
    return Devices(made, created=True)
