"""A gate that fails in the FLEET stage, after the canary passed, on real local devices.

Two production lines: the canary's camera sees bright tags, the fleet device's dark ones
(``ImageDirectory`` is ``.../{iot:thingName}``). The current model finds no defect on
either. The candidate flags every dark tag as defective and no bright one: the canary
passes its gates (no defect on its line, none on the rest of the fleet either), then the
fleet device's defect rate jumps from 0 to 1 against its own rate under the current model
during the canary's soak, and the defect-rate gate fails in the fleet stage. Issue 11:
the rollout ends ROLLED_BACK naming the gate and its numbers; every device that got the
candidate (canary and fleet) runs the versions it ran before and proves the previous
package again; `edgekit rollout` exits 3, and `rollout status` and `--report` say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit.cli import main  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy, installed_components  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.model.predict import Predictor  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.rollout import load_record  # noqa: E402
from edgekit.rollout.stages import group_members  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "rollout-two-lines"
CANARY, FLEET = "lines-canary-1", "lines-fleet-1"
LIGHT = {CANARY: 255, FLEET: 0}  # the canary's line: bright tags; the fleet's: dark ones
#: Heatmap bias of the candidate: a dark tag scores about 0.38, a bright one about 0.18,
#: against the package's threshold 0.3 (checked by `test_the_candidate_flags_dark_tags_only`).
CANDIDATE_BIAS = -1.5


def write_images(folder: Path, value: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(3):
        pixels = np.full((64, 96, 3), value, np.uint8)
        Image.fromarray(pixels).save(folder / f"tag-{index:03d}.png")


def package(settings: Settings, out: Path, version: str, heatmap_bias: float) -> Path:
    private, _ = signing_keys(None, settings)
    model = build_tiny_model(out.with_suffix(".onnx"), heatmap_bias=heatmap_bias)
    return build_package(
        model, name=settings.model_name, version=version, key=private, out=out
    ).path


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings, Path]]:
    """Two devices of GROUP on their own lines, running model 1.0.0 (no defects), proven."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("lines")
    endpoints.up(home)
    try:
        settings = Settings(local_home=home, thing_group=GROUP)
        for thing, value in LIGHT.items():
            write_images(work / "cameras" / thing, value)
            add_device(thing, GROUP, home)
        current = package(settings, work / "m1.tar.gz", "1.0.0", -8)
        built = build_components(settings, out_dir=work / "build", model_package=current)
        publish_components(settings, built)
        deploy(
            settings,
            thing_group=GROUP,
            configuration={
                settings.inference_component: {
                    "InferenceInterval": 0.2,
                    "ImageDirectory": str(work / "cameras" / "{iot:thingName}"),
                }
            },
            timeout=180,
        )
        yield home, settings, work
    finally:
        endpoints.down(home)


def test_the_candidate_flags_dark_tags_only(tmp_path: Path) -> None:
    """The premise, checked with the same runtime: defective on the fleet's line only."""
    model = Predictor(build_tiny_model(tmp_path / "c.onnx", heatmap_bias=CANDIDATE_BIAS))
    current = Predictor(build_tiny_model(tmp_path / "m.onnx", heatmap_bias=-8))
    for thing, value in LIGHT.items():
        write_images(tmp_path / thing, value)
        image = tmp_path / thing / "tag-000.png"
        assert bool(model.predict(image)) is (thing == FLEET), thing
        assert current.predict(image) == []


def test_a_gate_failing_in_the_fleet_stage_rolls_every_device_back(
    lines: tuple[Path, Settings, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, settings, work = lines
    before = {
        thing: {n: v for n, (v, _s) in installed_components(settings, thing).items()}
        for thing in LIGHT
    }
    previous_sha = sha256_file(work / "m1.tar.gz")
    candidate = package(settings, tmp_path / "m2.tar.gz", "1.1.0", CANDIDATE_BIAS)
    report = tmp_path / "report.json"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    argv = [
        "rollout",
        "--backend", "local",
        "--model-package", str(candidate),
        "--thing-group", GROUP,
        "--canary", "1",
        "--soak", "4",
        "--max-defect-rate-delta", "0.3",
        "--max-error-rate", "0.2",
        "--max-p95-ratio", "1000",  # latency is not what this test judges
        "--timeout", "180",
        "--report", str(report),
    ]  # fmt: skip
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 3, out

    record = load_record(settings)
    assert record.status == "ROLLED_BACK", record.report()
    assert (record.canary_things, record.fleet_things) == ([CANARY], [FLEET])
    assert record.gate == "defect_rate_delta"
    assert str(record.gate_detail).startswith("candidate 1.000"), record.gate_detail
    assert "vs current 0.000" in str(record.gate_detail), record.gate_detail
    assert [(s.name, s.status) for s in record.stages] == [
        ("canary", "ROLLED_BACK"),  # it passed, and was rolled back with the fleet
        ("fleet", "FAILED"),
        ("rollback", "PASSED"),
    ]
    canary_gates = {g["name"]: g["verdict"] for g in record.stages[0].gates}
    assert canary_gates["defect_rate_delta"] == "PASS"
    rollback = record.stages[2]
    assert rollback.target == GROUP and rollback.things == [CANARY, FLEET]

    # Every device got the candidate, and runs what it ran before, proven on the old package.
    for thing in LIGHT:
        row = record.devices[thing]
        assert row["stage"] == "rollback" and row["state"] == "PROVEN", row
        assert row["package_sha256"] == previous_sha, row
        after = {n: v for n, (v, _s) in installed_components(settings, thing).items()}
        assert after == before[thing], thing
    assert group_members(settings, GROUP) == [CANARY, FLEET]
    assert group_members(settings, record.canary_group) == []

    # What the user reads: the command's summary, the report and `rollout status`.
    headline = f"rollout {record.id}: ROLLED_BACK (gate defect_rate_delta: candidate 1.000"
    assert out.startswith(headline), out  # the gate's name once, then its numbers
    data = json.loads(report.read_text())
    assert data["status"] == "ROLLED_BACK" and data["gate"] == "defect_rate_delta"
    assert [s["name"] for s in data["stages"]] == ["canary", "fleet", "rollback"]
    fleet_gates = {g["name"]: g for g in data["stages"][1]["gates"]}
    assert fleet_gates["defect_rate_delta"]["verdict"] == "FAIL"
    assert fleet_gates["defect_rate_delta"]["value"] == 1.0
    for thing in LIGHT:
        assert data["devices"][thing]["package_sha256"] == previous_sha
        assert data["devices"][thing]["state"] == "PROVEN"
    assert main(["rollout", "status", "--backend", "local", record.id]) == 0
    status = capsys.readouterr().out
    assert status.startswith(headline), status
    assert "stage fleet    FAILED" in status and "stage rollback PASSED" in status
    # Running the same rollout again reports the finished one: exit 3 again, nothing deployed.
    assert main(argv) == 3
    assert load_record(settings).finished_at == record.finished_at
