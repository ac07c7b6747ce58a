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


def explain_failure(
    settings: Settings, error: DeviceDeploymentError, *, settle: float = SETTLE_SECONDS
) -> Failure:
    """Gather the failing device's reason, its failing component's log tail, and the
    components each device of the deployment runs after the rollback.

    The device reports FAILED once it has rolled back; its component list may follow a
    moment later, so this waits up to ``settle`` seconds for no component to be in a
    transitional state (NEW, INSTALLED, STARTING, STOPPING).
    """
    thing = error.device
    status = next(
        (d.execution_status for d in error.result.devices if d.thing_name == thing), "FAILED"
    )
    component = failing_component(settings, error.reason)
    things = [d.thing_name for d in error.result.devices] or [thing]
    names = set(component_roles(settings))
    deadline = time.monotonic() + settle
    while True:
        rows = installed_rows(settings, things, deployment_id=error.result.deployment_id)
        states = {cell.rsplit(" ", 1)[-1] for r in rows for k, cell in r.items() if k in names}
        if not states & TRANSITIONAL_STATES or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return Failure(
        thing=thing,
        status=status,
        reason=error.reason,
        component=component,
        log_location=log_location(settings, thing, component),
        log_tail=device_log_tail(settings, thing, component),
        after_rollback=rows,
    )
