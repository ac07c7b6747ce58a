"""Routes of the local Greengrass control plane.

The public routes come from botocore's own ``greengrassv2`` service model (the
same ``requestUri`` templates boto3 fills in), so a request is routed exactly
as AWS would route it. The private device API lives under ``/_edgekit``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from edgekit.local.greengrass.api_model import service_model

PRIVATE_PREFIX = "/_edgekit"

# (method, template, handler name) of the private device API used by edgekit's device runtime.
PRIVATE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/_edgekit/devices/{thing}/status", "device_status"),
    ("GET", "/_edgekit/devices/{thing}/deployments", "device_deployments"),
    ("PUT", "/_edgekit/devices/{thing}/deployments/{deploymentId}", "device_deployment_status"),
    ("GET", "/_edgekit/health", "health"),
)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    name: str  # an operation name of the service model, or a private handler name
    private: bool
    pattern: re.Pattern[str]
    labels: tuple[str, ...]

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = self.pattern.fullmatch(raw_path)
        if not m:
            return None
        # Labels are matched on the raw (still percent-encoded) path and decoded
        # afterwards, so an encoded '/' inside a label can't change the route.
        return {label: unquote(m.group(i + 1)) for i, label in enumerate(self.labels)}


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """``/a/{x}/b/{y+}`` -> regex with one group per label (``+`` labels may span '/')."""
    path = template.split("?", 1)[0]
    labels: list[str] = []
    regex = ""
    pos = 0
    for m in re.finditer(r"\{([^}]+)\}", path):
        regex += re.escape(path[pos : m.start()])
        label = m.group(1)
        if label.endswith("+"):
            labels.append(label[:-1])
            regex += "(.+)"
        else:
            labels.append(label)
            regex += "([^/]+)"
        pos = m.end()
    regex += re.escape(path[pos:])
    return re.compile(regex), tuple(labels)


@functools.cache
def routes() -> tuple[Route, ...]:
    """Every route: private ones first, then each operation of the service model."""
    table: list[Route] = []
    for method, template, name in PRIVATE_ROUTES:
        pattern, labels = compile_template(template)
        table.append(Route(method, template, name, True, pattern, labels))
    model = service_model()
    public = []
    for op_name in model.operation_names:
        http = model.operation_model(op_name).http
        pattern, labels = compile_template(http["requestUri"])
        public.append(Route(http["method"], http["requestUri"], op_name, False, pattern, labels))
    # Literal segments beat labels: try templates with more literal text first.
    public.sort(key=lambda r: -len(re.sub(r"\{[^}]+\}", "", r.template)))
    table.extend(public)
    return tuple(table)


def resolve(method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    """The route and decoded path labels for a request, or None."""
    for route in routes():
        params = route.match(method, raw_path)
        if params is not None:
            return route, params
    return None


def path_exists(raw_path: str) -> bool:
    """Whether any route matches the path with some method (for 405 vs 404)."""
    return any(route.pattern.fullmatch(raw_path) for route in routes())
