"""The model agent: an open home for the SageMaker Edge Manager agent's gRPC API.

``AgentServer`` serves ``AWS.SageMaker.Edge.Agent`` on a unix socket and runs
verified model packages with ONNX Runtime; ``AgentClient`` is a numpy-friendly
client. Clients generated from the original agent.proto work unchanged.
Names are imported lazily so ``import edgekit.agent`` needs neither grpc nor
onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.agent.capture import CaptureStore, CaptureUploader
    from edgekit.agent.client import AgentClient
    from edgekit.agent.server import AgentServer
    from edgekit.agent.status import AgentStatusError

_EXPORTS = {
    "AgentClient": "edgekit.agent.client",
    "AgentServer": "edgekit.agent.server",
    "AgentStatusError": "edgekit.agent.status",
    "CaptureStore": "edgekit.agent.capture",
    "CaptureUploader": "edgekit.agent.capture",
}

__all__ = [
    "AgentClient",
    "AgentServer",
    "AgentStatusError",
    "CaptureStore",
    "CaptureUploader",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.agent' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
