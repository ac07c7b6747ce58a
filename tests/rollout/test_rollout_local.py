"""Rollouts end to end on local devices: one canary and one fleet device, short soaks.

The fleet runs a tiny model that finds no defect. A candidate that behaves the same is
PROMOTED to both devices; a candidate that flags every image as defective fails the
defect-rate gate on the canary, which is rolled back to the versions it ran before and
proves the previous package again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit import clients  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy, installed_components  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.registry import register_model_version, upload_package  # noqa: E402
from edgekit.rollout import Gates, load_record, rollout  # noqa: E402
from edgekit.rollout.stages import group_members  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "rollout-line"
CANARY, FLEET = "ro-canary-1", "ro-fleet-1"
GATES = Gates(min_results=3, max_defect_rate_delta=0.3, max_p95_ratio=None, max_error_rate=0.2)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        yield home, Settings(local_home=home, thing_group=GROUP)
    finally:
        endpoints.down(home)


def package(settings: Settings, out: Path, version: str, heatmap_bias: float) -> Path:
    private, _ = signing_keys(None, settings)
    model = build_tiny_model(out.with_suffix(".onnx"), heatmap_bias=heatmap_bias)
    return build_package(
        model, name=settings.model_name, version=version, key=private, out=out
    ).path


@pytest.fixture(scope="module")
def fleet(local: tuple[Path, Settings], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Two devices of GROUP running model 1.0.0 (no defects), proven."""
    home, settings = local
    work = tmp_path_factory.mktemp("fleet")
    for thing in (CANARY, FLEET):
        add_device(thing, GROUP, home)
    built = build_components(
        settings, out_dir=work, model_package=package(settings, work / "m1.tar.gz", "1.0.0", -8)
    )
    publish_components(settings, built)
    deploy(
        settings,
        thing_group=GROUP,
        configuration={settings.inference_component: {"InferenceInterval": 0.2}},
        timeout=180,
    )
    return settings


def test_promoted_to_every_device(fleet: Settings, tmp_path: Path) -> None:
    settings = fleet
    candidate = package(settings, tmp_path / "m2.tar.gz", "1.1.0", -8)
    report = tmp_path / "report.json"
    record = rollout(settings, candidate, canary=1, soak=4, gates=GATES, report=report, timeout=180)
    assert record.status == "PROMOTED", record.report()
    assert (record.canary_things, record.fleet_things) == ([CANARY], [FLEET])
    assert [(s.name, s.status) for s in record.stages] == [
        ("canary", "PASSED"),
        ("fleet", "PASSED"),
    ]
    sha = sha256_file(candidate)
    data = json.loads(report.read_text())
    assert data["status"] == "PROMOTED" and data["gate"] is None
    for thing in (CANARY, FLEET):
        row = data["devices"][thing]
        assert row["state"] == "PROVEN" and row["package_sha256"] == sha, row
        assert row["results"] >= 3 and row["errors"] == 0
        installed = installed_components(settings, thing)
        assert {n: v for n, (v, _s) in installed.items()} == record.candidate["components"]
    assert group_members(settings, GROUP) == [CANARY, FLEET]
    assert group_members(settings, record.canary_group) == []
    assert report.with_suffix(".html").is_file()
    # Running it again reports the finished rollout; status finds it.
    again = rollout(settings, candidate, canary=1, soak=4, gates=GATES, timeout=180)
    assert again.id == record.id and again.finished_at == record.finished_at
    assert load_record(settings).id == record.id


def test_a_failing_gate_rolls_the_canary_back(fleet: Settings, tmp_path: Path) -> None:
    settings = fleet
    before = {n: v for n, (v, _s) in installed_components(settings, CANARY).items()}
    previous_sha = load_record(settings).package_sha256  # the promoted package
    bad = package(settings, tmp_path / "m3.tar.gz", "1.2.0", +8)  # every image "defective"
    uri, manifest, sha = upload_package(settings, bad, public_key=signing_keys(None, settings)[1])
    register_model_version(
        settings, group=settings.model_name, package_s3_uri=uri, manifest=manifest, sha256=sha
    )
    record = rollout(
        settings, bad, canary=1, soak=4, gates=GATES, timeout=180, report=tmp_path / "bad.json"
    )
    assert record.status == "ROLLED_BACK", record.report()
    assert record.gate == "defect_rate_delta"
    assert "candidate 1.000" in str(record.gate_detail) and "vs current 0.000" in str(
        record.gate_detail
    )
    names = [(s.name, s.status) for s in record.stages]
    assert names == [("canary", "FAILED"), ("rollback", "PASSED")]
    # The canary runs the versions it ran before, and proved the previous package again.
    row = record.devices[CANARY]
    assert row["stage"] == "rollback" and row["state"] == "PROVEN"
    assert row["package_sha256"] == previous_sha
    after = {n: v for n, (v, _s) in installed_components(settings, CANARY).items()}
    assert after == before
    assert group_members(settings, GROUP) == [CANARY, FLEET]
    # The fleet device never left the previous model.
    assert {n: v for n, (v, _s) in installed_components(settings, FLEET).items()} == before
    # The registry version carries the outcome.
    sm = clients.client("sagemaker", settings)
    desc = sm.describe_model_package(ModelPackageName=record.registry["arn"])
    assert desc["CustomerMetadataProperties"]["edgekit:rollout"] == "ROLLED_BACK"
    assert desc["CustomerMetadataProperties"]["edgekit:rollout-gate"] == "defect_rate_delta"
    assert "defect_rate_delta" in desc["ApprovalDescription"]


