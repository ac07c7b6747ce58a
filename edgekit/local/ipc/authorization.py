"""IPC authorization from a component's ``accessControl`` configuration, as the nucleus does it.

A component's configuration holds, per IPC service, named policies::

    accessControl:
      aws.greengrass.ipc.mqttproxy:
        "com.example.App:mqttproxy:1":
          policyDescription: ...
          operations: ["aws.greengrass#PublishToIoTCore"]     # or ["*"]
          resources: ["factory/+/results", "status/#"]          # or ["*"]

A request is allowed when one policy of the calling component for that service
lists the operation (or ``*``) and has a resource that covers the requested
topic. Anything else is refused (UnauthorizedError), exactly like a device
with no policy. Resource matching follows the nucleus:

* ``aws.greengrass.ipc.pubsub`` (local topics) and ``aws.greengrass.Cli``: the
  resource is a string where ``*`` matches any run of characters, ``/``
  included; ``+`` and ``#`` are literal, so subscribing to ``a/#`` needs the
  resource ``a/#`` (or a ``*`` pattern covering it).
* ``aws.greengrass.ipc.mqttproxy`` (IoT Core): the resource is an MQTT topic
  filter that must cover the requested topic or filter: ``+`` covers one level,
  a trailing ``#`` any number of levels (``a/#`` covers ``a``, ``a/b``, ``a/+``
  and ``a/#``), ``*`` any run of characters. A narrower resource never
  authorizes a wider subscription (``a/+`` does not allow ``a/#``).

``${iot:thingName}`` in a resource is replaced by the device's thing name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

PUBSUB_SERVICE = "aws.greengrass.ipc.pubsub"
MQTTPROXY_SERVICE = "aws.greengrass.ipc.mqttproxy"
CLI_SERVICE = "aws.greengrass.Cli"
ANY = "*"

_THING_VARIABLE = re.compile(re.escape("${iot:thingName}"), re.IGNORECASE)


@lru_cache(maxsize=1024)
def _standard_pattern(resource: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in resource.split("*")), re.DOTALL)


@lru_cache(maxsize=1024)
def _mqtt_pattern(resource: str) -> re.Pattern[str]:
    levels = resource.split("/")
    out: list[str] = []
    for i, level in enumerate(levels):
        last = i == len(levels) - 1
        sep = "" if i == 0 else "/"
        if level == "#" and last:
            # covers the parent level itself and anything below it
            out.append(".*" if i == 0 else "(?:/.*)?")
        elif level == "+":
            # one level; '#' in the request is a multi-level filter, which '+' does not cover
            out.append(sep + "[^/#]*")
        else:
            out.append(sep + ".*".join(re.escape(part) for part in level.split("*")))
    return re.compile("".join(out), re.DOTALL)


def resource_matches(pattern: str, resource: str, *, mqtt_style: bool) -> bool:
    if pattern == ANY:
        return True
    compiled = _mqtt_pattern(pattern) if mqtt_style else _standard_pattern(pattern)
    return compiled.fullmatch(resource) is not None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, dict | bytes):
        return [v for v in value if isinstance(v, str)]
    return []


def is_authorized(
    access_control: dict[str, Any] | None,
    service: str,
    operation: str,
    resource: str,
    *,
    thing_name: str = "",
    component: str = "",
) -> bool:
    """True if a policy of ``access_control[service]`` allows ``operation`` on ``resource``."""
    if not isinstance(access_control, dict):
        return False
    policies = access_control.get(service)
    if not isinstance(policies, dict):
        return False
    mqtt_style = service == MQTTPROXY_SERVICE
    for policy_id, policy in policies.items():
        if not isinstance(policy, dict):
            log.warning(
                "component %s: accessControl.%s.%s is not a policy object; ignored",
                component,
                service,
                policy_id,
            )
            continue
        operations = _as_list(policy.get("operations"))
        if operation not in operations and ANY not in operations:
            continue
        for pattern in _as_list(policy.get("resources")):
            if thing_name:
                pattern = _THING_VARIABLE.sub(thing_name, pattern)
            if resource_matches(pattern, resource, mqtt_style=mqtt_style):
                return True
    return False
