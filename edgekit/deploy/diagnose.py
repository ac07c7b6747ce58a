"""Why a deployment failed on a device: its reason, the failing component and its log,
and what each device of the deployment runs after the rollback."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from edgekit.deploy.status import TRANSITIONAL_STATES, component_roles, installed_rows
from edgekit.errors import DeviceDeploymentError
from edgekit.provision import device_backend
from edgekit.settings import Settings

#: Seconds :func:`explain_failure` waits for the components to settle after a rollback.
SETTLE_SECONDS = 10.0


def failing_component(settings: Settings, reason: str) -> str | None:
    """Which of edgekit's components a failure reason names (the longest name that matches).

    ``com.qualityinspection`` is a prefix of the other two names, so a name only
    counts when no further name character follows it (``<name>.log`` counts).
    """
    for name in sorted(component_roles(settings), key=len, reverse=True):
        # not followed by another name character, except a log file's ".log"
        if re.search(re.escape(name) + r"(?![\w-])(?!\.(?!log\b)\w)", reason or ""):
            return name
    return None


def log_location(settings: Settings, thing: str, component: str | None) -> str:
    """Where a component's log is, in words, for the backend."""
    return device_backend(settings).log_location(thing, component)


def device_log_tail(settings: Settings, thing: str, component: str | None, lines: int = 20) -> str:
    """The last ``lines`` of the component's log on a local device ('' elsewhere or if absent)."""
    return device_backend(settings).log_tail(thing, component, lines)


@dataclass
class Failure:
    """What a failed deployment left: who, why, the log, and what runs after the rollback."""

    thing: str
    status: str
    reason: str
    component: str | None
    log_location: str
    log_tail: str
    after_rollback: list[dict[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The reason without the log lines a local device embeds in it, rollback kept."""
        lines = (self.reason or "no reason given").splitlines()
        text = lines[0].split("; last lines of ", 1)[0].removesuffix(":")
        outcome = re.search(r"; (rolled back\b.*|rollback failed\b.*)$", lines[-1])
        if outcome and outcome.group(1) not in text:
            text += f"; {outcome.group(1)}"
        return text


def _after_rollback(
    settings: Settings, error: DeviceDeploymentError, settle: float
) -> list[dict[str, str]]:
    """What each device of the deployment runs now, once no component is in a transitional
    state (NEW, INSTALLED, STARTING, STOPPING) or ``settle`` seconds passed."""
    things = [d.thing_name for d in error.result.devices] or [error.device]
    names = set(component_roles(settings))
    deadline = time.monotonic() + settle
    while True:
        rows = installed_rows(settings, things, deployment_id=error.result.deployment_id)
        states = {cell.rsplit(" ", 1)[-1] for r in rows for k, cell in r.items() if k in names}
        if not states & TRANSITIONAL_STATES or time.monotonic() >= deadline:
            return rows
        time.sleep(0.5)


def _failure(
    settings: Settings, error: DeviceDeploymentError, thing: str, rows: list[dict[str, str]]
) -> Failure:
    proof = error.devices.get(thing)
    reason = (proof.reason if proof is not None else None) or (
        error.reason if thing == error.device else "no reason given"
    )
    status = next(
        (d.execution_status for d in error.result.devices if d.thing_name == thing), "FAILED"
    )
    component = (proof.component if proof is not None else None) or failing_component(
        settings, reason
    )
    return Failure(
        thing=thing,
        status=status,
        reason=reason,
        component=component,
        log_location=log_location(settings, thing, component),
        log_tail=device_log_tail(settings, thing, component),
        after_rollback=rows,
    )


def explain_failure(
    settings: Settings, error: DeviceDeploymentError, *, settle: float = SETTLE_SECONDS
) -> Failure:
    """Gather the (first) failing device's reason, its failing component's log tail, and the
    components each device of the deployment runs after the rollback.

    The device reports FAILED once it has rolled back; its component list may follow a
    moment later, so this waits up to ``settle`` seconds for no component to be in a
    transitional state (NEW, INSTALLED, STARTING, STOPPING).
    """
    return _failure(settings, error, error.device, _after_rollback(settings, error, settle))


def explain_failures(
    settings: Settings, error: DeviceDeploymentError, *, settle: float = SETTLE_SECONDS
) -> list[Failure]:
    """:func:`explain_failure` for every device the error names (``error.devices``), in
    name order; the rows after the rollback are read once and shared."""
    rows = _after_rollback(settings, error, settle)
    things = sorted(error.devices) or [error.device]
    return [_failure(settings, error, thing, rows) for thing in things]
