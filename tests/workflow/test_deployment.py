"""edgekit.workflow.deployment: notebook 04 without notebook 03.

The slow test deploys to a real local device in a throwaway home, the path notebook 04
takes when notebook 03 has not run, and breaks a deployment on purpose to see the
rollback explained.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.deploy import deploy, explain_failure
from edgekit.errors import DeviceDeploymentError
from edgekit.handover import DEPLOYMENT, read_handover
from edgekit.settings import Settings
from edgekit.workflow.deployment import deploy_latest_approved, find_deployment
from edgekit.workflow.results import device_image_dir


@pytest.mark.integration
@pytest.mark.slow
def test_deploy_latest_approved_then_find_it_then_explain_a_rollback(
    local: Settings, tmp_path: Path
) -> None:
    """Notebook 04 without notebook 03: deploy with 03's defaults; then a broken deployment."""
    out = tmp_path / "run"
    assert find_deployment(local, out) is None
    deployed = deploy_latest_approved(local, out, device_count=1, progress=False, timeout=120)
    assert deployed.deployed_now and deployed.things == ("nbhelpers-core-1",)
    record = read_handover(out, DEPLOYMENT)
    assert record is not None and record["status"] == "SUCCEEDED"
    assert record["model"]["approval_status"] == "Approved"
    (device,) = record["devices"]
    assert device["proof"]["state"] == "PROVEN" and device["proof"]["results"] >= 3
    assert device["proof"]["package_sha256"] == record["proof"]["package_sha256"]

    found = find_deployment(local, out)
    assert found is not None and found.things == deployed.things and found.record == record
    images = device_image_dir(local, found.things)
    assert images is not None and len(list(images.glob("tag-*.jpg"))) == 12

    with pytest.raises(DeviceDeploymentError) as info:
        deploy(
            local,
            thing_group=deployed.thing_group,
            configuration={local.agent_component: {"PublicKey": "not a key"}},
            timeout=120,
        )
    failure = explain_failure(local, info.value)
    assert failure.thing == "nbhelpers-core-1" and failure.component == local.agent_component
    assert "rolled back" in failure.summary and "\n" not in failure.summary
    assert "public key" in failure.log_tail
    (after,) = failure.after_rollback
    assert after["status"] == "FAILED"
    assert after[local.inference_component].endswith("RUNNING")  # the previous set runs again
