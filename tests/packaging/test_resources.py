"""The files that install with edgekit (edgekit.resources) and the name it is installed as."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from edgekit import resources
from edgekit.cli import main
from edgekit.components.templates import RECIPE_FILES, TEMPLATE_DIRS
from edgekit.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DISTRIBUTION = "edgekit-inspection"


def test_resources_are_symlinks_to_the_top_level_folders() -> None:
    """The top-level folders stay the source of truth; edgekit/_resources only points at them."""
    root = REPO / "edgekit" / "_resources"
    for name in (resources.COMPONENTS, resources.CLOUDFORMATION, resources.NOTEBOOKS):
        link = root / name
        assert link.is_symlink(), f"{link} must be a symlink to ../../{name}"
        assert link.readlink() == Path("..", "..", name)  # relative: works in any clone
        assert link.resolve() == (REPO / name).resolve()


def test_lookup_goes_through_the_installed_package() -> None:
    import edgekit

    package = Path(edgekit.__file__).parent
    assert resources.resource_root() == package / "_resources"
    # symlinks resolved: in a checkout (editable install) the top-level folders themselves
    checkout = package.resolve().parent
    assert resources.components_dir() == (package / "_resources" / "component").resolve()
    assert resources.components_dir() == checkout / "component"
    assert resources.notebooks_dir() == checkout / "notebooks"
    template = resources.cloudformation_template()
    assert template == checkout / "cloudformation" / "greengrass-device.yaml"


def test_the_six_notebooks_are_all_the_notebooks() -> None:
    shipped = [path.name for path in resources.notebook_paths()]
    assert shipped == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert [name[:2] for name in shipped] == ["01", "02", "03", "04", "05", "99"]


def test_missing_resource_names_the_file_and_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.yaml: missing .*pip install"):
        resources.resource_path("cloudformation", "nope.yaml")
    path = resources.resource_path("cloudformation", "nope.yaml", must_exist=False)
    assert path.name == "nope.yaml"


def _package_data_patterns() -> list[tuple[str, str]]:
    """(package folder relative to the repo, glob) for every package-data entry."""
    out = []
    for package, globs in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        folder = "edgekit" if package in ("*", "edgekit") else package.replace(".", "/")
        out += [(folder, pattern) for pattern in globs]
    return out


def _shipped(relative: str) -> bool:
    """Whether the build puts edgekit/<relative> into the wheel (a module or package data)."""
    path = f"edgekit/{relative}"
    folder, name = path.rsplit("/", 1)
    if name.endswith(".py") and "." not in folder.rsplit("/", 1)[-1]:
        return True  # a module of a (namespace) package: packages.find includes "edgekit*"
    for base, pattern in _package_data_patterns():
        # "*" patterns apply to every package folder: match the file name in its own folder
        in_a_package = "." not in folder.rsplit("/", 1)[-1]
        if base == "edgekit" and in_a_package and fnmatch.fnmatch(name, pattern):
            return True
        if path.startswith(base + "/") and fnmatch.fnmatch(path[len(base) + 1 :], pattern):
            return True
    return False


@pytest.mark.parametrize(
    "relative",
    [f"_resources/component/{folder}/recipe.yaml" for folder in TEMPLATE_DIRS.values()]
    + ["_resources/component/shared/install_env.py"]
    + ["_resources/cloudformation/greengrass-device.yaml"]
    + [f"_resources/notebooks/{name}" for name in resources.NOTEBOOK_FILES],
)
def test_package_data_covers_every_resource_the_code_reads(relative: str) -> None:
    assert (REPO / "edgekit" / relative).is_file()
    assert _shipped(relative), f"pyproject.toml package-data does not ship edgekit/{relative}"


def test_recipe_file_names_are_all_shipped() -> None:
    for name in RECIPE_FILES:
        assert _shipped(f"_resources/component/com.qualityinspection/{name}"), name


def test_distribution_name_and_command() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"edgekit": "edgekit.cli:main"}


# An install hint that names the distribution `edgekit` (someone else's project on the index).
WRONG_HINT = re.compile(r"""pip install\s+(-U\s+)?["']?edgekit(?![\w-])""")


