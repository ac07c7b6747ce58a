"""The AWS-provided public components: which names are AWS's, and what edgekit does for each.

AWS publishes a fixed set of public components (the developer guide's "AWS-provided
components" list, machine-learning and IoT SiteWise ones included: names and versions
from each component's page and changelog); a deployment names them with their public
versions and never publishes them. The local control plane refuses a version AWS never
published (``ProvidedComponent.publishes``). Every other name, ``aws.greengrass.labs.*``
and any other ``aws.greengrass.`` prefix included, is an ordinary component that must be
published and that the device downloads and runs.

On the local device each public component is one of:

* ``STAND_IN``: nothing runs; the device reports it RUNNING at the deployed version.
  Either the runtime itself does its job (the nucleus, IPC, token exchange) or edgekit
  does not emulate it (``docs/compatibility.md`` says which).
* ``BUILT_IN``: edgekit implements it; the device runs it from a recipe edgekit writes
  (``edgekit.local.device.provided``), like any component: lifecycle, logs, status,
  configuration.

This module is data and lookups only (the local control plane and the device both use
it); it imports nothing from ``edgekit.local``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUILT_IN",
    "PUBLIC_COMPONENTS",
    "STAND_IN",
    "ProvidedComponent",
    "is_built_in",
    "is_public",
    "is_stand_in",
    "public_component",
]

STAND_IN = "stand-in"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class ProvidedComponent:
    """One AWS-provided public component as edgekit knows it."""

    name: str
    kind: str  # STAND_IN or BUILT_IN
    #: Public versions a deployment or a dependency may ask for, oldest first (the
    #: component's changelog in the developer guide).
    versions: tuple[str, ...]
    #: What the local device does for it, in one line (docs/compatibility.md quotes it).
    local: str

    def publishes(self, version: str) -> bool:
        """Whether AWS publishes ``version``: a listed version, or a patch of a listed
        ``major.minor`` line (the developer guide lists versions by line, ``2.3.x``, and
        patches come out faster than this catalog; a line AWS never published is refused)."""
        if version in self.versions:
            return True
        return _line(version) is not None and _line(version) in {_line(v) for v in self.versions}


def _line(version: str) -> str | None:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return f"{parts[0]}.{parts[1]}"


def _c(name: str, kind: str, versions: str, local: str) -> ProvidedComponent:
    return ProvidedComponent(name, kind, tuple(versions.split()), local)


_NUCLEUS_VERSIONS = (
    "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5 2.1.0 2.2.0 2.3.0 2.4.0 2.5.0 2.5.1 2.5.2 2.5.3 2.5.4 "
    "2.5.5 2.5.6 2.6.0 2.7.0 2.8.0 2.8.1 2.9.0 2.9.1 2.9.2 2.9.3 2.9.4 2.9.5 2.9.6 2.10.0 2.10.1 "
    "2.10.2 2.10.3 2.11.0 2.11.1 2.11.2 2.11.3 2.12.0 2.12.1 2.12.2 2.12.3 2.12.4 2.12.5 2.12.6 "
    "2.13.0 2.14.0 2.14.1 2.14.2 2.14.3 2.15.0 2.15.1 2.16.0 2.16.1 2.17.0"
)
_NOT_EMULATED = "stand-in: reported RUNNING, nothing runs (edgekit does not emulate {what})"

_CATALOG: tuple[ProvidedComponent, ...] = (
    # --- the nucleus and what the runtime itself does ---------------------------------------
    _c(
        "aws.greengrass.Nucleus",
        STAND_IN,
        _NUCLEUS_VERSIONS,
        "the edgekit device runtime is the nucleus (lifecycles, IPC, deployments, status)",
    ),
    _c(
        "aws.greengrass.NucleusLite",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.1.0 2.2.0 2.2.1 2.2.2 2.3.0 2.4.0 2.5.0",
        "the edgekit device runtime is the nucleus",
    ),
    _c(
        "aws.greengrass.TokenExchangeService",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3",
        "components get credentials for the local endpoints in their environment",
    ),
    _c(
        "aws.greengrass.Cli",
        STAND_IN,
        _NUCLEUS_VERSIONS.replace("2.0.0 2.0.1 2.0.2 ", ""),
        "`edgekit local device` is the CLI (local deployments: `edgekit local device deploy`); "
        "its IPC authorization (GetComponentDetails...) applies",
    ),
    _c(
        "aws.greengrass.DiskSpooler",
        STAND_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.0.4",
        "the runtime spools PublishToIoTCore messages on disk when the broker is away",
    ),
    _c(
        "aws.greengrass.LocalDebugConsole",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.1.0 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 2.2.5 2.2.6 2.2.7 2.2.8 2.3.0 2.4.0 "
        "2.4.1 2.4.2 2.4.3 2.4.4",
        _NOT_EMULATED.format(what="the debug web console; `edgekit local device` shows the same"),
    ),
    _c(
        "aws.greengrass.crypto.Pkcs11Provider",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5",
        _NOT_EMULATED.format(what="hardware security modules"),
    ),
    # --- built into edgekit by other subsystems (their entries below win over these) --------
    _c(
        "aws.greengrass.StreamManager",
        STAND_IN,
        "2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 2.0.13 2.0.14 2.0.15 2.1.0 2.1.1 2.1.2 2.1.3 "
        "2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11 2.1.12 2.1.13 2.2.0 2.2.1 2.3.0",
        _NOT_EMULATED.format(what="stream manager in this build"),
    ),
    _c(
        "aws.greengrass.SecretManager",
        STAND_IN,
        "2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 "
        "2.1.8 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 2.2.5 2.2.6 2.2.7 2.2.8 2.2.9",
        "the device runtime serves it (as the nucleus runs this plugin): reads cloudSecrets "
        "from Secrets Manager, caches them on disk, answers IPC GetSecretValue",
    ),
    # --- features edgekit does not emulate: stand-ins ---------------------------------------
    _c(
        "aws.greengrass.LogManager",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.1.0 2.1.1 2.1.2 2.1.3 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 2.2.5 2.2.6 "
        "2.2.7 2.2.8 2.3.0 2.3.1 2.3.2 2.3.3 2.3.4 2.3.5 2.3.6 2.3.7 2.3.8 2.3.9 2.3.10 2.3.11",
        _NOT_EMULATED.format(what="CloudWatch Logs uploads; logs stay under <root>/logs"),
    ),
    _c(
        "aws.greengrass.SystemLogForwarder",
        STAND_IN,
        "2.0.0 2.0.1 2.1.0",
        _NOT_EMULATED.format(what="CloudWatch Logs uploads"),
    ),
    _c(
        "aws.greengrass.ShadowManager",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5 2.0.6 2.1.0 2.1.1 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 "
        "2.3.0 2.3.1 2.3.2 2.3.3 2.3.4 2.3.5 2.3.6 2.3.7 2.3.8 2.3.9 2.3.10 2.3.11 2.3.12",
        _NOT_EMULATED.format(what="local shadows (shadow IPC operations are unsupported)"),
    ),
    _c(
        "aws.greengrass.DockerApplicationManager",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 2.0.13",
        _NOT_EMULATED.format(what="Docker; docker: artifacts fail the deployment"),
    ),
    _c(
        "aws.greengrass.SecureTunneling",
        STAND_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.0.4 1.0.5 1.0.6 1.0.7 1.0.8 1.0.9 1.0.10 1.0.11 1.0.12 1.0.13 "
        "1.0.14 1.0.15 1.0.16 1.0.17 1.0.18 1.0.19 1.1.0 1.1.1 1.1.2 1.1.3",
        _NOT_EMULATED.format(what="IoT secure tunneling"),
    ),
    _c(
        "aws.greengrass.SystemsManagerAgent",
        STAND_IN,
        "1.0.0 1.1.0 1.1.1 1.1.2 1.2.0 1.2.1",
        _NOT_EMULATED.format(what="Systems Manager"),
    ),
    _c(
        "aws.greengrass.telemetry.NucleusEmitter",
        STAND_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.0.4 1.0.5 1.0.6 1.0.7 1.0.8 1.0.9 1.0.10 1.0.11",
        _NOT_EMULATED.format(what="the telemetry emitter"),
    ),
    # --- client devices (local MQTT for other devices) --------------------------------------
    _c(
        "aws.greengrass.clientdevices.Auth",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.1.0 2.2.0 2.2.1 2.2.2 2.2.3 2.3.0 2.3.1 2.3.2 2.4.0 "
        "2.4.1 2.4.2 2.4.3 2.4.4 2.4.5 2.5.0 2.5.1 2.5.2 2.5.3 2.5.4 2.5.5",
        _NOT_EMULATED.format(what="client device authentication"),
    ),
    _c(
        "aws.greengrass.clientdevices.mqtt.Moquette",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.1.0 2.2.0 2.3.0 2.3.1 2.3.2 2.3.3 2.3.4 2.3.5 2.3.6 2.3.7",
        _NOT_EMULATED.format(
            what="the local client-device broker; use the local endpoints' MQTT broker"
        ),
    ),
    _c(
        "aws.greengrass.clientdevices.mqtt.EMQX",
        STAND_IN,
        "1.0.0 1.1.0 1.2.0 1.2.1 1.2.2 1.2.3 2.0.0 2.0.1 2.0.2",
        _NOT_EMULATED.format(what="the EMQX client-device broker"),
    ),
    _c(
        "aws.greengrass.clientdevices.mqtt.Bridge",
        STAND_IN,
        "2.0.0 2.0.1 2.1.0 2.1.1 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 2.2.5 2.2.6 2.3.0 2.3.1 2.3.2",
        _NOT_EMULATED.format(what="the MQTT bridge"),
    ),
    _c(
        "aws.greengrass.clientdevices.IPDetector",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.2.0 "
        "2.2.1 2.2.2",
        _NOT_EMULATED.format(what="connectivity reports for client devices"),
    ),
    # --- Lambda functions and V1 connectors --------------------------------------------------
    _c(
        "aws.greengrass.LambdaLauncher",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 2.0.13",
        _NOT_EMULATED.format(what="Lambda functions; aws.greengrass.lambda components fail"),
    ),
    _c(
        "aws.greengrass.LambdaManager",
        STAND_IN,
        "2.0.3 2.0.4 2.1.0 2.1.1 2.1.2 2.1.3 2.2.0 2.2.1 2.2.2 2.2.3 2.2.4 2.2.5 2.2.6 2.2.7 "
        "2.2.8 2.2.9 2.2.10 2.3.0 2.3.1 2.3.2 2.3.3 2.3.4 2.3.5",
        _NOT_EMULATED.format(what="Lambda functions"),
    ),
    _c(
        "aws.greengrass.LambdaRuntimes",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9",
        _NOT_EMULATED.format(what="Lambda runtimes"),
    ),
    _c(
        "aws.greengrass.LegacySubscriptionRouter",
        STAND_IN,
        "2.0.3 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4",
        _NOT_EMULATED.format(what="V1 subscriptions"),
    ),
    _c(
        "aws.greengrass.Cloudwatch",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 3.0.0 3.1.0 3.2.0",
        _NOT_EMULATED.format(what="CloudWatch metrics"),
    ),
    _c(
        "aws.greengrass.DeviceDefender",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 3.0.0 3.0.1 3.0.2 3.1.0 "
        "3.1.1 3.1.2",
        _NOT_EMULATED.format(what="Device Defender"),
    ),
    _c(
        "aws.greengrass.KinesisFirehose",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 "
        "2.1.8",
        _NOT_EMULATED.format(what="Kinesis Data Firehose"),
    ),
    _c(
        "aws.greengrass.SNS",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8",
        _NOT_EMULATED.format(what="Amazon SNS"),
    ),
    _c(
        "aws.greengrass.Modbus",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8",
        _NOT_EMULATED.format(what="Modbus-RTU devices"),
    ),
    # --- machine learning --------------------------------------------------------------------
    _c(
        "aws.greengrass.DLRImageClassification",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 "
        "2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11 2.1.12 2.1.13 2.1.14",
        _NOT_EMULATED.format(what="the DLR sample inference; edgekit's model agent serves ONNX"),
    ),
    _c(
        "aws.greengrass.DLRObjectDetection",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 "
        "2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11 2.1.12 2.1.13 2.1.14",
        _NOT_EMULATED.format(what="the DLR sample inference"),
    ),
    _c(
        "variant.DLR.ImageClassification.ModelStore",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9",
        _NOT_EMULATED.format(what="the DLR sample models"),
    ),
    _c(
        "variant.DLR.ObjectDetection.ModelStore",
        STAND_IN,
        "2.0.3 2.0.4 2.0.5 2.0.6 2.1.0 2.1.1 "
        "2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.1.10",
        _NOT_EMULATED.format(what="the DLR sample models"),
    ),
    _c(
        "variant.DLR",
        STAND_IN,
        "1.3.0 1.4.0 1.4.1 1.5.0 1.6.0 1.6.1 1.6.2 1.6.3 1.6.4 1.6.5 "
        "1.6.6 1.6.7 1.6.8 1.6.9 1.6.10 1.6.11 1.6.12 1.6.13 1.6.14 1.6.15 1.6.16",
        _NOT_EMULATED.format(what="the DLR runtime"),
    ),
    _c(
        "aws.greengrass.TensorFlowLiteImageClassification",
        STAND_IN,
        "2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11",
        _NOT_EMULATED.format(what="the TensorFlow Lite sample inference"),
    ),
    _c(
        "aws.greengrass.TensorFlowLiteObjectDetection",
        STAND_IN,
        "2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11",
        _NOT_EMULATED.format(what="the TensorFlow Lite sample inference"),
    ),
    _c(
        "variant.TensorFlowLite.ImageClassification.ModelStore",
        STAND_IN,
        "2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7",
        _NOT_EMULATED.format(what="the TensorFlow Lite sample models"),
    ),
    _c(
        "variant.TensorFlowLite.ObjectDetection.ModelStore",
        STAND_IN,
        "2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.1.5 2.1.6 2.1.7",
        _NOT_EMULATED.format(what="the TensorFlow Lite sample models"),
    ),
    _c(
        "variant.TensorFlowLite",
        STAND_IN,
        "2.5.0 2.5.1 2.5.2 2.5.3 2.5.4 2.5.5 2.5.6 2.5.7 2.5.8 2.5.9 2.5.10 2.5.11 2.5.12 2.5.13 "
        "2.5.14 2.5.15 2.5.16",
        _NOT_EMULATED.format(what="the TensorFlow Lite runtime"),
    ),
    # --- other AWS services at the edge -------------------------------------------------------
    _c(
        "aws.iot.EdgeConnectorForKVS",
        STAND_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.0.4 1.0.5 1.1.0",
        _NOT_EMULATED.format(what="Kinesis Video Streams"),
    ),
    _c(
        "aws.iot.SiteWiseEdgeCollectorOpcua",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.1.0 2.1.1 2.1.2 2.1.3 2.2.0 2.3.0 2.4.0 2.5.0 2.5.1 3.0.0",
        _NOT_EMULATED.format(what="IoT SiteWise"),
    ),
    _c(
        "aws.iot.SiteWiseEdgeCollectorModbus",
        STAND_IN,
        "1.0.0 1.0.1 1.1.0",
        _NOT_EMULATED.format(what="IoT SiteWise"),
    ),
    _c(
        "aws.iot.SiteWiseEdgeCollectorEIP",
        STAND_IN,
        "1.0.0 1.0.1",
        _NOT_EMULATED.format(what="IoT SiteWise"),
    ),
    _c(
        "aws.iot.SiteWiseEdgePublisher",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.1.0 2.1.1 2.1.2 2.1.3 2.1.4 2.2.0 2.2.1 2.3.0 2.4.0 2.4.1 2.5.0 "
        "3.0.0 3.1.0",
        _NOT_EMULATED.format(what="IoT SiteWise"),
    ),
    _c(
        "aws.iot.SiteWiseEdgeProcessor",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 2.0.13 "
        "2.0.14 2.0.15 2.1.0 3.0.0 3.1.0 3.2.0 3.3.0",
        _NOT_EMULATED.format(what="IoT SiteWise"),
    ),
    _c(
        "aws.greengrass.SageMakerEdgeManager",
        BUILT_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.1.0 1.1.1 1.2.0 1.3.0 1.3.1 1.3.2 1.3.3 1.3.4",
        "edgekit's model agent serves the Edge Manager agent API on UnixSocketName "
        "(ONNX models; docs/edge-manager.md)",
    ),
    _c(
        "aws.greengrass.StreamManager",
        BUILT_IN,
        "2.0.7 2.0.8 2.0.9 2.0.10 2.0.11 2.0.12 2.0.13 2.0.14 2.0.15 2.1.0 2.1.1 2.1.2 2.1.3 "
        "2.1.4 2.1.5 2.1.6 2.1.7 2.1.8 2.1.9 2.1.10 2.1.11 2.1.12 2.1.13 2.2.0 2.2.1 2.3.0",
        "edgekit's stream manager (edgekit.local.streammanager): the Stream Manager SDK "
        "protocol on STREAM_MANAGER_SERVER_PORT, file/memory streams, S3 export tasks and "
        "Kinesis exports to the emulated endpoints; IoT Analytics, IoT SiteWise, HTTP refused",
    ),
)


def _index(catalog: tuple[ProvidedComponent, ...]) -> dict[str, ProvidedComponent]:
    """By name; an entry BUILT_IN wins over a STAND_IN one of the same name (a subsystem
    that implements a component adds its own entry; the stand-in is the fallback)."""
    index: dict[str, ProvidedComponent] = {}
    for c in catalog:
        if c.name not in index or c.kind == BUILT_IN:
            index[c.name] = c
    return index


PUBLIC_COMPONENTS: dict[str, ProvidedComponent] = _index(_CATALOG)


def public_component(name: str) -> ProvidedComponent | None:
    """The public component called ``name``, or None for every other name."""
    return PUBLIC_COMPONENTS.get(name)


def is_public(name: str) -> bool:
    """Whether ``name`` is an AWS-provided public component (never published by users)."""
    return name in PUBLIC_COMPONENTS


def is_stand_in(name: str) -> bool:
    """A public component the local device reports RUNNING without running anything."""
    c = PUBLIC_COMPONENTS.get(name)
    return c is not None and c.kind == STAND_IN


def is_built_in(name: str) -> bool:
    """A public component the local device runs from a recipe edgekit writes."""
    c = PUBLIC_COMPONENTS.get(name)
    return c is not None and c.kind == BUILT_IN
