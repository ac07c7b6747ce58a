"""Why a deployment failed, in the words the control plane reports.

``codes`` follow the nucleus's deployment error codes (they become the
deployment's ``errorStack`` after ``DEPLOYMENT_FAILURE``); ``types`` its error
types (``errorTypes``).
"""

from __future__ import annotations

from edgekit.errors import DeploymentError


class DeploymentFailure(DeploymentError):
    """A deployment cannot be applied; the message names the component and the cause."""

    def __init__(
        self,
        message: str,
        *,
        codes: list[str] | None = None,
        types: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.codes = list(codes or [])
        self.types = list(types or [])

    @property
    def error_stack(self) -> list[str]:
        return ["DEPLOYMENT_FAILURE", *self.codes]
