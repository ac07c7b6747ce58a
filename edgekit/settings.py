"""One Settings object for every notebook, command and test.

Values come, in increasing priority, from the defaults below, ``EDGEKIT_*``
environment variables, and explicit keyword arguments (a notebook's
``parameters`` cell). The backend changes where calls land, never which
calls are made.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgekit.errors import ConfigurationError

Backend = Literal["local", "aws"]
BACKENDS: tuple[str, ...] = ("local", "aws")


LOCAL_HOME_ENV = "EDGEKIT_LOCAL_HOME"


def default_local_home() -> Path:
    """Per-user folder for the local backend's state (endpoints, devices, keys)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edgekit"


def resolve_local_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The one rule for the local backend's state folder.

    An explicit ``path`` (``Settings.local_home``, ``--home``) wins; else
    ``$EDGEKIT_LOCAL_HOME``; else the per-user default. Always absolute.
    """
    if path is not None and str(path) != "":
        return Path(path).expanduser().absolute()
    env = os.environ.get(LOCAL_HOME_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return default_local_home().absolute()


def _aws_region(profile: str | None) -> str | None:
    """The region boto3 itself would use (AWS_REGION, AWS_DEFAULT_REGION, the profile)."""
    import botocore.session

    return botocore.session.Session(profile=profile).get_config_variable("region")


# Where the region comes from when neither a parameter nor EDGEKIT_REGION sets it: on
# AWS, the same place as for any boto3 program; the local backend keeps the default.
_DEFAULT_REGION = {"aws": _aws_region}


@dataclass(frozen=True)
class Settings:
    backend: Backend = "local"
    region: str = "us-east-1"
    project_name: str = "edgekit"
    thing_group: str = "edgekit-devices"
    model_name: str = "tag-scratch-detector"
    model_component: str = "com.qualityinspection.model"
    agent_component: str = "com.qualityinspection.agent"
    inference_component: str = "com.qualityinspection"
    results_topic: str = "qualityinspection/scratch-detection"
    health_topic: str = "qualityinspection/health"
    # None: $EDGEKIT_LOCAL_HOME, else the per-user default (see `resolve_local_home`).
    local_home: Path | None = None
    aws_profile: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"backend={self.backend!r} is not known; use one of {', '.join(BACKENDS)} "
                "(parameter 'backend' or EDGEKIT_BACKEND)"
            )
        if self.local_home is not None and str(self.local_home) != "":
            object.__setattr__(self, "local_home", Path(self.local_home).expanduser())
        else:
            object.__setattr__(self, "local_home", None)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``EDGEKIT_<FIELD>`` variables, then ``overrides`` (None is ignored)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = os.environ.get(f"EDGEKIT_{f.name.upper()}")
            if env:
                values[f.name] = env
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; known: "
                + ", ".join(f.name for f in dataclasses.fields(cls))
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "region" not in values:
            backend = values.get("backend", cls.backend)
            default = _DEFAULT_REGION.get(backend)
            if default is not None:
                region = default(values.get("aws_profile"))
                if region:
                    values["region"] = region
        return cls(**values)

    @property
    def home(self) -> Path:
        """The local backend's state folder these settings use (`resolve_local_home`)."""
        return resolve_local_home(self.local_home)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)
