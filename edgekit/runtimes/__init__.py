"""Model runtimes: the seam between edgekit and whatever runs a model file.

Owns: the :class:`ModelRuntime` / :class:`RuntimeSession` interface
(:mod:`edgekit.runtimes.base`), the registry that maps a package manifest's
``runtime`` field to a runtime, and the runtimes edgekit ships (ONNX Runtime,
:mod:`edgekit.runtimes.onnx_runtime`; OpenVINO, :mod:`edgekit.runtimes.openvino_runtime`,
installed with the ``openvino`` extra). The agent and ``Predictor`` load models
only through :func:`get_runtime`.

Adding a runtime is one new module here with a class like ``OnnxRuntime``, plus
one line in :data:`BUILTIN_RUNTIMES`; a third-party package may instead call
:func:`register_runtime`.

Must not import: edgekit.package, edgekit.model, edgekit.compile, edgekit.agent,
edgekit.edge or anything above them (it sits just above edgekit.errors), nor a
runtime's own package at import time (each is imported when a session opens).
"""

from __future__ import annotations

import importlib
import importlib.util

from edgekit.errors import ModelError
from edgekit.runtimes.base import ModelRuntime, RuntimeSession, TensorInfo

RUNTIME_FIELD = "runtime"
"""The package manifest field that names a model's runtime."""

# Runtimes edgekit ships: name -> "module:Class". Imported on first lookup.
BUILTIN_RUNTIMES: dict[str, str] = {
    "onnxruntime": "edgekit.runtimes.onnx_runtime:OnnxRuntime",
    "openvino": "edgekit.runtimes.openvino_runtime:OpenVinoRuntime",
}

_REGISTRY: dict[str, ModelRuntime] = {}


def register_runtime(runtime: ModelRuntime, *, replace: bool = False) -> ModelRuntime:
    """Make ``runtime`` available under ``runtime.name`` (and ``name-<variant>``)."""
    name = runtime.name
    if not name or "-" in name:
        raise ModelError(
            f"runtime name {name!r} is not valid: use a non-empty name without '-' "
            "('-' separates a runtime from its variant, as in onnxruntime-int8)"
        )
    if not replace and name in _registered():
        raise ModelError(f"a runtime named {name!r} is already registered")
    _REGISTRY[name] = runtime
    return runtime


def unregister_runtime(name: str) -> None:
    """Remove a registered runtime (tests use this to clean up)."""
    _REGISTRY.pop(name, None)


def _registered() -> dict[str, ModelRuntime]:
    for name, target in BUILTIN_RUNTIMES.items():
        if name not in _REGISTRY:
            module, _, attr = target.partition(":")
            _REGISTRY[name] = getattr(importlib.import_module(module), attr)()
    return _REGISTRY


def known_runtimes() -> list[str]:
    """The runtime names this edgekit can run, sorted."""
    return sorted(_registered())


def runtime_name(value: str) -> str:
    """The registered runtime a manifest ``runtime`` value means (``onnxruntime-int8`` -> ...)."""
    return str(value).split("-", 1)[0]


def get_runtime(value: str, *, where: str = "") -> ModelRuntime:
    """The runtime for a manifest ``runtime`` value, checked to be installed.

    ``where`` names the manifest (or other source) the value came from; the
    errors name it, the ``runtime`` field, the runtimes this edgekit knows and,
    if the runtime's package is missing, the command that installs it.
    """
    registered = _registered()
    runtime = registered.get(runtime_name(value))
    source = f"{where}: field '{RUNTIME_FIELD}'" if where else f"field '{RUNTIME_FIELD}'"
    if runtime is None:
        raise ModelError(
            f"{source} is {value!r}, which this edgekit cannot run; known runtimes: "
            f"{', '.join(sorted(registered))}. Compile the model for one of them "
            "(edgekit compile --target ...), or add a runtime module under edgekit/runtimes/"
        )
    if importlib.util.find_spec(runtime.requires) is None:
        raise ModelError(
            f"{source} is {value!r}: the {runtime.name} runtime needs the Python package "
            f"{runtime.requires!r}, which is not installed; pip install {runtime.install}"
        )
    return runtime


__all__ = [
    "BUILTIN_RUNTIMES",
    "RUNTIME_FIELD",
    "ModelRuntime",
    "RuntimeSession",
    "TensorInfo",
    "get_runtime",
    "known_runtimes",
    "register_runtime",
    "runtime_name",
    "unregister_runtime",
]
