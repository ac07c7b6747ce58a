"""Code that runs ON the device, inside the ``com.qualityinspection`` component.

The inference app (:mod:`edgekit.edge.app`, started as ``python -m
edgekit.edge.app``) reads camera images, asks the model agent for predictions,
and publishes one result per image through Greengrass IPC. Results go to an
on-disk spool first (:mod:`edgekit.edge.spool`) so an unreachable broker or a
restarted component loses nothing; :mod:`edgekit.edge.health` reports counts,
skipped images, the spool's state and, per model served, what the agent
verified and how the model does (:mod:`edgekit.edge.stats`). In shadow mode
(:mod:`edgekit.edge.shadow`) a candidate model runs on the same frames and is
compared with the current one (:mod:`edgekit.edge.agreement`), never published.

Owns: the inference app, its configuration, result spooling, health reports
(per-model statistics, shadow mode and its agreement metric) and the
Greengrass IPC client it publishes through.

Must not import: edgekit.package (cryptography), edgekit.compile, the
AWS/workflow modules (clients, deploy, provision, components, ...),
edgekit.local or the CLI. It may import edgekit.agent's client, edgekit.model
(metadata, pre/post-processing, LoadedModel), edgekit.data and edgekit.schemas.
Only numpy, Pillow, protobuf, awsiot and edgekit's light modules are imported here
(grpc only if the agent has no fast socket: see :mod:`edgekit.agent.client`): a device
does not carry boto3, onnx, tqdm or torch for this component.
"""

from __future__ import annotations

from edgekit.edge.spool import Spool, SpooledMessage

__all__ = ["Spool", "SpooledMessage"]
