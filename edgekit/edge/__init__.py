"""Code that runs ON the device, inside the ``com.qualityinspection`` component.

The inference app (:mod:`edgekit.edge.app`, started as ``python -m
edgekit.edge.app``) reads camera images, asks the model agent for predictions,
and publishes one result per image through Greengrass IPC. Results go to an
on-disk spool first (:mod:`edgekit.edge.spool`) so an unreachable broker or a
restarted component loses nothing; :mod:`edgekit.edge.health` reports counts,
skipped images and the spool's state.

Only numpy, Pillow, grpc, awsiot and edgekit's light modules are imported here:
a device does not carry boto3, onnx or torch for this component.
"""

from __future__ import annotations

from edgekit.edge.spool import Spool, SpooledMessage

__all__ = ["Spool", "SpooledMessage"]
