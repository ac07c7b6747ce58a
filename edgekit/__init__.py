"""edgekit: take a visual quality-inspection model from a notebook to AWS IoT
Greengrass v2 devices and bring their results back.

The public API is what this module exports; everything else is internal.
Names load lazily, so ``import edgekit`` stays fast and pulls in neither
boto3, ONNX Runtime nor torch until they are used.

This module must not import any subsystem eagerly (only errors, settings and
version); nothing inside edgekit imports it (use ``edgekit.version``).
"""

from __future__ import annotations

import importlib
from typing import Any

from edgekit.errors import (
    AccessDeniedError,
    AgentError,
    AgentStatusError,
    AwsServiceError,
    CompileError,
    ConfigurationError,
    DataError,
    DeploymentError,
    DeviceDeploymentError,
    EdgekitError,
    InvalidMessageError,
    LabError,
    LocalBackendError,
    ModelError,
    NoResultsError,
    PackageError,
    ParityError,
    PipelineError,
    ProvisionError,
    PublishError,
    RecipeError,
    RegistryError,
    ResourceNotFoundError,
    RolloutError,
    ScheduleError,
    SpoolError,
    StackError,
    VerificationError,
    WorkflowExecutionError,
)
from edgekit.settings import Settings
from edgekit.version import __version__

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # data
    "Box": "edgekit.data",
    "Dataset": "edgekit.data",
    "Detection": "edgekit.data",
    "Sample": "edgekit.data",
    "SyntheticTagScratches": "edgekit.data",
    "iter_images": "edgekit.data",
    "load_dataset": "edgekit.data",
    "load_image": "edgekit.data",
    "split_dataset": "edgekit.data",
    "write_dataset": "edgekit.data",
    # model
    "EvalResult": "edgekit.model",
    "Predictor": "edgekit.model.predict",
    "default_model_path": "edgekit.model",
    "evaluate": "edgekit.model",
    "train": "edgekit.model.train",
    # compile and package
    "CompileReport": "edgekit.compile",
    "compile_model": "edgekit.compile",
    "Manifest": "edgekit.package",
    "build_package": "edgekit.package",
    "generate_keypair": "edgekit.package",
    "open_package": "edgekit.package",
    "load_predictor": "edgekit.package",
    "verify_package": "edgekit.package",
    # AWS resources, through edgekit.clients on either backend
    "client": "edgekit.clients",
    "session": "edgekit.clients",
    "delete_stack": "edgekit.stack",
    "deploy_stack": "edgekit.stack",
    "stack_outputs": "edgekit.stack",
    "deprovision": "edgekit.provision",
    "find_provisioned": "edgekit.provision",
    "provision": "edgekit.provision",
    "approve": "edgekit.registry",
    "latest_approved": "edgekit.registry",
    "register_model_version": "edgekit.registry",
    "build_components": "edgekit.components",
    "publish_components": "edgekit.components",
    "deploy": "edgekit.deploy",
    "wait_for_deployment": "edgekit.deploy",
    "ProofCriteria": "edgekit.deploy",
    "ProofCollector": "edgekit.deploy",
    # results
    "LiveCollector": "edgekit.results",
    "ResultsTable": "edgekit.results",
    "collect": "edgekit.results",
    "validate_result": "edgekit.schemas",
    # on the device
    "AgentClient": "edgekit.agent",
    "AgentServer": "edgekit.agent",
    # scheduled runs
    "run_pipeline": "edgekit.pipeline",
    # staged rollouts with gates (the function is edgekit.rollout.rollout: the name
    # edgekit.rollout is the package)
    "Gates": "edgekit.rollout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AccessDeniedError",
    "AgentError",
    "AgentStatusError",
    "AwsServiceError",
    "CompileError",
    "ConfigurationError",
    "DataError",
    "DeploymentError",
    "DeviceDeploymentError",
    "EdgekitError",
    "InvalidMessageError",
    "LabError",
    "LocalBackendError",
    "ModelError",
    "NoResultsError",
    "PackageError",
    "ParityError",
    "PipelineError",
    "ProvisionError",
    "PublishError",
    "RecipeError",
    "RegistryError",
    "ResourceNotFoundError",
    "RolloutError",
    "ScheduleError",
    "Settings",
    "SpoolError",
    "StackError",
    "VerificationError",
    "WorkflowExecutionError",
    "__version__",
    *sorted(_LAZY),
]
