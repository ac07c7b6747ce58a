"""Wait until every core device of a deployment's thing group runs it.

Polls each core device of the group (ListCoreDevices, then the device's status from
`edgekit.deploy.status`) until the device reports the deployment SUCCEEDED and the new
versions RUNNING or FINISHED, showing a progress bar; a failed device raises
DeviceDeploymentError with the device's own reason.
"""

from __future__ import annotations

import time
from typing import Any

from edgekit import clients
from edgekit.deploy.status import DeploymentResult, DeviceStatus, core_devices, device_status
from edgekit.errors import DeploymentError, DeviceDeploymentError
from edgekit.progress import progress
from edgekit.provision import device_backend
from edgekit.settings import Settings

POLL_INTERVAL = 1.0
# How long to wait for the group's first core device to show up before giving up.
NO_DEVICE_GRACE = 30.0


def wait_for_deployment(
    settings: Settings,
    result: DeploymentResult,
    *,
    timeout: float = 600.0,
    greengrass: Any = None,
    poll: float = POLL_INTERVAL,
) -> DeploymentResult:
    """Poll every core device of the target group until all are done; DeploymentError if not.

    ``greengrass``: a Greengrass client to use (default: one for ``settings``).
    """
    greengrass = greengrass or clients.client("greengrassv2", settings)
    started = time.monotonic()
    deadline = started + timeout
    done: dict[str, DeviceStatus] = {}
    things: list[str] = []
    with progress(total=0, desc="deploy", unit="device") as bar:
        while True:
            # Re-listed every round: a device's group membership may show up a little late.
            listed = core_devices(greengrass, result.target_arn)
            if listed != things:
                things = sorted(set(things) | set(listed))
                bar.total = len(things)
                bar.refresh()
            for thing in things:
                if thing in done:
                    continue
                status = device_status(greengrass, thing, result.deployment_id, result.components)
                if status.failed:
                    result.devices = [
                        status if t == thing else done.get(t, DeviceStatus(t)) for t in things
                    ]
                    hint = device_backend(settings).deploy_failed_hint(thing)
                    raise DeviceDeploymentError(
                        f"deployment {result.deployment_id} {status.execution_status} on "
                        f"{thing}: {status.reason or 'no reason given'}{hint}",
                        device=thing,
                        reason=status.reason,
                        result=result,
                    )
                if status.ready:
                    done[thing] = status
                    bar.update(1)
            if things and len(done) == len(things):
                break
            now = time.monotonic()
            if not things and now - started >= min(NO_DEVICE_GRACE, timeout):
                raise DeploymentError(
                    f"no core devices in {result.target_arn}: nothing would run deployment "
                    f"{result.deployment_id}; add one (`edgekit local device add THING "
                    "--thing-group GROUP`) or start the device stack"
                )
            if now >= deadline:
                pending = [t for t in things if t not in done]
                raise DeploymentError(
                    f"deployment {result.deployment_id}: {', '.join(pending)} did not finish "
                    f"within {timeout:.0f} s; check the devices are running"
                    + device_backend(settings).running_hint
                )
            time.sleep(poll)
    result.devices = [done[t] for t in things]
    return result
