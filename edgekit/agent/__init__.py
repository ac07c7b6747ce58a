"""The model agent: an open home for the SageMaker Edge Manager agent's gRPC API.

Owns: ``AgentServer``, which serves ``AWS.SageMaker.Edge.Agent`` on a unix
socket and runs verified model packages on the runtime their manifest names
(through :mod:`edgekit.runtimes`) and reports what it verified about each
(:mod:`edgekit.agent.identity`: archive sha256, key fingerprint);
``AgentClient``, a numpy-friendly client, which checks who listens on the agent's
sockets (:mod:`edgekit.agent.peer`);
shared-memory tensors (POSIX/System V segments over gRPC; sealed memfds,
:mod:`edgekit.agent.sealed`, over the fast Predict socket beside gRPC,
:mod:`edgekit.agent.fastpath`, which our own client prefers), data capture
(uploads run in a short-lived child process, :mod:`edgekit.agent.capture_upload`, so
the agent never imports boto3), giving freed C heap back to the system
(:mod:`edgekit.agent.heap`, also used by the inference app), and the gRPC contract in
:mod:`edgekit.agent.protos` (``agent.proto`` and its generated modules, also
``from edgekit.agent import agent_pb2, agent_pb2_grpc``). Clients
generated from the original agent.proto work unchanged. Names are imported
lazily so ``import edgekit.agent`` needs neither grpc nor onnxruntime.

Also owns the local device's ``aws.greengrass.SageMakerEdgeManager``
(:mod:`edgekit.agent.edge_manager`: its recipe and documented configuration;
:mod:`edgekit.agent.edge_manager_serve`: the agent it runs on ``UnixSocketName``)
and what a LoadModel url that is a model folder holds
(:mod:`edgekit.agent.model_folder`: plain ONNX, an edgekit package, or refused Neo
artifacts). See docs/edge-manager.md.

Must not import: edgekit.edge, the AWS/workflow modules (clients, deploy,
provision, components, studio, ...), edgekit.local or the CLI. It may import
edgekit.package, edgekit.model and edgekit.runtimes (the layers below it).
"""

from __future__ import annotations

import importlib
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
# The generated gRPC modules, by their historical names (they live in protos/).
_MODULES = {
    "agent_pb2": "edgekit.agent.protos.agent_pb2",
    "agent_pb2_grpc": "edgekit.agent.protos.agent_pb2_grpc",
}

__all__ = [
    "AgentClient",
    "AgentServer",
    "AgentStatusError",
    "CaptureStore",
    "CaptureUploader",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.agent' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
