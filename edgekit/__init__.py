"""edgekit: take a visual quality-inspection model from a notebook to AWS IoT
Greengrass v2 devices and bring their results back.

The public API is what this module exports; everything else is internal.
"""

from __future__ import annotations

from edgekit.errors import (
    AgentError,
    CompileError,
    ConfigurationError,
    DataError,
    DeploymentError,
    EdgekitError,
    LocalBackendError,
    ModelError,
    PackageError,
    ParityError,
    RecipeError,
    VerificationError,
)

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "CompileError",
    "ConfigurationError",
    "DataError",
    "DeploymentError",
    "EdgekitError",
    "LocalBackendError",
    "ModelError",
    "PackageError",
    "ParityError",
    "RecipeError",
    "VerificationError",
    "__version__",
]
