"""One strategy per backend: which class says what a device is."""

from __future__ import annotations

from edgekit.provision.ec2 import Ec2Device
from edgekit.provision.local_devices import LocalDevices
from edgekit.provision.types import DeviceBackend
from edgekit.settings import Settings

BACKENDS: dict[str, type[LocalDevices] | type[Ec2Device]] = {
    "local": LocalDevices,
    "aws": Ec2Device,
}


def device_backend(settings: Settings) -> DeviceBackend:
    """The strategy for ``settings.backend`` (local devices live in ``settings.home``)."""
    return BACKENDS[settings.backend](settings)


__all__ = ["BACKENDS", "device_backend"]
