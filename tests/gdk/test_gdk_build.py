"""`edgekit components build --gdk` without GDK: reading gdk-config.json, the backend rule,
and the refusals (no archive, no servers needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.components.gdk import (
    GDK_ARTIFACT_PREFIX,
    LOCAL_ENDPOINT_ENV,
    build_gdk_project,
    gdk_backend,
    read_gdk_config,
)
from edgekit.components.templates import TEMPLATE_DIRS
from edgekit.deploy import resolve_versions
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def config(name: str = "com.qualityinspection.model", **publish: str) -> dict:
    return {
        "component": {
            name: {
                "author": "edgekit",
                "version": "NEXT_PATCH",
                "build": {"build_system": "custom", "custom_build_command": ["true"]},
                "publish": {"bucket": "b", "region": "us-east-1", **publish},
            }
        },
        "gdk_version": "1.0.0",
    }


def test_our_components_are_gdk_projects_built_by_edgekit() -> None:
    settings = Settings()
    names = {settings.model_component, settings.agent_component, settings.inference_component}
    for folder in TEMPLATE_DIRS.values():
        path = REPO / "component" / folder
        project = read_gdk_config(path)
        assert project.name == folder and project.name in names
        assert project.version == "NEXT_PATCH" and project.bucket and project.region
        build = json.loads((path / "gdk-config.json").read_text())["component"][folder]["build"]
        assert build == {
            "build_system": "custom",
            "custom_build_command": ["edgekit", "components", "build", "--gdk"],
        }
        assert project.publish_bucket("123") == f"{project.bucket}-{project.region}-123"
        assert project.artifacts_dir == path / "greengrass-build/artifacts" / folder / "NEXT_PATCH"
    assert GDK_ARTIFACT_PREFIX == "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "gdk-config.json: not found"),
        ("{not json", "not JSON"),
        ({"component": {}}, "exactly one component"),
        ({"component": {"a": {}, "b": {}}}, "exactly one component"),
        ({"component": {"a": {"version": "1.0.0", "author": "x"}}}, "component.a.publish"),
        (config(region=""), "component.com.qualityinspection.model.publish.region"),
    ],
)
def test_bad_gdk_config_names_file_and_field(
    tmp_path: Path, document: object, message: str
) -> None:
    if document is not None:
        text = document if isinstance(document, str) else json.dumps(document)
        (tmp_path / "gdk-config.json").write_text(text)
    with pytest.raises(ConfigurationError, match=message) as info:
        read_gdk_config(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({}, "aws"),
        ({LOCAL_ENDPOINT_ENV: "http://127.0.0.1:1"}, "local"),
        ({LOCAL_ENDPOINT_ENV: "http://127.0.0.1:1", "EDGEKIT_BACKEND": "aws"}, "aws"),
        ({"EDGEKIT_BACKEND": "local"}, "local"),
    ],
)
def test_backend_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], backend: str
) -> None:
    monkeypatch.delenv("EDGEKIT_BACKEND", raising=False)
    monkeypatch.delenv(LOCAL_ENDPOINT_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert gdk_backend() == backend


def test_refuses_a_component_that_is_not_edgekits(tmp_path: Path) -> None:
    (tmp_path / "gdk-config.json").write_text(json.dumps(config("com.example.Other")))
    (tmp_path / "recipe.yaml").write_text("RecipeFormatVersion: '2020-01-25'\n")
    with pytest.raises(ConfigurationError, match="com.example.Other.*not one of edgekit's"):
        build_gdk_project(tmp_path)


def test_refuses_a_project_without_one_recipe(tmp_path: Path) -> None:
    (tmp_path / "gdk-config.json").write_text(json.dumps(config()))
    with pytest.raises(ConfigurationError, match="exactly one recipe file"):
        build_gdk_project(tmp_path)


def test_cli_build_reports_the_missing_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["components", "build", "--gdk", "--project", str(tmp_path)]) == 1
    assert "gdk-config.json: not found" in capsys.readouterr().err


class Registry:
    """ListComponentVersions over ``{name: [version, ...]}`` (newest first, like the service)."""

    def __init__(self, versions: dict[str, list[str]]) -> None:
        self.versions = versions

    def can_paginate(self, operation: str) -> bool:
        return False

    def list_component_versions(self, *, arn: str) -> dict:
        name = arn.rsplit(":components:", 1)[1]
        return {"componentVersions": [{"componentVersion": v} for v in self.versions.get(name, [])]}


def test_deploy_takes_the_newest_version_whoever_published_it() -> None:
    """GDK's NEXT_PATCH versions sit in the same registry: deploy picks the newest."""
    settings = Settings()
    registry = Registry(
        {
            settings.model_component: ["1.0.1", "1.0.0"],  # 1.0.1 from gdk component publish
            settings.agent_component: ["1.0.0"],
            settings.inference_component: ["1.0.0"],
        }
    )
    versions = resolve_versions(settings, registry, "123456789012", None)
    assert versions[settings.model_component] == "1.0.1"


def test_deploy_names_gdk_when_a_component_is_not_published() -> None:
    settings = Settings()
    registry = Registry({settings.model_component: ["1.0.0"]})
    with pytest.raises(ConfigurationError, match="gdk component publish") as info:
        resolve_versions(settings, registry, "123456789012", None)
    assert f"component/{settings.agent_component}" in str(info.value)
