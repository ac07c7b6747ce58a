"""The state every operation of the local Greengrass control plane shares.

:class:`BackendState` holds components, deployments, core devices and tags of one
emulated account and region, persists them as JSON files under a state folder (so a
restart loses nothing), builds ARNs and replays idempotent requests. One re-entrant
lock guards all state; S3 reads happen outside it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.local.greengrass.errors import (
    ConflictException,
    ResourceNotFoundException,
    field_error,
)
from edgekit.local.greengrass.s3 import S3Artifacts
from edgekit.local.greengrass.store import (
    STATE_FORMAT,
    RecordDir,
    atomic_write_json,
    load_state,
)

__all__ = ["DEFAULT_ACCOUNT_ID", "BackendState"]

DEFAULT_ACCOUNT_ID = "123456789012"


class BackendState:
    """The state and shared helpers of one emulated account and region: persistence,
    ARNs, idempotency. The operation mixins build on it."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        aws_endpoint: str | None,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.account_id = account_id
        self.s3 = S3Artifacts(aws_endpoint, region)
        self.clock = clock
        self._lock = threading.RLock()
        # components[name][version] -> record; one file per version under components/
        self._component_files = RecordDir(self.state_dir / "components")
        self.components: dict[str, dict[str, dict[str, Any]]] = self._load_components()
        self.deployments: dict[str, dict[str, Any]] = load_state(self._path("deployments"), {})
        self.devices: dict[str, dict[str, Any]] = load_state(self._path("devices"), {})
        self.tags: dict[str, dict[str, str]] = load_state(self._path("tags"), {})
        self._idempotency: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    # -- persistence --

    def _path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _load_components(self) -> dict[str, dict[str, dict[str, Any]]]:
        components: dict[str, dict[str, dict[str, Any]]] = {}
        for (name, version), record in self._component_files.load():
            components.setdefault(name, {})[version] = record
        # Before issue 12 every component lived in one components.json, rewritten whole
        # on each save; move its records into components/ once.
        legacy_path = self._path("components")
        legacy: dict[str, dict[str, dict[str, Any]]] = load_state(legacy_path, {})
        for name, versions in legacy.items():
            for version, record in versions.items():
                if version not in components.get(name, {}):
                    components.setdefault(name, {})[version] = record
                    self._component_files.put([name, version], record)
        if legacy_path.exists():
            legacy_path.unlink()
        return components

    def _save_component(self, name: str, version: str) -> None:
        """Persist one component version (or its deletion); the others stay untouched."""
        with self._lock:
            record = self.components.get(name, {}).get(version)
            if record is None:
                self._component_files.delete([name, version])
            else:
                self._component_files.put([name, version], record)

    def _save(self, *names: str) -> None:
        for name in names:
            # Device heartbeats are frequent and re-sent anyway: skip their fsync.
            atomic_write_json(
                self._path(name),
                {"format": STATE_FORMAT, "data": getattr(self, name)},
                durable=name != "devices",
            )

    # -- ARNs --

    def _arn(self, resource: str) -> str:
        return f"arn:aws:greengrass:{self.region}:{self.account_id}:{resource}"

    def component_arn(self, name: str) -> str:
        return self._arn(f"components:{name}")

    def component_version_arn(self, name: str, version: str) -> str:
        return self._arn(f"components:{name}:versions:{version}")

    def deployment_arn(self, deployment_id: str) -> str:
        return self._arn(f"deployments:{deployment_id}")

    def core_device_arn(self, thing: str) -> str:
        return self._arn(f"coreDevices:{thing}")

    def thing_arn(self, thing: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thing/{thing}"

    def thing_group_arn(self, group: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thinggroup/{group}"

    def _parse_component_arn(self, arn: str, *, versioned: bool, field: str = "arn") -> tuple:
        m = re.fullmatch(
            r"arn:([^:]*):greengrass:([^:]*):([^:]+):components:([^:]+)(?::versions:([^:]+))?",
            arn or "",
        )
        if not m:
            raise field_error(field, f"{arn!r} is not a Greengrass component ARN")
        _, region, account, name, version = m.groups()
        if versioned and version is None:
            raise field_error(
                field, f"{arn!r} names a component, not a version; append :versions:VERSION"
            )
        if not versioned and version is not None:
            raise field_error(field, f"{arn!r} names a component version; drop :versions:...")
        if account == "aws":
            raise ResourceNotFoundException(
                f"public component {name} is not available in the local emulator; only "
                "components you create exist here",
                resource_id=arn,
                resource_type="COMPONENT",
            )
        if region != self.region or account != self.account_id:
            raise ResourceNotFoundException(
                f"{arn} belongs to region {region} / account {account}, but this emulator "
                f"serves {self.region} / {self.account_id}",
                resource_id=arn,
                resource_type="COMPONENT_VERSION" if versioned else "COMPONENT",
            )
        return name, version

    def _component_version(self, arn: str) -> dict[str, Any]:
        name, version = self._parse_component_arn(arn, versioned=True)
        record = self.components.get(name, {}).get(version)
        if record is None:
            raise ResourceNotFoundException(
                f"component version {name} {version} does not exist; create it with "
                "CreateComponentVersion or list versions with ListComponentVersions",
                resource_id=arn,
                resource_type="COMPONENT_VERSION",
            )
        return record

    def _tags_of(self, arn: str) -> dict[str, str] | None:
        tags = self.tags.get(arn)
        return dict(tags) if tags else None

    # -- idempotency (botocore sends a fresh clientToken per call and reuses it on retries) --

    def _idempotent(
        self, op: str, token: str | None, request: Any, work: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        if not token:
            return work()
        fingerprint = json.dumps(request, sort_keys=True, default=str)
        with self._lock:
            cached = self._idempotency.get((op, token))
        if cached is not None:
            if cached[0] != fingerprint:
                raise ConflictException(
                    f"clientToken {token} was already used for a different {op} request; "
                    "use a new token",
                    resource_id=token,
                    resource_type="CLIENT_TOKEN",
                )
            return copy.deepcopy(cached[1])
        result = work()
        with self._lock:
            self._idempotency[(op, token)] = (fingerprint, copy.deepcopy(result))
        return result

    # ================= tags =================

    def _check_taggable(self, arn: str) -> None:
        m = re.fullmatch(
            r"arn:[^:]*:greengrass:([^:]*):([^:]+):(components|deployments|coreDevices):(.+)",
            arn or "",
        )
        exists = False
        if m and m[1] == self.region and m[2] == self.account_id:
            kind, rest = m[3], m[4]
            if kind == "components":
                name, _, version = rest.partition(":versions:")
                versions = self.components.get(name, {})
                exists = version in versions if version else bool(versions)
            elif kind == "deployments":
                exists = rest in self.deployments
            else:
                exists = rest in self.devices
        if not exists:
            raise ResourceNotFoundException(
                f"no component, deployment or core device has the ARN {arn}",
                resource_id=arn,
                resource_type="RESOURCE",
            )

    def list_tags_for_resource(self, *, resource_arn: str) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            tags = self._tags_of(resource_arn)
        return {"tags": tags} if tags else {}

    def tag_resource(self, *, resource_arn: str, tags: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            merged = {**self.tags.get(resource_arn, {}), **tags}
            if len(merged) > 200:
                raise field_error("tags", "a resource can have at most 200 tags")
            self.tags[resource_arn] = merged
            self._save("tags")
        return {}

    def untag_resource(self, *, resource_arn: str, tag_keys: list[str]) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            remaining = {
                k: v for k, v in self.tags.get(resource_arn, {}).items() if k not in tag_keys
            }
            if remaining:
                self.tags[resource_arn] = remaining
            else:
                self.tags.pop(resource_arn, None)
            self._save("tags")
        return {}
