"""edgekit.local.device.artifacts: archives unpacked safely, with permissions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from edgekit.local.device.artifacts import archive_folder_name, prepare_artifacts, safe_unzip
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.recipe import (
    Artifact,
    resolve_recipe,
)


def _recipe(name: str, version: str, deps: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            d: {"VersionRequirement": r, "DependencyType": "HARD"} for d, r in (deps or {}).items()
        },
        "Manifests": [{"Lifecycle": {}}],
    }


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ART = Artifact("s3://b/models.zip", "ZIP", None, None, "ALL", "OWNER")


def test_safe_unzip_unpacks_with_permissions(tmp_path: Path) -> None:
    archive = tmp_path / "models.zip"
    archive.write_bytes(_zip({"m/a.txt": b"a", "run.sh": b"echo"}))
    recipe = resolve_recipe(_recipe("c", "1.0.0"), {"os": "linux"})
    dest = tmp_path / "out" / archive_folder_name("models.zip")
    safe_unzip(archive, dest, ART, recipe)
    assert (dest / "m" / "a.txt").read_text() == "a"
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o744


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/path.txt", "a/../../x"])
def test_safe_unzip_refuses_paths_outside(tmp_path: Path, evil: str) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({evil: b"x"}))
    recipe = resolve_recipe(_recipe("c", "1.0.0"), {"os": "linux"})
    with pytest.raises(DeploymentFailure, match="outside the unpack folder"):
        safe_unzip(archive, tmp_path / "out" / "evil", ART, recipe)
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "docker:123456789012.dkr.ecr.us-east-1.amazonaws.com/inspection:latest",
        "docker:mcr.microsoft.com/hello-world",
        "DOCKER:alpine@sha256:" + "0" * 64,
    ],
)
def test_docker_image_artifacts_fail_before_any_download(tmp_path: Path, uri: str) -> None:
    from edgekit.local.device.artifacts import prepare_artifacts

    raw = _recipe("com.example.Docker", "1.0.0")
    raw["Manifests"][0]["Artifacts"] = [{"URI": "s3://b/app.py"}, {"URI": uri}]
    recipe = resolve_recipe(raw, {"os": "linux"})

    def url_for(*_: Any) -> str:
        raise AssertionError("a recipe with a Docker image must not download anything")

    with pytest.raises(DeploymentFailure) as caught:
        prepare_artifacts(recipe, tmp_path / "a", tmp_path / "u", url_for)
    message = str(caught.value)
    assert "com.example.Docker 1.0.0" in message and uri in message
    assert "does not pull Docker images" in message and "docs/compatibility.md" in message
    assert caught.value.error_stack == [
        "DEPLOYMENT_FAILURE",
        "ARTIFACT_DOWNLOAD_ERROR",
        "DOCKER_ERROR",
    ]
    assert not (tmp_path / "a").exists()


def test_decompressed_path_exists_without_a_zip_artifact(tmp_path: Path) -> None:
    """The nucleus creates {artifacts:decompressedPath} whenever it resolves (issue 13 gap 5)."""
    recipe = resolve_recipe(_recipe("c", "1.0.0"), {"os": "linux"})
    unarchived = tmp_path / "artifacts-unarchived" / "c" / "1.0.0"
    prepare_artifacts(recipe, tmp_path / "artifacts" / "c" / "1.0.0", unarchived, _no_download)
    assert unarchived.is_dir()


def _no_download(recipe: Any, art: Any) -> str:
    raise AssertionError("nothing to download")
