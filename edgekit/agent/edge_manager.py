"""The SageMaker Edge Manager component on the local device: edgekit's agent behind its name.

Code written for Edge Manager depends on ``aws.greengrass.SageMakerEdgeManager``, reads
its ``UnixSocketName`` with IPC GetConfiguration and speaks the agent API
(``AWS.SageMaker.Edge.Agent``, :mod:`edgekit.agent.protos`) on that socket. The local
device runs this module's recipe (:func:`builtin_recipe`, the provider named in
``edgekit.local.device.provided``) like any component: the documented
``DefaultConfiguration`` and a Run step that starts edgekit's agent with the device
runtime's Python (:mod:`edgekit.agent.edge_manager_serve`). Every configuration value
reaches the agent through an environment variable (``Setenv``), so no value is ever
pasted into a shell script; :func:`read_config` reads and checks them.

What differs from the real component (docs/edge-manager.md): models are ONNX (a plain
.onnx folder, loaded unverified as Edge Manager loads its folders, or a signed edgekit
package verified against ``PublicKey``, an edgekit addition); Neo/DLR artifacts are
refused; captures are uploaded as they arrive (the batch/period settings are checked and
logged, not used); there is no SageMaker device fleet (``DeviceFleetName`` is logged).

This module is data and parsing only (the device imports it to build the recipe); it
imports nothing that needs grpc or a model runtime.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError

__all__ = [
    "COMPONENT_NAME",
    "DEFAULT_CONFIGURATION",
    "DEFAULT_SOCKET",
    "ENV_PREFIX",
    "EdgeManagerConfig",
    "builtin_recipe",
    "read_config",
]

COMPONENT_NAME = "aws.greengrass.SageMakerEdgeManager"
DEFAULT_SOCKET = "/tmp/aws.greengrass.SageMakerEdgeManager.sock"
ENV_PREFIX = "EDGEKIT_SME_"
WORK_ENV = ENV_PREFIX + "WORK"

#: The component's documented configuration (developer guide, "SageMaker Edge Manager"
#: component), with its documented defaults as the strings the docs show; ``PublicKey``
#: is edgekit's addition (PEM of the key signed edgekit packages must verify with).
DEFAULT_CONFIGURATION: dict[str, str] = {
    "DeviceFleetName": "",
    "BucketName": "",
    "CaptureDataBatchSize": "10",
    "CaptureDataBufferSize": "30",
    "CaptureDataDestination": "Cloud",
    "CaptureDataPeriodicUpload": "false",
    "CaptureDataPeriodicUploadPeriodSeconds": "8",
    "CaptureDataPushPeriodSeconds": "4",
    "CaptureDataBase64EmbedLimit": "3072",
    "FolderPrefix": "sme-capture",
    "CaptureDataDiskPath": "",
    "SagemakerEdgeLogVerbose": "false",
    "UnixSocketName": DEFAULT_SOCKET,
    "PublicKey": "",
}

_INTEGERS = (
    "CaptureDataBatchSize",
    "CaptureDataBufferSize",
    "CaptureDataPeriodicUploadPeriodSeconds",
    "CaptureDataPushPeriodSeconds",
    "CaptureDataBase64EmbedLimit",
)
_BOOLEANS = ("CaptureDataPeriodicUpload", "SagemakerEdgeLogVerbose")
_DESTINATIONS = {"cloud": "Cloud", "disk": "Disk"}


def builtin_recipe(version: str) -> dict[str, Any]:
    """The recipe the local device runs for ``aws.greengrass.SageMakerEdgeManager``."""
    python = shlex.quote(sys.executable)
    setenv = {ENV_PREFIX + key: "{configuration:/" + key + "}" for key in DEFAULT_CONFIGURATION}
    setenv[WORK_ENV] = "{work:path}"
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": COMPONENT_NAME,
        "ComponentVersion": version,
        "ComponentType": "aws.greengrass.generic",
        "ComponentDescription": (
            "edgekit's model agent serving the SageMaker Edge Manager agent API on "
            "UnixSocketName (stand-in for the Edge Manager agent binary)"
        ),
        "ComponentPublisher": "edgekit (local stand-in for Amazon Web Services)",
        "ComponentConfiguration": {"DefaultConfiguration": dict(DEFAULT_CONFIGURATION)},
        "ComponentDependencies": {
            "aws.greengrass.TokenExchangeService": {
                "VersionRequirement": ">=0.0.0",
                "DependencyType": "HARD",
            }
        },
        "Manifests": [
            {
                "Lifecycle": {
                    "Setenv": setenv,
                    # A configuration the agent cannot use fails the deployment here.
                    "Install": {"Script": f"exec {python} -m edgekit.agent.edge_manager --check"},
                    "Run": {"Script": f"exec {python} -m edgekit.agent.edge_manager_serve"},
                }
            }
        ],
    }


@dataclass(frozen=True)
class EdgeManagerConfig:
    """The component's configuration as the agent uses it."""

    socket: Path
    work: Path
    device_fleet: str
    bucket: str
    destination: str  # "Cloud" or "Disk"
    periodic_upload: bool
    folder_prefix: str
    capture_dir: Path
    buffer_size: int
    verbose: bool
    public_key_pem: str
    numbers: dict[str, int]

    @property
    def uploads(self) -> bool:
        """Whether captures go to ``s3://bucket/folder_prefix/...``."""
        return self.destination == "Cloud" or self.periodic_upload


