"""Deployments of the local Greengrass control plane: create (with supersession of the
previous deployment to a target), read, list, cancel, delete."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

from edgekit.local.greengrass.errors import (
    ConflictException,
    ResourceNotFoundException,
    field_error,
)
from edgekit.local.greengrass.state import BackendState
from edgekit.local.greengrass.store import paginate
from edgekit.recipes import nesting_problem, too_deep_message
from edgekit.recipes.provided import public_component

__all__ = ["DeploymentsMixin"]


class DeploymentsMixin(BackendState):
    """Deployment operations of :class:`~edgekit.local.greengrass.models.GreengrassBackend`."""

    # ================= deployments =================

    def _parse_target(self, arn: str, field: str) -> tuple[str, str]:
        m = re.fullmatch(r"arn:[^:]*:iot:([^:]*):([0-9]+):(thing|thinggroup)/(.+)", arn or "")
        if not m:
            raise field_error(
                field,
                f"{arn!r} is not a thing or thing-group ARN "
                f"(arn:aws:iot:{self.region}:{self.account_id}:thing/NAME or .../thinggroup/NAME)",
            )
        region, account, kind, name = m.groups()
        if region != self.region or account != self.account_id:
            raise field_error(
                field,
                f"{arn} is in region {region} / account {account}; this emulator serves "
                f"{self.region} / {self.account_id}",
            )
        return kind, name

    @staticmethod
    def _fill_policies(policies: dict[str, Any] | None) -> dict[str, Any]:
        """Deployment policies with the defaults AWS documents filled in."""
        p = copy.deepcopy(policies or {})
        p.setdefault("failureHandlingPolicy", "ROLLBACK")
        update = p.setdefault("componentUpdatePolicy", {})
        update.setdefault("timeoutInSeconds", 60)
        update.setdefault("action", "NOTIFY_COMPONENTS")
        validation = p.setdefault("configurationValidationPolicy", {})
        validation.setdefault("timeoutInSeconds", 30)
        return p

    def _check_components(self, components: dict[str, Any]) -> None:
        for name, spec in components.items():
            path = f"components.{name}"
            version = spec.get("componentVersion")
            public = public_component(name)
            if public is not None:  # AWS-provided: never published, only its public versions
                if not public.publishes(str(version)):
                    raise ResourceNotFoundException(
                        f"{path}: AWS-provided component {name} has no public version "
                        f"{version}; use one of {', '.join(public.versions)} (or a later "
                        "patch of those lines)",
                        resource_id=self.component_version_arn(name, str(version)),
                        resource_type="COMPONENT_VERSION",
                    )
            else:  # every other name (aws.greengrass.labs.* included) must be published
                with self._lock:
                    exists = version in self.components.get(name, {})
                if not exists:
                    raise ResourceNotFoundException(
                        f"{path}: component {name} version {version} does not exist; create it "
                        "with CreateComponentVersion first (ListComponentVersions shows what "
                        "exists)",
                        resource_id=self.component_version_arn(name, str(version)),
                        resource_type="COMPONENT_VERSION",
                    )
            update = spec.get("configurationUpdate") or {}
            if "merge" in update:
                merge_field = f"{path}.configurationUpdate.merge"
                try:
                    merged = json.loads(update["merge"])
                except json.JSONDecodeError as exc:
                    raise field_error(
                        merge_field,
                        f"is not valid JSON ({exc.msg} at column {exc.colno}); pass "
                        "json.dumps({...})",
                    ) from None
                except RecursionError:
                    raise field_error(merge_field, too_deep_message()) from None
                if not isinstance(merged, dict):
                    raise field_error(merge_field, "must be a JSON object ({...})")
                # Checked here, not on the device: a merge it cannot apply wedges it.
                problem = nesting_problem(merged)
                if problem:
                    raise field_error(merge_field, problem)
            for i, pointer in enumerate(update.get("reset") or []):
                if pointer != "" and not pointer.startswith("/"):
                    raise field_error(
                        f"{path}.configurationUpdate.reset[{i}]",
                        f"{pointer!r} is not a JSON pointer; write it as /key/subkey (or '' for "
                        "the whole configuration)",
                    )

    def create_deployment(
        self,
        *,
        target_arn: str,
        deployment_name: str | None = None,
        components: dict[str, Any] | None = None,
        iot_job_configuration: dict[str, Any] | None = None,
        deployment_policies: dict[str, Any] | None = None,
        parent_target_arn: str | None = None,
        tags: dict[str, str] | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        request = {
            "targetArn": target_arn,
            "deploymentName": deployment_name,
            "components": components,
            "iotJobConfiguration": iot_job_configuration,
            "deploymentPolicies": deployment_policies,
            "parentTargetArn": parent_target_arn,
            "tags": tags,
        }

        def work() -> dict[str, Any]:
            _, target_name = self._parse_target(target_arn, "targetArn")
            if parent_target_arn is not None:
                kind, _ = self._parse_target(parent_target_arn, "parentTargetArn")
                if kind != "thinggroup":
                    raise field_error("parentTargetArn", "must be a thing-group ARN")
            specs = copy.deepcopy(components or {})
            self._check_components(specs)
            deployment_id = str(uuid.uuid4())
            job_id = str(uuid.uuid4())
            now = self.clock()
            with self._lock:
                revision = 1
                for other in self.deployments.values():
                    if other["targetArn"] == target_arn:
                        revision = max(revision, int(other["revisionId"]) + 1)
                        if other.get("isLatestForTarget"):
                            other["isLatestForTarget"] = False
                            if other["deploymentStatus"] in ("ACTIVE", "COMPLETED"):
                                other["deploymentStatus"] = "INACTIVE"
                record: dict[str, Any] = {
                    "deploymentId": deployment_id,
                    "deploymentName": deployment_name or f"Deployment for {target_name}",
                    "targetArn": target_arn,
                    "revisionId": str(revision),
                    "deploymentStatus": "ACTIVE",
                    "iotJobId": job_id,
                    "iotJobArn": f"arn:aws:iot:{self.region}:{self.account_id}:job/{job_id}",
                    "components": specs,
                    "deploymentPolicies": self._fill_policies(deployment_policies),
                    "creationTimestamp": now,
                    "isLatestForTarget": True,
                    "sequence": len(self.deployments),
                }
                if iot_job_configuration:
                    record["iotJobConfiguration"] = copy.deepcopy(iot_job_configuration)
                if parent_target_arn:
                    record["parentTargetArn"] = parent_target_arn
                self.deployments[deployment_id] = record
                if tags:
                    self.tags[self.deployment_arn(deployment_id)] = dict(tags)
                self._save("deployments", "tags")
            return {
                "deploymentId": deployment_id,
                "iotJobId": job_id,
                "iotJobArn": record["iotJobArn"],
            }

        return self._idempotent("CreateDeployment", client_token, request, work)

    def _deployment(self, deployment_id: str) -> dict[str, Any]:
        record = self.deployments.get(deployment_id)
        if record is None:
            raise ResourceNotFoundException(
                f"deployment {deployment_id} does not exist; ListDeployments shows the "
                "deployments of each target",
                resource_id=deployment_id,
                resource_type="DEPLOYMENT",
            )
        return record

    def get_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = copy.deepcopy(self._deployment(deployment_id))
            tags = self._tags_of(self.deployment_arn(deployment_id))
        record.pop("sequence", None)
        if tags:
            record["tags"] = tags
        return record

    def _ordered_deployments(self) -> list[dict[str, Any]]:
        return sorted(
            self.deployments.values(),
            key=lambda d: (d["creationTimestamp"], d.get("sequence", 0)),
            reverse=True,
        )

    def list_deployments(
        self,
        *,
        target_arn: str | None = None,
        history_filter: str | None = None,
        parent_target_arn: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        latest_only = (history_filter or "LATEST_ONLY") == "LATEST_ONLY"
        rows = []
        with self._lock:
            for d in self._ordered_deployments():
                if target_arn and d["targetArn"] != target_arn:
                    continue
                if parent_target_arn and d.get("parentTargetArn") != parent_target_arn:
                    continue
                if latest_only and not d.get("isLatestForTarget"):
                    continue
                row = {
                    k: d[k]
                    for k in (
                        "targetArn",
                        "revisionId",
                        "deploymentId",
                        "deploymentName",
                        "creationTimestamp",
                        "deploymentStatus",
                        "isLatestForTarget",
                        "parentTargetArn",
                    )
                    if k in d
                }
                rows.append(row)
        return paginate("deployments", rows, next_token, max_results)

    def cancel_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._deployment(deployment_id)
            if record["deploymentStatus"] != "ACTIVE":
                raise ConflictException(
                    f"deployment {deployment_id} is {record['deploymentStatus']}; only ACTIVE "
                    "deployments can be canceled",
                    resource_id=deployment_id,
                    resource_type="DEPLOYMENT",
                )
            record["deploymentStatus"] = "CANCELED"
            self._save("deployments")
        return {"message": f"Deployment {deployment_id} canceled"}

    def delete_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._deployment(deployment_id)
            if record["deploymentStatus"] == "ACTIVE":
                raise ConflictException(
                    f"deployment {deployment_id} is ACTIVE; cancel it (CancelDeployment) "
                    "before deleting it",
                    resource_id=deployment_id,
                    resource_type="DEPLOYMENT",
                )
            del self.deployments[deployment_id]
            self.tags.pop(self.deployment_arn(deployment_id), None)
            self._save("deployments", "tags")
        return {}
