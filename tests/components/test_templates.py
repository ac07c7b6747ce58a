"""Where the component templates come from (edgekit.components.templates)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit import resources
from edgekit.components.templates import (
    COMPONENTS_DIR_ENV,
    ROLES,
    TEMPLATE_DIRS,
    Template,
    components_dir,
    shared_file,
    template_path,
)
from edgekit.errors import ConfigurationError, RecipeError


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMPONENTS_DIR_ENV, raising=False)


def test_default_is_the_templates_installed_with_edgekit() -> None:
    assert components_dir() == resources.components_dir()
    for role in ROLES:
        assert template_path(role) == resources.components_dir() / TEMPLATE_DIRS[role] / (
            "recipe.yaml"
        )
    assert shared_file("install_env.py").parent == resources.components_dir() / "shared"


def test_override_folder_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "templates"
    shutil.copytree(resources.components_dir(), mine)
    monkeypatch.setenv(COMPONENTS_DIR_ENV, str(mine))
    assert components_dir() == mine
    assert Template.load("agent").path == mine / TEMPLATE_DIRS["agent"] / "recipe.yaml"


def test_override_that_is_not_a_folder_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(COMPONENTS_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match=rf"absent: .*{COMPONENTS_DIR_ENV}.*unset it"):
        components_dir()


def test_folder_without_a_recipe_names_the_file_names(tmp_path: Path) -> None:
    (tmp_path / TEMPLATE_DIRS["model"]).mkdir()
    with pytest.raises(ConfigurationError, match=r"no recipe template \(recipe\.yaml or "):
        template_path("model", tmp_path)


def test_missing_shared_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"shared/install_env\.py: missing"):
        shared_file("install_env.py", tmp_path)


def test_render_fills_placeholders_and_names_a_missing_one() -> None:
    template = Template.load("model")
    names = template.placeholders()
    assert names, "the model template has placeholders"
    filled = template.render(dict.fromkeys(names, "x"))
    assert "@@" not in repr(filled)
    missing = sorted(names)[0]
    with pytest.raises(RecipeError, match=rf"placeholder @@{missing}@@ has no value"):
        template.render({k: "x" for k in names if k != missing})
