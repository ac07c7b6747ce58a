"""The local Greengrass v2 control plane (moto's ``models``): :class:`GreengrassBackend`.

The backend is composed by purpose: ``state`` (persistence, ARNs, idempotency, tags),
``components`` (component versions, ResolveComponentCandidates), ``deployments``, and
``devices`` (core devices, effective deployments, installed components, the private
device API). HTTP concerns live in ``responses.py``; errors in ``errors.py``.
"""

from __future__ import annotations

from edgekit.local.greengrass.components import ComponentsMixin
from edgekit.local.greengrass.deployments import DeploymentsMixin
from edgekit.local.greengrass.devices import (
    EXECUTION_STATUSES,
    LIFECYCLE_STATES,
    CoreDevicesMixin,
)
from edgekit.local.greengrass.errors import (
    ConflictException,
    GreengrassApiError,
    InternalServerException,
    ResourceNotFoundException,
    ValidationException,
    field_error,
)
from edgekit.local.greengrass.state import DEFAULT_ACCOUNT_ID, BackendState
from edgekit.local.greengrass.store import STATE_FORMAT

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "EXECUTION_STATUSES",
    "LIFECYCLE_STATES",
    "STATE_FORMAT",
    "BackendState",
    "ConflictException",
    "GreengrassApiError",
    "GreengrassBackend",
    "InternalServerException",
    "ResourceNotFoundException",
    "ValidationException",
    "field_error",
]


class GreengrassBackend(ComponentsMixin, DeploymentsMixin, CoreDevicesMixin, BackendState):
    """The emulated control plane of one account and region."""
