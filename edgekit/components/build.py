"""Build the three components: artifacts on disk and recipes ready to be versioned.

``build_components`` makes everything that does not depend on the cloud: the
signed model package, the edgekit wheel, the sample images, and the recipe
templates filled with names, topics, file names and the public key. What the
cloud decides (next version, bucket, interpreter of the backend) is filled in
by :func:`edgekit.components.publish.publish_components`. Every built recipe
is validated once with placeholder versions, so a template error shows up
before anything is uploaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.components import artifacts
from edgekit.components.templates import ROLES, Template, shared_file
from edgekit.errors import ConfigurationError, PackageError
from edgekit.files import sha256_file
from edgekit.model import default_model_path
from edgekit.package import build_package, generate_keypair, key_id, load_public_key, open_package
from edgekit.package.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, default_key_dir
from edgekit.recipes import validate_recipe
from edgekit.settings import Settings

# Filled at publish time; the build validates with these stand-ins.
PUBLISH_KEYS = (
    "COMPONENT_VERSION",
    "ARTIFACT_PREFIX",
    "PYTHON",
    "CAPTURE_BUCKET",
    "MODEL_VERSION_REQUIREMENT",
    "AGENT_VERSION_REQUIREMENT",
)
PREVIEW_VALUES = {
    "COMPONENT_VERSION": "1.0.0",
    "ARTIFACT_PREFIX": "s3://edgekit-preview-bucket/components/preview/1.0.0",
    "PYTHON": "python3",
    "CAPTURE_BUCKET": "edgekit-preview-bucket",
    "MODEL_VERSION_REQUIREMENT": ">=1.0.0 <2.0.0",
    "AGENT_VERSION_REQUIREMENT": ">=1.0.0 <2.0.0",
}
SHIPPED_MODEL_VERSION = "1.0.0"
SHIPPED_MODEL_RUNTIME = "onnxruntime"  # the shipped model is packaged uncompiled
# A fixed time keeps the shipped model's package byte-for-byte reproducible.
SHIPPED_CREATED_AT = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class BuiltComponent:
    """One component ready to publish: its template, known values and artifact files."""

    role: str
    name: str
    template: Template
    values: dict[str, str]
    artifacts: tuple[Path, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self, publish_values: Mapping[str, str]) -> dict[str, Any]:
        """The recipe with build values and ``publish_values`` (version, S3 prefix...)."""
        return self.template.render({**self.values, **publish_values})

    def preview(self) -> dict[str, Any]:
        return self.render(PREVIEW_VALUES)

    def describe(self) -> str:
        """For the model component: which package it carries, in words ('' for the others)."""
        if self.role != "model":
            return ""
        source = self.extra.get("package_source", "shipped")
        origin = "the model shipped with edgekit" if source == "shipped" else source
        return (
            f"model package {self.values['MODEL_NAME']} {self.values['MODEL_VERSION']} from "
            f"{origin}: sha256 {self.values['PACKAGE_SHA256']}, signed with key "
            f"{self.extra.get('key_id', '-')}"
        )


def generated_configuration(
    settings: Settings, templates_dir: str | os.PathLike[str] | None = None
) -> dict[str, list[str]]:
    """``{component name: [JSON pointer, ...]}``: the configuration keys the build generates
    (the agent's ``PublicKey``, the model's ``ModelName``/``ModelVersion``, topics, the
    interpreter...), which every deployment resets to the deployed version's defaults."""
    folder = Path(templates_dir) if templates_dir is not None else None
    names = {
        "model": settings.model_component,
        "agent": settings.agent_component,
        "inference": settings.inference_component,
    }
    return {names[role]: Template.load(role, folder).generated_configuration() for role in ROLES}


def signing_keys(key_dir: str | os.PathLike[str] | None, settings: Settings) -> tuple[Path, Path]:
    """(private, public) PEM paths in ``key_dir``; a new pair is made on first use."""
    folder = Path(key_dir) if key_dir is not None else default_key_dir(settings)
    private, public = folder / PRIVATE_KEY_NAME, folder / PUBLIC_KEY_NAME
    if not private.exists() and not public.exists():
        generate_keypair(folder)
    elif not public.exists():
        raise PackageError(
            f"{public}: missing next to {private}; restore it or use another key dir"
        )
    return private, public


