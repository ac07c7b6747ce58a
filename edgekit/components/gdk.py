"""Build one of edgekit's components as a Greengrass Development Kit (GDK) project.

Each folder ``component/<ComponentName>/`` holds a ``gdk-config.json`` whose custom
build command is ``edgekit components build --gdk``. GDK runs it in that folder
(``gdk component build``); it writes what GDK's publish step expects:

- ``greengrass-build/recipes/<recipe file name>``: the template with every
  ``@@PLACEHOLDER@@`` filled, artifact URIs in GDK's form
  ``s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>`` and the version of
  ``gdk-config.json`` (``NEXT_PATCH`` stays as is: ``gdk component publish`` sets the
  version and the URIs, then calls CreateComponentVersion);
- ``greengrass-build/artifacts/<ComponentName>/<version>/``: the artifact files
  (the signed model package, or the edgekit wheel and ``install_env.py``...).

What ``edgekit components publish`` decides at publish time is decided here from the
environment, so the same build works for AWS and for the local endpoints:

- the backend: ``EDGEKIT_BACKEND`` if set, else ``local`` when the boto3 endpoint
  variable of Greengrass (``AWS_ENDPOINT_URL_GREENGRASSV2``, printed by
  ``edgekit local env``) is set, else ``aws``. It picks ``PythonExecutable``
  (edgekit's interpreter locally, ``python3`` or ``EDGEKIT_DEVICE_PYTHON`` on AWS);
- the capture bucket: ``EDGEKIT_ARTIFACT_BUCKET``, else the bucket GDK publishes to,
  ``<publish.bucket>-<region>-<account>`` (account from STS GetCallerIdentity);
- the dependency ranges of the inference app: the major of the model and agent
  components' newest version in the registry (``>=1.0.0 <2.0.0`` for none);
- the model package: ``--model-package`` or ``EDGEKIT_MODEL_PACKAGE`` (signed by the key
  in ``--key-dir`` / ``EDGEKIT_KEY_DIR``), else the model shipped with edgekit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import clients
from edgekit.components.build import PREVIEW_VALUES, build_components
from edgekit.components.profiles import BUCKET_ENV, profile_for
from edgekit.components.publish import (
    FIRST_VERSION,
    caller_identity,
    component_arn,
    component_versions,
    latest_version,
)
from edgekit.components.templates import RECIPE_FILES, TEMPLATE_DIRS
from edgekit.errors import ConfigurationError
from edgekit.files import write_bytes_atomic
from edgekit.recipes import dump_recipe, validate_recipe
from edgekit.recipes.semver import parse_version
from edgekit.settings import Settings

CONFIG_FILE = "gdk-config.json"
BUILD_DIR = "greengrass-build"
NEXT_PATCH = "NEXT_PATCH"
#: GDK's stand-in artifact prefix; ``gdk component publish`` replaces it.
GDK_ARTIFACT_PREFIX = "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION"
#: The variable `edgekit local env` sets for the Greengrass emulator.
LOCAL_ENDPOINT_ENV = "AWS_ENDPOINT_URL_GREENGRASSV2"
MODEL_PACKAGE_ENV = "EDGEKIT_MODEL_PACKAGE"
KEY_DIR_ENV = "EDGEKIT_KEY_DIR"


@dataclass(frozen=True)
class GdkProject:
    """The fields of a ``gdk-config.json`` the build uses."""

    path: Path
    name: str
    version: str
    author: str
    bucket: str
    region: str

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def build_dir(self) -> Path:
        return self.folder / BUILD_DIR

    @property
    def recipes_dir(self) -> Path:
        return self.build_dir / "recipes"

    @property
    def artifacts_dir(self) -> Path:
        return self.build_dir / "artifacts" / self.name / self.version

    def publish_bucket(self, account: str) -> str:
        """The bucket ``gdk component publish`` uploads to (GDK's naming rule)."""
        return f"{self.bucket.strip()}-{self.region}-{account}"


@dataclass(frozen=True)
class GdkBuild:
    project: GdkProject
    recipe: Path
    artifacts: tuple[Path, ...]
    backend: str


def _field(config: dict[str, Any], key: str, path: Path, where: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{path}: {where}.{key} must be a non-empty string")
    return value


def read_gdk_config(folder: str | os.PathLike[str]) -> GdkProject:
    """The ``gdk-config.json`` of the GDK project in ``folder`` (ConfigurationError if bad)."""
    path = Path(folder) / CONFIG_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: not found; run the build in a GDK project folder (gdk component build "
            "runs it there), e.g. component/com.qualityinspection.model"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc})") from exc
    components = document.get("component") if isinstance(document, dict) else None
    if not isinstance(components, dict) or len(components) != 1:
        raise ConfigurationError(f"{path}: 'component' must map exactly one component name")
    ((name, config),) = components.items()
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: component.{name} must be an object")
    where = f"component.{name}"
    publish = config.get("publish")
    if not isinstance(publish, dict):
        raise ConfigurationError(f"{path}: {where}.publish must be an object with 'bucket'")
    return GdkProject(
        path=path,
        name=name,
        version=_field(config, "version", path, where),
        author=_field(config, "author", path, where),
        bucket=_field(publish, "bucket", path, f"{where}.publish"),
        region=_field(publish, "region", path, f"{where}.publish"),
    )


def gdk_backend() -> str:
    """``EDGEKIT_BACKEND``, else ``local`` if the Greengrass endpoint variable is set, else aws."""
    explicit = os.environ.get("EDGEKIT_BACKEND")
    if explicit:
        return explicit
    return "local" if os.environ.get(LOCAL_ENDPOINT_ENV) else "aws"


def _recipe_name(folder: Path) -> str:
    """The project's recipe file name: GDK's publish reads the built recipe by that name."""
    found = [name for name in RECIPE_FILES if (folder / name).is_file()]
    if len(found) != 1:
        raise ConfigurationError(
            f"{folder}: needs exactly one recipe file ({' or '.join(RECIPE_FILES)}); found "
            + (", ".join(found) or "none")
        )
    return found[0]


def _templates_dir(project: GdkProject, role: str) -> Path | None:
    """The folder of templates next to the project (so the build uses the recipe beside
    gdk-config.json); None (edgekit's installed templates) if the project is elsewhere."""
    parent = project.folder.resolve().parent
    if (parent / TEMPLATE_DIRS[role]).resolve() == project.folder.resolve():
        return parent
    return None


def _dependency_range(settings: Settings, greengrass: Any, account: str, name: str) -> str:
    """``>=M.0.0 <M+1.0.0`` of the newest registered version's major (the publish rule)."""
    newest = latest_version(component_versions(greengrass, component_arn(settings, account, name)))
    major = parse_version(newest or FIRST_VERSION).major
    return f">={major}.0.0 <{major + 1}.0.0"


def build_gdk_project(
    folder: str | os.PathLike[str] = ".",
    *,
    model_package: str | os.PathLike[str] | None = None,
    key_dir: str | os.PathLike[str] | None = None,
) -> GdkBuild:
    """Build the edgekit component of the GDK project in ``folder`` into its
    ``greengrass-build/`` (see the module docstring for where each value comes from)."""
    project = read_gdk_config(folder)
    recipe_name = _recipe_name(project.folder)
    settings = Settings.from_env(backend=gdk_backend(), region=project.region)
    roles = {
        settings.model_component: "model",
        settings.agent_component: "agent",
        settings.inference_component: "inference",
    }
    role = roles.get(project.name)
    if role is None:
        raise ConfigurationError(
            f"{project.path}: component {project.name!r} is not one of edgekit's "
            f"({', '.join(roles)}); edgekit components build --gdk builds those only"
        )
    model_package = model_package or os.environ.get(MODEL_PACKAGE_ENV) or None
    key_dir = key_dir or os.environ.get(KEY_DIR_ENV) or None
    account = str(caller_identity(settings)["Account"])
    greengrass = clients.client("greengrassv2", settings)
    values = {
        "COMPONENT_VERSION": project.version,
        "ARTIFACT_PREFIX": GDK_ARTIFACT_PREFIX,
        "PYTHON": profile_for(settings).python_executable(),
        "CAPTURE_BUCKET": os.environ.get(BUCKET_ENV) or project.publish_bucket(account),
        "MODEL_VERSION_REQUIREMENT": _dependency_range(
            settings, greengrass, account, settings.model_component
        ),
        "AGENT_VERSION_REQUIREMENT": _dependency_range(
            settings, greengrass, account, settings.agent_component
        ),
    }
    with tempfile.TemporaryDirectory(prefix="edgekit-gdk-") as tmp:
        (built,) = build_components(
            settings,
            out_dir=tmp,
            model_package=model_package,
            key_dir=key_dir,
            names=[project.name],
            templates_dir=_templates_dir(project, role),
        )
        recipe = built.render(values)
        checked = dict(recipe)
        if project.version == NEXT_PATCH:  # GDK sets the version when it publishes
            checked["ComponentVersion"] = PREVIEW_VALUES["COMPONENT_VERSION"]
        validate_recipe(checked, source=f"{project.name} (built from {built.template.path})")
        project.recipes_dir.mkdir(parents=True, exist_ok=True)
        project.artifacts_dir.mkdir(parents=True, exist_ok=True)
        copied = []
        for source in built.artifacts:
            target = project.artifacts_dir / source.name
            shutil.copyfile(source, target)
            copied.append(target)
    fmt = "JSON" if recipe_name.endswith(".json") else "YAML"
    recipe_path = project.recipes_dir / recipe_name
    write_bytes_atomic(recipe_path, dump_recipe(recipe, fmt))
    return GdkBuild(project, recipe_path, tuple(copied), settings.backend)
