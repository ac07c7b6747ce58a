"""edgekit.notebook: the glue notebooks 03 and 04 share.

Unit tests use real objects (DeploymentResult, ResultsTable, packages, figures) and
no servers. The integration tests run the local endpoints in a throwaway home; the
slow one deploys to a real local device, the path notebook 04 takes when notebook 03
has not run, and breaks a deployment on purpose to see the rollback explained.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from edgekit import notebook as nb
from edgekit.deploy import DeploymentResult, DeviceDeploymentError, DeviceStatus
from edgekit.errors import ConfigurationError, DataError
from edgekit.results import ResultsTable
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
AWS = Settings(backend="aws", region="eu-west-1")
MODEL, AGENT, APP = SETTINGS.model_component, SETTINGS.agent_component, SETTINGS.inference_component


def result_message(
    thing: str, image: str, second: int, *, defect: bool, total: float = 10.0
) -> dict:
    detections = (
        [{"class_id": 0, "label": "scratch", "score": 0.8, "box": [10, 20, 30, 40]}]
        if defect
        else []
    )
    return {
        "timestamp": f"2026-01-01T00:00:{second:02d}.000Z",
        "thing_name": thing,
        "image_name": image,
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "detections": detections,
        "defect": defect,
        "latency_ms": {"preprocess": 1.0, "inference": total - 1.0, "total": total},
    }


# --------------------------------------------------------------------------------------
# Hand-over files


def test_handover_round_trip_and_missing(tmp_path: Path) -> None:
    assert nb.read_handover(tmp_path, nb.DEPLOYMENT) is None
    path = nb.write_handover(tmp_path / "run", nb.DEPLOYMENT, {"status": "SUCCEEDED", "n": 2})
    assert path == tmp_path / "run" / "deployment.json"
    assert nb.read_handover(tmp_path / "run", nb.DEPLOYMENT) == {"status": "SUCCEEDED", "n": 2}
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_handover_that_is_not_an_object_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / nb.PROVISIONED).write_text(text)
    with pytest.raises(DataError, match="provisioned.json"):
        nb.read_handover(tmp_path, nb.PROVISIONED)


def test_stack_name_comes_from_provisioned_json_of_the_same_backend(tmp_path: Path) -> None:
    assert nb.stack_name_for(SETTINGS, tmp_path) == "edgekit-device"
    nb.write_handover(tmp_path, nb.PROVISIONED, {"backend": "local", "stack_name": "line-a"})
    assert nb.stack_name_for(SETTINGS, tmp_path) == "line-a"
    assert nb.stack_name_for(AWS, tmp_path) == "edgekit-device"  # another backend's stack


# --------------------------------------------------------------------------------------
# Model package


def test_model_package_from_notebook_02(tmp_path: Path) -> None:
    package, key = tmp_path / "m.tar.gz", tmp_path / "keys" / "public_key.pem"
    key.parent.mkdir()
    package.write_bytes(b"package")
    key.write_text("key")
    nb.write_handover(tmp_path, nb.MODEL_PACKAGE, {"package": str(package), "public_key": str(key)})
    found = nb.find_model_package(SETTINGS, tmp_path)
    assert (found.path, found.public_key, found.key_dir) == (package, key, key.parent)
    assert "notebook 02" in found.source
    assert found.sha256() == nb.file_sha256(package)


def test_model_package_falls_back_to_the_shipped_model(tmp_path: Path) -> None:
    from edgekit.package import verify_package

    settings = Settings(local_home=tmp_path / "home")
    nb.write_handover(
        tmp_path, nb.MODEL_PACKAGE, {"package": str(tmp_path / "gone.tar.gz"), "public_key": ""}
    )
    found = nb.find_model_package(settings, tmp_path)
    assert "shipped with edgekit" in found.source and "gone.tar.gz" in found.source
    assert found.path.is_relative_to(tmp_path / "components")
    assert found.public_key == (tmp_path / "home" / "keys" / "public_key.pem").resolve()
    manifest = verify_package(found.path, found.public_key)
    assert (manifest.name, manifest.version) == (settings.model_name, "1.0.0")


# --------------------------------------------------------------------------------------
# Deployment status and failures


def deployment_result() -> DeploymentResult:
    result = DeploymentResult("dep-1", "arn:aws:iot:r:1:thinggroup/g", {MODEL: "1.0.2"})
    result.devices = [
        DeviceStatus(
            "core-1",
            "SUCCEEDED",
            components={MODEL: ("1.0.2", "FINISHED"), AGENT: ("1.0.2", "RUNNING")},
        ),
        DeviceStatus("core-2", "FAILED", reason="agent broke"),
    ]
    return result


def test_deployment_rows_show_version_and_state_per_component() -> None:
    rows = nb.deployment_rows(SETTINGS, deployment_result())
    assert rows[0] == {
        "thing": "core-1",
        "status": "SUCCEEDED",
        MODEL: "1.0.2 FINISHED",
        AGENT: "1.0.2 RUNNING",
        APP: "- MISSING",
    }
    assert rows[1]["status"] == "FAILED"
    headers = [h for _, h in nb.deployment_columns(SETTINGS)]
    assert headers[:2] == ["thing", "deployment"] and f"agent ({AGENT})" in headers


def test_deployment_record_is_json_and_keeps_the_failure() -> None:
    from edgekit.registry import ModelVersion

    version = ModelVersion("arn:v1", "tag-scratch-detector", 1, "Approved", None, semver="1.0.0")
    failure = nb.Failure("core-2", "FAILED", "agent broke", AGENT, "the log", "tail", [{"a": "b"}])
    record = nb.deployment_record(
        SETTINGS,
        deployment_result(),
        thing_group="g",
        model=version,
        configuration=nb.inference_configuration(SETTINGS),
        failure=failure,
    )
    assert json.loads(json.dumps(record)) == record
    assert record["status"] == "FAILED" and record["failure"]["component"] == AGENT
    assert record["model"]["version"] == 1
    assert record["devices"][0]["components"][MODEL] == {"version": "1.0.2", "state": "FINISHED"}
    assert record["configuration"][APP] == {"InferenceInterval": 0.2, "ScoreThreshold": None}


@pytest.mark.parametrize(
    ("reason", "component"),
    [
        (f"component {AGENT} 1.0.1 is BROKEN: run script exited", AGENT),
        (f"component {APP} 1.0.1 is BROKEN", APP),
        (f"{MODEL}: artifact digest mismatch", MODEL),
        (f"last lines of /root/logs/{APP}.log:", APP),
        (f"last lines of /root/logs/{AGENT}.log:", AGENT),
        (f"{APP}.", APP),
        ("the device ran out of disk", None),
    ],
)
def test_failing_component_is_the_longest_name_in_the_reason(reason: str, component: str) -> None:
    assert nb.failing_component(SETTINGS, reason) == component


def test_log_location_per_backend() -> None:
    local = nb.log_location(SETTINGS, "core-1", AGENT)
    assert f"`edgekit local device logs core-1 {AGENT}`" in local
    assert nb.log_location(SETTINGS, "core-1", None).startswith(
        "`edgekit local device logs core-1`"
    )
    aws = nb.log_location(AWS, "core-1", AGENT)
    assert f"/greengrass/v2/logs/{AGENT}.log" in aws
    assert f"/aws/greengrass/UserComponent/eu-west-1/{AGENT}" in aws
    assert "/thing/core-1" in aws
    assert nb.log_tail(AWS, "core-1", AGENT) == ""


def test_failure_summary_drops_embedded_log_lines_and_keeps_the_rollback() -> None:
    reason = (
        f"component {AGENT} 1.0.1 is BROKEN: exited 1 (3 errors); last lines of /x/{AGENT}.log:\n"
        "line one\nline two\n... state BROKEN (3 errors); rolled back to the previous components"
    )
    failure = nb.Failure("core-1", "FAILED", reason, AGENT, "", "")
    assert failure.summary == (
        f"component {AGENT} 1.0.1 is BROKEN: exited 1 (3 errors); "
        "rolled back to the previous components"
    )
    assert nb.Failure("t", "FAILED", "", None, "", "").summary == "no reason given"


def test_inference_configuration_checks_its_values() -> None:
    assert nb.inference_configuration(SETTINGS, inference_interval=1, score_threshold=0.5) == {
        APP: {"InferenceInterval": 1.0, "ScoreThreshold": 0.5}
    }
    with pytest.raises(ConfigurationError, match="score_threshold"):
        nb.inference_configuration(SETTINGS, score_threshold=1.5)
    with pytest.raises(ConfigurationError, match="inference_interval"):
        nb.inference_configuration(SETTINGS, inference_interval=-1)


# --------------------------------------------------------------------------------------
# Results, images, figures


def test_pick_examples_mixes_defects_and_clean_images_newest_first() -> None:
    results = [result_message("a", f"tag-{i % 6}.jpg", i, defect=i % 6 < 4) for i in range(18)]
    picked = nb.pick_examples(results, 4)
    names = [r["image_name"] for r in picked]
    assert len(set(names)) == 4 and names == sorted(names)
    assert sum(r["defect"] for r in picked) == 2  # alternating while both kinds last
    assert all(r["timestamp"] >= "2026-01-01T00:00:12" for r in picked)  # the newest round
    assert len(nb.pick_examples(results, 50)) == 6
    assert nb.pick_examples([], 4) == []


def test_time_bin_seconds_spreads_the_span() -> None:
    results = [result_message("a", "x.jpg", s, defect=False) for s in range(0, 49, 4)]
    assert nb.time_bin_seconds(results, bins=12) == 4.0
    assert nb.time_bin_seconds(results[:1]) == 60.0
    assert nb.time_bin_seconds(results[:2], bins=12) == 1.0


def test_summary_rows_and_check_results() -> None:
    table = ResultsTable(
        [result_message("core-10", "a.jpg", 1, defect=True)]
        + [result_message("core-2", f"{i}.jpg", i, defect=i == 0) for i in range(4)]
    )
    rows = nb.summary_rows(table)
    assert [r["thing_name"] for r in rows] == ["core-2", "core-10"]
    assert rows[0]["defect_rate"] == "25 %" and rows[1]["defect_rate"] == "100 %"
    assert rows[0]["model_versions"] == "tag-scratch-detector@1.0.0"
    nb.check_results(SETTINGS, table, things=["core-2"], timeout=5)
    with pytest.raises(nb.NoResultsError, match=f"no result on topic .* {APP}"):
        nb.check_results(SETTINGS, ResultsTable(), things=["core-2"], timeout=5)


def test_regenerated_sample_images_are_the_components_images(tmp_path: Path) -> None:
    from edgekit.components.artifacts import sample_images_zip

    folder = nb.regenerate_sample_images(tmp_path)
    with zipfile.ZipFile(sample_images_zip(tmp_path / "zip")) as zf:
        shipped = {name: zf.read(name) for name in zf.namelist()}
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == shipped
    assert not (tmp_path / ".sample-images-build").exists()
    assert nb.regenerate_sample_images(tmp_path) == folder  # found, not made again


def test_find_image_dir_prefers_the_parameter(tmp_path: Path) -> None:
    assert nb.find_image_dir(AWS, tmp_path, image_dir=tmp_path) == (tmp_path, "image_dir parameter")
    with pytest.raises(ConfigurationError, match="image_dir="):
        nb.find_image_dir(AWS, tmp_path, image_dir=tmp_path / "nope")
    folder, how = nb.find_image_dir(AWS, tmp_path)  # aws: no device folder to read
    assert folder == tmp_path / "sample-images" and "regenerated" in how


def test_save_figure_only_with_a_folder(tmp_path: Path) -> None:
    from edgekit.viz import latency_histogram

    figure = latency_histogram([result_message("a", "x.jpg", 1, defect=False)])
    assert nb.save_figure(figure, None, "latency") is None
    path = nb.save_figure(figure, tmp_path / "figures", "latency")
    assert path == tmp_path / "figures" / "latency.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_version_rows_mark_the_deployed_version() -> None:
    from edgekit.registry import ModelVersion

    versions = [
        ModelVersion("arn:2", "g", 2, "PendingManualApproval", None, semver="1.1.0"),
        ModelVersion("arn:1", "g", 1, "Approved", None, semver="1.0.0", sha256="ab" * 32),
    ]
    rows = nb.version_rows(versions, current=1)
    assert [r["deploy"] for r in rows] == ["", "◀ deploying"]
    assert rows[1]["sha256"] == "ab" * 6


# --------------------------------------------------------------------------------------
# Against the local endpoints


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    from edgekit.local import endpoints

    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        # A project name of its own: thing names (and the agent sockets named after
        # them) must not meet the devices of another home running at the same time.
        yield Settings(local_home=home, project_name="nbhelpers")
    finally:
        endpoints.down(home)


def signed_package(settings: Settings, out: Path, *, seed: int) -> nb.PackageRef:
    from edgekit.compile.testing import build_tiny_model
    from edgekit.components.build import signing_keys
    from edgekit.package import build_package

    private, public = signing_keys(None, settings)
    folder = out / f"seed-{seed}"
    model = build_tiny_model(folder / "tiny.onnx", seed=seed)
    # Same file name, name and version every time: only the bytes differ.
    built = build_package(
        model, name=settings.model_name, version="2.0.0", key=private, out=folder / "m.tar.gz"
    )
    return nb.PackageRef(built.path, public, "test")


@pytest.mark.integration
def test_register_once_and_never_overwrite_another_versions_package(
    local: Settings, tmp_path: Path
) -> None:
    from edgekit.registry import download_package, list_versions

    group = "nbhelpers-registry"
    first = signed_package(local, tmp_path, seed=1)
    made = nb.ensure_registered(local, group, first)
    again = nb.ensure_registered(local, group, first)
    assert made.created and not again.created
    assert again.version.arn == made.version.arn and made.version.approval_status == "Approved"

    # Same name and semver, other bytes: a new version, and the first one's object survives.
    second = signed_package(local, tmp_path, seed=2)
    other = nb.ensure_registered(local, group, second, approval_status="PendingManualApproval")
    assert other.created and other.package_s3_uri != made.package_s3_uri
    assert second.sha256()[:12] in str(other.package_s3_uri)
    assert [v.version for v in list_versions(group, local)] == [2, 1]
    for version, package in ((made.version, first), (other.version, second)):
        fetched = download_package(version, tmp_path / f"dl-{version.version}", local)
        assert nb.file_sha256(fetched) == package.sha256()


@pytest.mark.integration
@pytest.mark.slow
def test_deploy_latest_approved_then_find_it_then_explain_a_rollback(
    local: Settings, tmp_path: Path
) -> None:
    """Notebook 04 without notebook 03: deploy with 03's defaults; then a broken deployment."""
    from edgekit.deploy import deploy

    out = tmp_path / "run"
    assert nb.find_deployment(local, out) is None
    deployed = nb.deploy_latest_approved(local, out, device_count=1, progress=False, timeout=120)
    assert deployed.deployed_now and deployed.things == ("nbhelpers-core-1",)
    record = nb.read_handover(out, nb.DEPLOYMENT)
    assert record is not None and record["status"] == "SUCCEEDED"
    assert record["model"]["approval_status"] == "Approved"

    found = nb.find_deployment(local, out)
    assert found is not None and found.things == deployed.things and found.record == record
    images = nb.device_image_dir(local, found.things)
    assert images is not None and len(list(images.glob("tag-*.jpg"))) == 12

    with pytest.raises(DeviceDeploymentError) as info:
        deploy(
            local,
            thing_group=deployed.thing_group,
            configuration={local.agent_component: {"PublicKey": "not a key"}},
            timeout=120,
        )
    failure = nb.explain_failure(local, info.value)
    assert failure.thing == "nbhelpers-core-1" and failure.component == local.agent_component
    assert "rolled back" in failure.summary and "\n" not in failure.summary
    assert "public key" in failure.log_tail
    (after,) = failure.after_rollback
    assert after["status"] == "FAILED"
    assert after[local.inference_component].endswith("RUNNING")  # the previous set runs again
