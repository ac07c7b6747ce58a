"""Exception types raised by edgekit.

Every message names the file, field or resource at fault and says what to do
next, so a notebook user can fix the input without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose."""


class ConfigurationError(EdgekitError):
    """A setting, flag or environment variable is missing or invalid."""


class DataError(EdgekitError):
    """A data set, label file or image cannot be read as expected."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ModelError(EdgekitError):
    """A model file is missing, malformed or lacks the metadata edgekit needs."""


class CompileError(EdgekitError):
    """Compiling a model for a target failed."""


class ParityError(CompileError):
    """A compiled model lost too much accuracy against its source model."""


class PackageError(EdgekitError):
    """A model package cannot be built or read."""


class VerificationError(PackageError):
    """A model package failed its hash or signature check."""


class RecipeError(EdgekitError):
    """A Greengrass component recipe is invalid.

    ``source`` names the recipe (a file, ``inlineRecipe``...), ``field`` the path of the
    first bad field (``Manifests[0].Platform.os``) or None, ``reason`` the bare message;
    ``problems`` lists every ``(field, message)`` found, so a service can return them
    all at once (as the ValidationException ``fields`` list).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        source: str | None = None,
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self.field = field
        self.source = source
        self.reason = message
        self.problems = problems if problems is not None else [(field or "", message)]
        where = ": ".join(part for part in (source, field) if part)
        text = f"{where}: {message}" if where else message
        if len(self.problems) > 1:
            more = "; ".join(f"{f}: {m}" for f, m in self.problems[1:6])
            extra = len(self.problems) - 6
            text += f" (also: {more}{f'; and {extra} more' if extra > 0 else ''})"
        super().__init__(text)


class DeploymentError(EdgekitError):
    """A Greengrass deployment failed or could not be created."""


class LocalBackendError(EdgekitError):
    """The local endpoints or a local device runtime could not start or answer."""


class AgentError(EdgekitError):
    """The model agent refused a request or could not be reached."""


class AwsServiceError(EdgekitError):
    """An AWS (or emulated AWS) call failed; ``code`` is the service's error code."""

    code: str = ""
    resource: str = ""


class ResourceNotFoundError(AwsServiceError):
    """An AWS resource edgekit needs does not exist (yet, or any more)."""


class AccessDeniedError(AwsServiceError):
    """AWS refused a call for want of credentials or permissions."""


class StackError(EdgekitError):
    """A CloudFormation stack could not be deployed, read or deleted; names the resource."""

    def __init__(
        self,
        message: str,
        *,
        stack: str | None = None,
        status: str | None = None,
        logical_id: str | None = None,
        resource_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.stack = stack
        self.status = status
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


class ProvisionError(EdgekitError):
    """Devices did not come up as healthy core devices, or a provisioned stack is unusable."""


class RegistryError(EdgekitError):
    """The model registry refused a request or holds something edgekit cannot read."""


class PublishError(DeploymentError):
    """A Greengrass component version could not be created."""


class DeviceDeploymentError(DeploymentError):
    """A device reported the deployment failed; ``device`` and ``reason`` say which and why.

    ``result`` is the `edgekit.deploy.DeploymentResult` with every device's status;
    ``devices`` maps every failed device to its `edgekit.deploy.DeviceProof` (``device``
    and ``reason`` are the first of them).
    """

    def __init__(
        self,
        message: str,
        *,
        device: str,
        reason: str,
        result: Any,
        devices: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.device = device
        self.reason = reason
        self.result = result
        self.devices = dict(devices or {})


class NoResultsError(EdgekitError):
    """No result message arrived from devices that should be publishing."""


class PipelineError(EdgekitError):
    """A notebook of the pipeline failed; ``notebook`` and ``cell`` say where."""

    def __init__(self, message: str, *, notebook: Path, cell: int | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell


class AgentStatusError(AgentError):
    """A request the model agent refused, with the gRPC status code the API documents for it.

    ``code`` is a ``grpc.StatusCode`` member name (NOT_FOUND, INVALID_ARGUMENT, ...).
    """

    def __init__(self, code: str, details: str, *, method: str | None = None) -> None:
        self.code = code
        self.details = details
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code}: {details}")


class InvalidMessageError(DataError):
    """A message does not match its schema; ``field`` is the JSON path of the first problem."""

    def __init__(self, schema: str, field: str, reason: str, *, problems: int = 1) -> None:
        more = f" (and {problems - 1} more problem(s))" if problems > 1 else ""
        super().__init__(f"invalid {schema} message: {field}: {reason}{more}")
        self.schema = schema
        self.field = field
        self.reason = reason
        self.problems = problems


class SpoolError(EdgekitError):
    """The device's result spool file cannot be opened or written."""


class RolloutError(EdgekitError):
    """A rollout could not reach a verdict or could not undo its stage (e.g. the rollback
    did not prove the previous package); its record says where it stopped."""


class LabError(EdgekitError):
    """JupyterLab (`edgekit lab`) did not start or answer; the message holds its log's end."""


class WorkflowExecutionError(DeploymentError):
    """A deploy-on-approval execution (Step Functions) ended other than SUCCEEDED;
    ``state`` is the state that failed, ``error`` and ``cause`` what it said."""

    def __init__(
        self,
        message: str,
        *,
        execution_arn: str,
        status: str,
        state: str | None,
        error: str | None,
        cause: str | None,
    ) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn
        self.status = status
        self.state = state
        self.error = error
        self.cause = cause


class ScheduleError(ConfigurationError):
    """A pipeline schedule is invalid (its cron or rate expression, its name, its parameters
    file) or names one that does not exist; the message names the field or the schedule."""
