"""Provision Greengrass core devices: the device stack, then the devices themselves.

One CloudFormation template (``cloudformation/greengrass-device.yaml``) and one code
path serve both backends; only *what a device is* differs, and a strategy object per
backend says so:

- ``local`` (:mod:`~edgekit.provision.local_devices`): the stack deploys into moto (its
  EC2 instance is a record only), and each thing gets a local device runtime. Thing
  names are ``<prefix>-1..N``; ``<prefix>-1`` is the stack's ``ThingName``.
- ``aws`` (:mod:`~edgekit.provision.ec2`): the stack's EC2 instance *is* the device; it
  installs the Greengrass nucleus at boot and joins the thing group.

Owns: ``types`` (names, records, the strategy protocol), ``controlplane`` (the shared
Greengrass/IoT reads), ``local_devices`` and ``ec2`` (the two strategies), ``backends``
(which strategy a backend uses), ``workflow`` (provision, wait, find) and ``cleanup``
(cancel deployments, delete components, deprovision).

Must not import: ``edgekit.deploy``/``deployments``, ``notebook``, ``pipeline``,
``components`` or ``registry`` (they sit above it). It uses ``stack``, ``clients``,
``awsapi`` and, for local devices only, ``edgekit.local``.
"""

from __future__ import annotations

from edgekit.errors import ProvisionError
from edgekit.provision.backends import device_backend
from edgekit.provision.cleanup import (
    cancel_deployments,
    delete_components,
    deprovision,
    thing_group_of,
    wake,
)
from edgekit.provision.ec2 import Ec2Device
from edgekit.provision.local_devices import LocalDevices
from edgekit.provision.types import (
    HEALTHY,
    NOT_REGISTERED,
    THING_NAME,
    CoreDevice,
    Deprovisioned,
    DeviceBackend,
    Provisioned,
    default_stack_name,
    default_thing_prefix,
    edgekit_component_names,
    order_things,
    thing_names,
)
from edgekit.provision.workflow import find_provisioned, provision, wait_for_devices

__all__ = [
    "HEALTHY",
    "NOT_REGISTERED",
    "THING_NAME",
    "CoreDevice",
    "Deprovisioned",
    "DeviceBackend",
    "Ec2Device",
    "LocalDevices",
    "ProvisionError",
    "Provisioned",
    "cancel_deployments",
    "default_stack_name",
    "default_thing_prefix",
    "delete_components",
    "deprovision",
    "device_backend",
    "edgekit_component_names",
    "find_provisioned",
    "order_things",
    "provision",
    "thing_group_of",
    "wake",
    "thing_names",
    "wait_for_devices",
]
