"""Wait until every core device of a deployment's thing group proves it runs it.

Polls each core device of the group (ListCoreDevices, then the device's status from
`edgekit.deploy.status`) and, with ``proof`` criteria, judges each device with a
`edgekit.deploy.proof.ProofCollector`: a device is done only when Greengrass reports
the deployment SUCCEEDED on it AND its health and results prove the deployed package
(`edgekit.deploy.proof`). A device is FAILED, with a named reason, when Greengrass
reports the deployment failed, when one of the deployed components is BROKEN (or stays
ERRORED), or when it has not proven itself by the timeout (a silent device fails too).
Proven devices are watched until the whole fleet is done, so an app that dies a few
seconds after its first results is caught. Every failed device is named in one
DeviceDeploymentError.
"""

from __future__ import annotations

import time
from typing import Any

from edgekit import clients
from edgekit.deploy.diagnose import device_log_tail, failing_component, log_location
from edgekit.deploy.proof import FAILED, PROVEN, DeviceProof, ProofCollector, ProofCriteria
from edgekit.deploy.status import (
    DONE_STATUSES,
    READY_STATES,
    DeploymentResult,
    DeviceStatus,
    device_status,
    target_devices,
)
from edgekit.errors import DeploymentError, DeviceDeploymentError
from edgekit.progress import progress
from edgekit.provision import device_backend
from edgekit.settings import Settings

POLL_INTERVAL = 1.0
# How long to wait for the group's first core device to show up before giving up.
NO_DEVICE_GRACE = 30.0
#: Lines of the failing component's log quoted in a failure reason.
LOG_LINES = 12
#: Polls in a row a deployed component may be ERRORED (Greengrass restarts it) before failing.
ERRORED_POLLS = 2


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip().splitlines())


def failure_reason(
    settings: Settings, thing: str, headline: str, component: str | None, proof: DeviceProof
) -> str:
    """A failed device's reason: what failed, the health state and evidence gap, and the last
    lines of the failing component's log (when this machine can read it)."""
    first, _, rest = headline.partition("\n")
    parts = [first]
    if proof.health_state:
        parts.append(f"health state {proof.health_state}")
    if proof.problem and proof.problem not in headline:
        parts.append(proof.problem)
    text = "; ".join(parts) + f"; log: {log_location(settings, thing, component)}"
    if rest.strip():
        text += "\n" + rest.rstrip()
    if "last lines of " not in headline:
        tail = device_log_tail(settings, thing, component, LOG_LINES)
        if tail.strip():
            text += f"\n  last lines of {component or 'the device'} log:\n{_indent(tail)}"
    return text


def _lifecycle_problem(
    status: DeviceStatus, wanted: dict[str, str], errored: dict[tuple[str, str], int]
) -> tuple[str, str] | None:
    """(component, headline) when a deployed component is BROKEN or keeps ERRORED."""
    for name, (version, state) in sorted(status.components.items()):
        if version != wanted.get(name):
            continue  # the old version, still being replaced
        key = (status.thing_name, name)
        if state == "ERRORED":
            errored[key] = errored.get(key, 0) + 1
            if errored[key] >= ERRORED_POLLS:
                return name, (
                    f"component {name} {version} is ERRORED (lifecycle: its Startup/Run step "
                    f"failed and did not recover within {ERRORED_POLLS} polls)"
                )
            continue
        errored.pop(key, None)
        if state == "BROKEN":
            return name, (
                f"component {name} {version} is BROKEN (lifecycle: its Install/Startup/Run "
                "step failed repeatedly; Greengrass gave up restarting it)"
            )
    return None


def _stalled_component(settings: Settings, status: DeviceStatus, wanted: dict[str, str]) -> str:
    """The component to blame for a device that did not prove itself: the first one not at
    its version and RUNNING/FINISHED, else the inference app (it publishes the proof)."""
    for name in (settings.model_component, settings.agent_component, settings.inference_component):
        version, state = status.components.get(name, ("", "MISSING"))
        if name in wanted and (version != wanted[name] or state not in READY_STATES):
            return name
    return settings.inference_component


def _raise_failed(
    settings: Settings,
    result: DeploymentResult,
    proofs: dict[str, DeviceProof],
    criteria: ProofCriteria | None,
) -> None:
    failed = {t: p for t, p in proofs.items() if p.state == FAILED}
    if not failed:
        return
    what = f" with {criteria.package}" if criteria else ""
    lines = [
        f"deployment {result.deployment_id}: {len(failed)} of {len(proofs)} device(s) did not "
        f"prove inspection{what}: {', '.join(sorted(failed))}"
    ]
    for thing in sorted(failed):
        lines.append(f"- {thing}: {failed[thing].reason}")
    first = sorted(failed)[0]
    raise DeviceDeploymentError(
        "\n".join(lines) + device_backend(settings).deploy_failed_hint(first),
        device=first,
        reason=failed[first].reason or "no reason given",
        result=result,
        devices=failed,
    )


