"""botocore's ``greengrassv2`` service model: the single source of truth for the wire
format (routes in ``urls.py``, request parsing and response shapes in ``responses.py``)."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import ServiceModel

__all__ = ["SERVICE", "service_model"]

SERVICE = "greengrassv2"


@functools.cache
def service_model() -> ServiceModel:
    """botocore's greengrassv2 model (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE)