def test_a_much_slower_candidate_is_rolled_back_by_the_latency_gate(
    fleet: Settings, tmp_path: Path
) -> None:
    """A candidate whose network is about 1000 times the work (a bigger input, 12x the
    channels): its p95 over the current model's on the rest of the fleet fails the ratio
    gate on the canary."""
    settings = fleet
    before = {n: v for n, (v, _s) in installed_components(settings, CANARY).items()}
    previous_sha = load_record(settings).previous["model"]["package_sha256"]
    private, _ = signing_keys(None, settings)
    model = build_tiny_model(
        tmp_path / "slow.onnx", heatmap_bias=-8, height=480, width=640, channels=96
    )
    slow = build_package(
        model, name=settings.model_name, version="1.5.0", key=private, out=tmp_path / "slow.tar.gz"
    ).path
    gates = dataclasses.replace(GATES, max_p95_ratio=3.0)
    record = rollout(settings, slow, canary=1, soak=4, gates=gates, timeout=180)
    assert record.status == "ROLLED_BACK", record.report()
    assert record.gate == "p95_latency", record.gate_detail
    assert "candidate p95" in str(record.gate_detail) and "> 3.00" in str(record.gate_detail)
    assert [(s.name, s.status) for s in record.stages] == [
        ("canary", "FAILED"),
        ("rollback", "PASSED"),
    ]
    row = record.devices[CANARY]
    assert row["stage"] == "rollback" and row["state"] == "PROVEN"
    assert row["package_sha256"] == previous_sha
    assert {n: v for n, (v, _s) in installed_components(settings, CANARY).items()} == before
    assert group_members(settings, GROUP) == [CANARY, FLEET]


def test_shadow_then_canary_then_fleet(fleet: Settings, tmp_path: Path) -> None:
    """The candidate first runs in shadow beside the current model on the canary: its
    agreement and latency come from the devices' health, then canary and fleet as usual."""
    settings = fleet
    current = load_record(settings).previous["model"]["package_sha256"]
    candidate = package(settings, tmp_path / "m4.tar.gz", "1.3.0", -8)
    record = rollout(settings, candidate, canary=1, soak=6, shadow=True, gates=GATES, timeout=180)
    assert record.status == "PROMOTED", record.report()
    assert [(s.name, s.status) for s in record.stages] == [
        ("shadow", "PASSED"),
        ("canary", "PASSED"),
        ("fleet", "PASSED"),
    ]
    shadow = {g["name"]: g for g in record.stages[0].gates}
    assert shadow["shadow_agreement"]["verdict"] == "PASS"
    assert shadow["shadow_agreement"]["value"] == 1.0  # both models find nothing, on every frame
    assert shadow["shadow_agreement"]["devices"][CANARY]["images_compared"] > 0
    assert record.devices[CANARY]["shadow"]["defect_agreement"] == 1.0
    assert current  # the shadow stage proved the current package while the candidate shadowed
    # After the rollout the app is out of shadow mode and the shadow component is gone.
    installed = installed_components(settings, CANARY)
    assert f"{settings.model_component}.shadow" not in installed


def test_a_named_canary_group_keeps_its_devices(fleet: Settings, tmp_path: Path) -> None:
    """``--canary-group``: its members are the canary; they are back in it (and in the fleet
    group) at the end, the group pinning what the fleet runs."""
    settings = fleet
    iot = clients.client("iot", settings)
    iot.create_thing_group(thingGroupName="line-canaries")
    iot.add_thing_to_thing_group(thingGroupName="line-canaries", thingName=FLEET)
    candidate = package(settings, tmp_path / "m5.tar.gz", "1.4.0", -8)
    record = rollout(
        settings, candidate, canary_group="line-canaries", soak=4, gates=GATES, timeout=180
    )
    assert record.status == "PROMOTED", record.report()
    assert (record.canary_things, record.fleet_things) == ([FLEET], [CANARY])
    assert group_members(settings, "line-canaries") == [FLEET]
    assert group_members(settings, GROUP) == [CANARY, FLEET]
    for thing in (CANARY, FLEET):
        installed = installed_components(settings, thing)
        assert {n: v for n, (v, _s) in installed.items()} == record.candidate["components"]