def _model_package(
    settings: Settings, model_package: str | os.PathLike[str] | None, private: Path, out: Path
) -> Path:
    """The package file in ``out``: the given one (checked) or the shipped model, packaged."""
    out.mkdir(parents=True, exist_ok=True)
    if model_package is None:
        target = out / f"{settings.model_name}-{SHIPPED_MODEL_VERSION}.tar.gz"
        return build_package(
            default_model_path(),
            name=settings.model_name,
            version=SHIPPED_MODEL_VERSION,
            key=private,
            out=target,
            created_at=SHIPPED_CREATED_AT,
        ).path
    source = Path(model_package)
    if not source.is_file() or not source.name.endswith(".tar.gz"):
        raise PackageError(
            f"{source}: expected a model package file (.tar.gz from edgekit package)"
        )
    with open_package(source) as opened:
        manifest = opened.manifest
    public_id = key_id(load_public_key(private.with_name("public_key.pem")))
    if manifest.signing_key_id and manifest.signing_key_id != public_id:
        raise PackageError(
            f"{source}: signed with key {manifest.signing_key_id}, but the key folder "
            f"{private.parent} holds key {public_id}; devices would refuse it. Pass --key-dir "
            "with the key that signed the package, or package the model again with this key"
        )
    target = out / source.name
    if target.resolve() != source.resolve():
        shutil.copyfile(source, target)
    return target


def _manifest(package: Path) -> Any:
    with open_package(package) as opened:
        return opened.manifest


def build_components(
    settings: Settings | None = None,
    *,
    out_dir: str | os.PathLike[str],
    model_package: str | os.PathLike[str] | None = None,
    key_dir: str | os.PathLike[str] | None = None,
    names: Iterable[str] | None = None,
    templates_dir: str | os.PathLike[str] | None = None,
) -> list[BuiltComponent]:
    """Build the components (all three, or those named in ``names``) into ``out_dir``.

    ``model_package``: a signed ``.tar.gz``; default: the shipped model, packaged and
    signed with the key in ``key_dir`` (default ``<local home>/keys``, created on first
    use). The public half goes into the agent's ``PublicKey`` configuration.
    """
    settings = settings or Settings.from_env()
    folder = Path(templates_dir) if templates_dir is not None else None
    role_of = {
        settings.model_component: "model",
        settings.agent_component: "agent",
        settings.inference_component: "inference",
    }
    wanted = list(ROLES) if names is None else []
    for name in names or []:
        if name not in role_of:
            raise ConfigurationError(
                f"component {name!r} is not one of edgekit's: {', '.join(role_of)}"
            )
        wanted.append(role_of[name])
    out = Path(out_dir)
    private, public = signing_keys(key_dir, settings)
    values: dict[str, str] = {
        "MODEL_COMPONENT": settings.model_component,
        "AGENT_COMPONENT": settings.agent_component,
        "INFERENCE_COMPONENT": settings.inference_component,
        "RESULTS_TOPIC": settings.results_topic,
        "HEALTH_TOPIC": settings.health_topic,
        "MODEL_NAME": settings.model_name,
        "PUBLIC_KEY": public.read_text().strip(),
        "ADDITIONAL_PUBLIC_KEYS": "",  # only a rollout's shadow stage merges a key here
    }
    name_of = {role: name for name, role in role_of.items()}
    built: list[BuiltComponent] = []
    wheel: Path | None = None
    package_runtime: str | None = None  # the model package's runtime: the agent installs it
    for role in ROLES:
        if role not in wanted:
            continue
        name = name_of[role]
        comp_dir = out / name
        if comp_dir.exists():
            shutil.rmtree(comp_dir)
        comp_dir.mkdir(parents=True)
        files: list[Path] = []
        role_values = dict(values)
        if role == "model":
            package = _model_package(settings, model_package, private, comp_dir)
            manifest = _manifest(package)
            role_values.update(
                MODEL_NAME=manifest.name,
                MODEL_VERSION=manifest.version,
                PACKAGE_FILE=package.name,
                PACKAGE_SHA256=sha256_file(package),
            )
            package_runtime = manifest.runtime
            files.append(package)
        else:
            if wheel is None:
                wheel = artifacts.build_wheel(out / ".wheel")
            for source in (wheel, shared_file("install_env.py", folder)):
                target = comp_dir / source.name
                shutil.copyfile(source, target)
                files.append(target)
            role_values["WHEEL_FILE"] = wheel.name
        if role == "agent":
            if package_runtime is None:
                package_runtime = (
                    _manifest(Path(model_package)).runtime
                    if model_package is not None
                    else SHIPPED_MODEL_RUNTIME
                )
            role_values["MODEL_RUNTIMES"] = package_runtime
        if role == "inference":
            images = artifacts.sample_images_zip(comp_dir)
            files.append(images)
            role_values.update(IMAGES_ZIP=images.name, IMAGES_FOLDER=images.name[: -len(".zip")])
        template = Template.load(role, folder)
        extra: dict[str, Any] = {}
        if role == "model":
            extra = {
                "package_source": "shipped" if model_package is None else str(model_package),
                "key_id": key_id(load_public_key(public)),
            }
        component = BuiltComponent(role, name, template, role_values, tuple(files), extra)
        preview = component.preview()
        validate_recipe(preview, source=str(template.path))
        built.append(component)
    if wheel is not None:
        shutil.rmtree(wheel.parent, ignore_errors=True)
    return built