def _text(values: Mapping[str, str], key: str) -> str:
    value = values.get(ENV_PREFIX + key)
    # A key the deployment removed (RESET without default) is left as the variable itself.
    if value is None or value.startswith("{configuration:"):
        return DEFAULT_CONFIGURATION[key]
    return value.strip()


def _where(key: str) -> str:
    return f"{COMPONENT_NAME} configuration {key}"


def _integer(values: Mapping[str, str], key: str) -> int:
    text = _text(values, key)
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigurationError(
            f"{_where(key)} is {text!r}; it must be a whole number above 0 (default "
            f"{DEFAULT_CONFIGURATION[key]})"
        )
    return number


def _boolean(values: Mapping[str, str], key: str) -> bool:
    text = _text(values, key).lower()
    if text not in ("true", "false"):
        raise ConfigurationError(f'{_where(key)} is {text!r}; it must be "true" or "false"')
    return text == "true"


def read_config(values: Mapping[str, str] | None = None) -> EdgeManagerConfig:
    """The configuration from the Run step's environment (``values``: default os.environ).

    ConfigurationError naming the key and what to set for anything the agent cannot use.
    """
    env = os.environ if values is None else values
    work_text = env.get(WORK_ENV) or ""
    if not work_text:
        raise ConfigurationError(
            f"{WORK_ENV} is not set: run the agent from the {COMPONENT_NAME} recipe"
        )
    work = Path(work_text)
    socket_text = _text(env, "UnixSocketName")
    if not socket_text or not os.path.isabs(socket_text):
        raise ConfigurationError(
            f"{_where('UnixSocketName')} is {socket_text!r}; it must be an absolute path "
            f"(default {DEFAULT_SOCKET}), the one client components read with "
            "GetConfiguration"
        )
    destination = _DESTINATIONS.get(_text(env, "CaptureDataDestination").lower())
    if destination is None:
        raise ConfigurationError(
            f"{_where('CaptureDataDestination')} is "
            f"{_text(env, 'CaptureDataDestination')!r}; it must be Cloud or Disk"
        )
    numbers = {key: _integer(env, key) for key in _INTEGERS}
    if numbers["CaptureDataBatchSize"] >= numbers["CaptureDataBufferSize"]:
        raise ConfigurationError(
            f"{_where('CaptureDataBatchSize')} ({numbers['CaptureDataBatchSize']}) must be "
            f"less than CaptureDataBufferSize ({numbers['CaptureDataBufferSize']})"
        )
    periodic = _boolean(env, "CaptureDataPeriodicUpload")
    bucket = _text(env, "BucketName")
    if (destination == "Cloud" or periodic) and not bucket:
        raise ConfigurationError(
            f"{_where('BucketName')} is empty, and CaptureDataDestination {destination}"
            + (" with CaptureDataPeriodicUpload true" if destination == "Disk" else "")
            + " uploads captured data to it: set BucketName in the deployment's "
            "configurationUpdate (the bucket must exist), or set CaptureDataDestination to "
            "Disk to keep captures on the device"
        )
    prefix = _text(env, "FolderPrefix").strip("/")
    if not prefix or ".." in prefix.split("/"):
        raise ConfigurationError(
            f"{_where('FolderPrefix')} is {prefix!r}; give a folder name such as sme-capture"
        )
    disk_path = _text(env, "CaptureDataDiskPath")
    capture_root = Path(disk_path) if disk_path else work / "capture"
    return EdgeManagerConfig(
        socket=Path(socket_text),
        work=work,
        device_fleet=_text(env, "DeviceFleetName"),
        bucket=bucket,
        destination=destination,
        periodic_upload=periodic,
        folder_prefix=prefix,
        capture_dir=capture_root / prefix,
        buffer_size=numbers["CaptureDataBufferSize"],
        verbose=_boolean(env, "SagemakerEdgeLogVerbose"),
        public_key_pem=_text(env, "PublicKey"),
        numbers=numbers,
    )


def check() -> int:
    """The Install step (``python -m edgekit.agent.edge_manager --check``): 0 when the agent
    can use the configuration, else 1 with the reason on stderr (the deployment fails)."""
    try:
        config = read_config()
    except ConfigurationError as exc:
        print(f"{COMPONENT_NAME}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"{COMPONENT_NAME}: configuration checked; the agent will listen on {config.socket}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--check"]:
        print("usage: python -m edgekit.agent.edge_manager --check", file=sys.stderr)
        sys.exit(2)
    sys.exit(check())
