"""The recipe the local device runs for aws.greengrass.StreamManager.

The documented configuration (``STREAM_MANAGER_*``, ``JVM_ARGS``, ``LOG_LEVEL``) with
its defaults, except the store root: ``.``, the component's work folder, as on
Greengrass (``/greengrass/v2/work/aws.greengrass.StreamManager``). The lifecycle passes
the configuration to the process as environment variables of the same names and starts
``python -m edgekit.local.streammanager serve --daemon`` with the device runtime's own
Python as the Startup step: the component is RUNNING once its port listens.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

__all__ = ["COMPONENT", "DEFAULT_CONFIGURATION", "builtin_recipe"]

COMPONENT = "aws.greengrass.StreamManager"
DEFAULT_CONFIGURATION: dict[str, str] = {
    "STREAM_MANAGER_STORE_ROOT_DIR": ".",
    "STREAM_MANAGER_SERVER_PORT": "8088",
    "STREAM_MANAGER_AUTHENTICATE_CLIENT": "true",
    "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH": "",
    "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE": "5",
    "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES": "5242880",
    "JVM_ARGS": "",
    "LOG_LEVEL": "INFO",
}


def builtin_recipe(version: str) -> dict[str, Any]:
    """The recipe of aws.greengrass.StreamManager ``version`` on the local device."""
    python = shlex.quote(sys.executable)
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": COMPONENT,
        "ComponentVersion": version,
        "ComponentType": "aws.greengrass.generic",
        "ComponentDescription": (
            "Stream manager: message streams, S3 export tasks and Kinesis exports for the "
            "components of this device (edgekit's local implementation of the protocol)."
        ),
        "ComponentPublisher": "AWS (run locally by edgekit)",
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
                    "Setenv": {key: f"{{configuration:/{key}}}" for key in DEFAULT_CONFIGURATION},
                    "Startup": {
                        "Script": f"exec {python} -m edgekit.local.streammanager serve --daemon",
                        "Timeout": 60,
                    },
                }
            }
        ],
    }