def wait_for_deployment(
    settings: Settings,
    result: DeploymentResult,
    *,
    timeout: float = 600.0,
    greengrass: Any = None,
    iot: Any = None,
    poll: float = POLL_INTERVAL,
    proof: ProofCriteria | None = None,
    collector: ProofCollector | None = None,
) -> DeploymentResult:
    """Poll every core device of the target group until each is PROVEN or FAILED.

    ``proof``: what each device must prove (None and no ``collector``: Greengrass's
    SUCCEEDED alone counts, for deployments of components that publish no health).
    ``collector``: a started `ProofCollector` (subscribed before the deployment was
    created, so no early result is missed); default: one started here from ``proof``.
    ``greengrass``, ``iot``: the clients to use (default: ones for ``settings``). The
    devices waited for are the group's member things that are core devices
    (`target_devices`), not ListCoreDevices' answer, which on AWS names only devices
    that already deployed to the group.
    Raises DeviceDeploymentError naming every failed device (``.devices``), or
    DeploymentError when the group has no core device at all.
    """
    greengrass = greengrass or clients.client("greengrassv2", settings)
    iot = iot or clients.client("iot", settings)
    if collector is None and proof is not None:
        with ProofCollector(settings, proof) as own:
            return _wait(settings, result, timeout, greengrass, iot, poll, own)
    return _wait(settings, result, timeout, greengrass, iot, poll, collector)


def _wait(
    settings: Settings,
    result: DeploymentResult,
    timeout: float,
    greengrass: Any,
    iot: Any,
    poll: float,
    collector: ProofCollector | None,
) -> DeploymentResult:
    started = time.monotonic()
    deadline = started + timeout
    statuses: dict[str, DeviceStatus] = {}
    failures: dict[str, DeviceProof] = {}  # without a collector
    errored: dict[tuple[str, str], int] = {}
    things: list[str] = []
    criteria = collector.criteria if collector is not None else None
    result.criteria = criteria

    def verdicts() -> dict[str, DeviceProof]:
        if collector is not None:
            return collector.proofs()
        out = {}
        for thing in things:
            status = statuses.get(thing, DeviceStatus(thing))
            proof = failures.get(thing) or DeviceProof(thing, status.execution_status)
            if proof.state != FAILED and status.ready:
                proof.state = PROVEN
            out[thing] = proof
        return out

    def fail(thing: str, headline: str, component: str | None) -> None:
        reason = failure_reason(settings, thing, headline, component, evidence(thing))
        if collector is not None:
            collector.fail(thing, reason, component)
        elif thing not in failures:
            status = statuses.get(thing, DeviceStatus(thing)).execution_status
            failures[thing] = DeviceProof(
                thing, status, state=FAILED, reason=reason, component=component
            )

    def evidence(thing: str) -> DeviceProof:
        if collector is not None:
            return collector.proof(thing)
        return DeviceProof(thing, statuses.get(thing, DeviceStatus(thing)).execution_status)

    with progress(total=0, desc="deploy", unit="device") as bar:
        while True:
            # Re-listed every round: a device's group membership may show up a little late.
            listed = target_devices(greengrass, iot, result.target_arn, known=things)
            if set(listed) - set(things):
                things = sorted(set(things) | set(listed))
                if collector is not None:
                    collector.expect(things)
                bar.total = len(things)
                bar.refresh()
            before = verdicts()
            for thing in things:
                if before.get(thing) is not None and before[thing].state == FAILED:
                    continue
                status = device_status(greengrass, thing, result.deployment_id, result.components)
                statuses[thing] = status
                if collector is not None:
                    collector.set_status(thing, status.execution_status)
                if status.failed:
                    component = failing_component(settings, status.reason)
                    headline = (
                        f"Greengrass reports the deployment {status.execution_status}: "
                        f"{status.reason or 'no reason given'}"
                    )
                    fail(thing, headline, component)
                    continue
                # While the deployment runs, a failing component is Greengrass's to judge (it
                # fails the deployment and rolls back); after SUCCEEDED, it is ours.
                problem = (
                    _lifecycle_problem(status, result.components, errored)
                    if status.reported in DONE_STATUSES
                    else None
                )
                if problem is not None:
                    component, headline = problem
                    fail(thing, headline, component)
            now_verdicts = verdicts()
            done = [t for t in things if now_verdicts[t].state in (PROVEN, FAILED)]
            bar.n = len(done)
            bar.refresh()
            if things and len(done) == len(things):
                break
            now = time.monotonic()
            if not things and now - started >= min(NO_DEVICE_GRACE, timeout):
                raise DeploymentError(
                    f"no core devices in {result.target_arn}: nothing would run deployment "
                    f"{result.deployment_id}; provision them first: "
                    + device_backend(settings).provision_hint
                )
            if now >= deadline:
                for thing in things:
                    if now_verdicts[thing].state in (PROVEN, FAILED):
                        continue
                    status = statuses.get(thing, DeviceStatus(thing))
                    component = _stalled_component(settings, status, result.components)
                    gap = now_verdicts[thing].problem
                    version, state = status.components.get(component, ("-", "not installed"))
                    headline = (
                        f"not proven within {timeout:.0f} s: Greengrass reports "
                        f"{status.reported}; component {component} {version} {state}"
                        + (f"; {gap}" if gap else "")
                        + device_backend(settings).running_hint
                    )
                    fail(thing, headline, component)
                break
            time.sleep(poll)
    proofs = verdicts()
    result.devices = [statuses.get(t, DeviceStatus(t)) for t in things]
    result.proofs = proofs
    _raise_failed(settings, result, proofs, criteria)
    return result