def _hint_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "environment.yml", REPO / "Makefile"]
    files += [p for p in (REPO / "edgekit").rglob("*.py") if "_resources" not in p.parts]
    return files


def test_no_install_hint_sends_users_to_the_other_edgekit() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _hint_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if WRONG_HINT.search(line)
    ]
    assert not wrong, "install hints must name " + DISTRIBUTION + ":\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("line", "wrong"),
    [
        ("pip install 'edgekit[aws]'", True),
        ("pip install edgekit[train]", True),
        ('pip install "edgekit"', True),
        ("pip install edgekit", True),
        ("pip install 'edgekit-inspection[aws]'", False),
        ("pip install -e '.[dev]'", False),
        ("pip install edgekit_inspection-0.1.0-py3-none-any.whl", False),
    ],
)
def test_wrong_hint_pattern(line: str, wrong: bool) -> None:
    assert bool(WRONG_HINT.search(line)) is wrong


def test_no_module_walks_up_from_its_file_to_a_checkout() -> None:
    """Resources come from edgekit.resources; nothing climbs out of the package folder."""
    climbing = re.compile(r"__file__.*(\.parents\[\d+\]|\.parent\.parent)")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in (REPO / "edgekit").rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if climbing.search(line)
    ]
    assert not offenders, offenders


# ---------------------------------------------------------------- edgekit notebooks DIR


def test_write_notebooks_writes_the_six(tmp_path: Path) -> None:
    written = resources.write_notebooks(tmp_path / "nb")
    assert [w.status for w in written] == ["written"] * 6
    for item, source in zip(written, resources.notebook_paths(), strict=True):
        assert item.path == tmp_path / "nb" / source.name
        assert item.path.read_bytes() == source.read_bytes()
    again = resources.write_notebooks(tmp_path / "nb")
    assert [w.status for w in again] == ["unchanged"] * 6


def test_changed_notebook_is_kept_unless_forced(tmp_path: Path) -> None:
    resources.write_notebooks(tmp_path)
    edited = tmp_path / "03_deploy_components.ipynb"
    edited.write_text("{}")
    (tmp_path / "01_provision_device.ipynb").unlink()
    with pytest.raises(ConfigurationError, match=r"03_deploy_components\.ipynb.*--force"):
        resources.write_notebooks(tmp_path)
    # nothing at all was written: the missing one is still missing, the edit is kept
    assert not (tmp_path / "01_provision_device.ipynb").exists()
    assert edited.read_text() == "{}"
    statuses = {w.path.name: w.status for w in resources.write_notebooks(tmp_path, force=True)}
    assert statuses["03_deploy_components.ipynb"] == "replaced"
    assert statuses["01_provision_device.ipynb"] == "written"
    assert statuses["02_compile_and_package.ipynb"] == "unchanged"
    assert edited.read_bytes() == (resources.notebooks_dir() / edited.name).read_bytes()


def test_notebooks_into_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ConfigurationError, match=r"file\.txt: not a folder"):
        resources.write_notebooks(target)


def test_cli_says_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    out = capsys.readouterr().out
    for name in resources.NOTEBOOK_FILES:
        assert f"written   {tmp_path / 'nb' / name}" in out
    (tmp_path / "nb" / "99_cleanup.ipynb").write_text("{}")
    assert main(["notebooks", str(tmp_path / "nb")]) == 1
    err = capsys.readouterr().err
    assert "edgekit notebooks: error:" in err and "99_cleanup.ipynb" in err and "--force" in err
    assert main(["notebooks", "--force", str(tmp_path / "nb")]) == 0
    assert f"replaced  {tmp_path / 'nb' / '99_cleanup.ipynb'}" in capsys.readouterr().out


def test_device_wheel_leaves_the_resources_out(tmp_path: Path) -> None:
    """A wheel install has real copies under _resources/; the device's wheel does not need them."""
    from edgekit.components.artifacts import package_files

    package = tmp_path / "edgekit"
    (package / "_resources" / "cloudformation").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_resources" / "cloudformation" / "greengrass-device.yaml").write_text("{}")
    assert list(package_files(package)) == ["edgekit/__init__.py"]
