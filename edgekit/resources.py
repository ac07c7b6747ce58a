"""The files that install with edgekit: component templates, the CloudFormation template, notebooks.

Owns: where those files are found, and writing the notebooks into a folder for JupyterLab.
Must not import anything from edgekit except ``errors`` and ``files`` (any layer may use it).

The top-level folders ``component/``, ``cloudformation/`` and ``notebooks/`` of the repository
are the source of truth. ``edgekit/_resources/`` holds relative symlinks to them: an editable
install (``pip install -e .``) reads them in place, and setuptools copies their targets into the
sdist and the wheel (``[tool.setuptools.package-data]`` in pyproject.toml lists the files). This
module is the one place that finds them, through :mod:`importlib.resources`; no code walks up
from a source file to a checkout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgekit.errors import ConfigurationError
from edgekit.files import write_bytes_atomic

PACKAGE = "edgekit"
FOLDER = "_resources"
COMPONENTS = "component"
CLOUDFORMATION = "cloudformation"
NOTEBOOKS = "notebooks"
CLOUDFORMATION_TEMPLATE = "greengrass-device.yaml"
#: The notebooks that ship with edgekit, in the order a workshop runs them.
NOTEBOOK_FILES: tuple[str, ...] = (
    "01_provision_device.ipynb",
    "02_compile_and_package.ipynb",
    "03_deploy_components.ipynb",
    "04_visualize_results.ipynb",
    "05_rollout.ipynb",
    "99_cleanup.ipynb",
)
_REINSTALL = (
    "reinstall edgekit (pip install edgekit-inspection) or, in a checkout, `pip install -e .`"
)


def resource_root() -> Path:
    """``edgekit/_resources`` of the installed package, as a folder on disk."""
    root = resources.files(PACKAGE) / FOLDER
    if not isinstance(root, Path):
        # A zip import: the files have no path of their own that boto3 or papermill could read.
        raise ConfigurationError(
            f"{root}: edgekit's packaged files are not on the file system (zipped install); "
            f"{_REINSTALL} into a folder"
        )
    return root


def resource_path(*parts: str, must_exist: bool = True) -> Path:
    """``edgekit/_resources/<parts...>``, symlinks resolved (in a checkout: the top-level
    folder's file); ConfigurationError naming it when it is missing."""
    path = resource_root().joinpath(*parts).resolve()
    if must_exist and not path.exists():
        raise ConfigurationError(
            f"{path}: missing from the installed edgekit package (broken install?); {_REINSTALL}"
        )
    return path


def components_dir() -> Path:
    """The Greengrass component templates (``component/`` of the repository)."""
    return resource_path(COMPONENTS)


def cloudformation_template(*, must_exist: bool = True) -> Path:
    """The device stack's template (``cloudformation/greengrass-device.yaml``)."""
    return resource_path(CLOUDFORMATION, CLOUDFORMATION_TEMPLATE, must_exist=must_exist)


def notebooks_dir() -> Path:
    """The notebooks folder (``notebooks/`` of the repository)."""
    return resource_path(NOTEBOOKS)


def notebook_paths() -> list[Path]:
    """The five notebooks that ship with edgekit, in order."""
    return [resource_path(NOTEBOOKS, name) for name in NOTEBOOK_FILES]


@dataclass(frozen=True)
class WrittenNotebook:
    """One notebook of :func:`write_notebooks`: where it went and what happened to it."""

    path: Path
    status: str  # "written" (new), "replaced" (differed, --force) or "unchanged"


def write_notebooks(dest: str | os.PathLike[str], *, force: bool = False) -> list[WrittenNotebook]:
    """Copy the five notebooks into ``dest`` (created if needed) for JupyterLab.

    A file that already exists with the same content is left alone. One that differs (you
    edited or ran it) is replaced only with ``force``; otherwise nothing at all is written and
    ConfigurationError names the changed files.
    """
    target = Path(dest).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigurationError(f"{target}: not a folder; give a folder for the notebooks")
    plan: list[tuple[Path, bytes, str]] = []
    for source in notebook_paths():
        data = source.read_bytes()
        out = target / source.name
        if out.is_dir():
            raise ConfigurationError(f"{out}: is a folder; remove it or choose another folder")
        if not out.exists():
            status = "written"
        elif out.read_bytes() == data:
            status = "unchanged"
        else:
            status = "replaced"
        plan.append((out, data, status))
    changed = [out for out, _, status in plan if status == "replaced"]
    if changed and not force:
        names = ", ".join(str(p) for p in changed)
        raise ConfigurationError(
            f"{names}: differ from the notebooks of this edgekit version (edited or executed); "
            "pass --force to overwrite them, or choose another folder"
        )
    written: list[WrittenNotebook] = []
    for out, data, status in plan:
        if status != "unchanged":
            write_bytes_atomic(out, data, fsync=False)
        written.append(WrittenNotebook(out, status))
    return written


__all__ = [
    "NOTEBOOK_FILES",
    "WrittenNotebook",
    "cloudformation_template",
    "components_dir",
    "notebook_paths",
    "notebooks_dir",
    "resource_path",
    "resource_root",
    "write_notebooks",
]
