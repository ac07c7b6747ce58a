"""Core devices of the local Greengrass control plane: the public core-device,
effective-deployment and installed-component operations, and the private device API
(``/_edgekit``) the local device runtime reports to and polls."""

from __future__ import annotations

import copy
import math
from typing import Any

from edgekit.local.greengrass.errors import ResourceNotFoundException, field_error
from edgekit.local.greengrass.state import BackendState
from edgekit.local.greengrass.store import paginate

__all__ = ["EXECUTION_STATUSES", "LIFECYCLE_STATES", "CoreDevicesMixin"]

EXECUTION_STATUSES = (
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "REJECTED",
    "TIMED_OUT",
    "CANCELED",
    "COMPLETED",
)
LIFECYCLE_STATES = (
    "NEW",
    "INSTALLED",
    "STARTING",
    "RUNNING",
    "STOPPING",
    "ERRORED",
    "BROKEN",
    "FINISHED",
)


class CoreDevicesMixin(BackendState):
    """Core-device operations of :class:`~edgekit.local.greengrass.models.GreengrassBackend`."""

    # ================= core devices =================

    def _device(self, thing: str) -> dict[str, Any]:
        record = self.devices.get(thing)
        if record is None:
            raise ResourceNotFoundException(
                f"core device {thing} does not exist; start it (edgekit local device start) "
                "and let it report its status first",
                resource_id=thing,
                resource_type="CORE_DEVICE",
            )
        return record

    @staticmethod
    def _device_summary(d: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "coreDeviceThingName",
            "coreVersion",
            "platform",
            "architecture",
            "runtime",
            "status",
            "lastStatusUpdateTimestamp",
        )
        return {k: d[k] for k in keys if d.get(k) is not None}

    def get_core_device(self, *, core_device_thing_name: str) -> dict[str, Any]:
        with self._lock:
            out = self._device_summary(self._device(core_device_thing_name))
            tags = self._tags_of(self.core_device_arn(core_device_thing_name))
        if tags:
            out["tags"] = tags
        return out

    def list_core_devices(
        self,
        *,
        thing_group_arn: str | None = None,
        status: str | None = None,
        runtime: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        group = None
        if thing_group_arn:
            kind, group = self._parse_target(thing_group_arn, "thingGroupArn")
        rows = []
        with self._lock:
            for thing in sorted(self.devices):
                d = self.devices[thing]
                if status and d.get("status") != status:
                    continue
                if runtime and d.get("runtime") != runtime:
                    continue
                # As AWS documents it: only core devices that have successfully
                # deployed a deployment to the group, and they stay listed after
                # leaving it. Group *membership* is IoT's ListThingsInThingGroup.
                if group is not None:
                    deployed = any(
                        row["targetArn"] == thing_group_arn
                        and row["coreDeviceExecutionStatus"] in ("SUCCEEDED", "COMPLETED")
                        for row in d.get("effectiveDeployments", {}).values()
                    )
                    if not deployed:
                        continue
                summary = self._device_summary(d)
                summary.pop("coreVersion", None)
                rows.append(summary)
        return paginate("coreDevices", rows, next_token, max_results)

    def delete_core_device(self, *, core_device_thing_name: str) -> dict[str, Any]:
        with self._lock:
            self._device(core_device_thing_name)
            del self.devices[core_device_thing_name]
            self.tags.pop(self.core_device_arn(core_device_thing_name), None)
            self._save("devices", "tags")
        return {}

    def list_effective_deployments(
        self,
        *,
        core_device_thing_name: str,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            d = self._device(core_device_thing_name)
            rows = sorted(
                (copy.deepcopy(r) for r in d.get("effectiveDeployments", {}).values()),
                key=lambda r: r["modifiedTimestamp"],
                reverse=True,
            )
        return paginate("effectiveDeployments", rows, next_token, max_results)

    def list_installed_components(
        self,
        *,
        core_device_thing_name: str,
        topology_filter: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        root_only = (topology_filter or "ROOT") == "ROOT"
        with self._lock:
            d = self._device(core_device_thing_name)
            rows = [
                copy.deepcopy(c)
                for c in d.get("components", [])
                if not root_only or c.get("isRoot")
            ]
        rows.sort(key=lambda c: c["componentName"])
        return paginate("installedComponents", rows, next_token, max_results)

    # ================= private device API =================

    def report_device_status(self, thing: str, body: dict[str, Any]) -> dict[str, Any]:
        """A device runtime reports its platform, health and installed components."""
        status = body.get("status", "HEALTHY")
        if status not in ("HEALTHY", "UNHEALTHY"):
            raise field_error("status", f"{status!r} is not HEALTHY or UNHEALTHY")
        groups = body.get("thingGroups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise field_error("thingGroups", "must be a list of thing-group names")
        raw_components = body.get("components") or []
        if not isinstance(raw_components, list):
            raise field_error("components", "must be a list")
        now = self.clock()
        installed = []
        for i, c in enumerate(raw_components):
            path = f"components[{i}]"
            if not isinstance(c, dict):
                raise field_error(path, "must be an object")
            for key in ("componentName", "componentVersion"):
                if not isinstance(c.get(key), str) or not c[key]:
                    raise field_error(f"{path}.{key}", "is required (a non-empty string)")
            state = c.get("lifecycleState", "NEW")
            if state not in LIFECYCLE_STATES:
                raise field_error(
                    f"{path}.lifecycleState",
                    f"{state!r} is not one of {', '.join(LIFECYCLE_STATES)}",
                )
            changed = c.get("lastStatusChangeTimestamp")
            if changed is not None and (
                isinstance(changed, bool)
                or not isinstance(changed, int | float)
                or not math.isfinite(changed)
                or not 0 <= changed < 1e11
            ):
                raise field_error(
                    f"{path}.lastStatusChangeTimestamp",
                    f"{changed!r} is not a timestamp; send seconds since the epoch (a number)",
                )
            row: dict[str, Any] = {
                "componentName": c["componentName"],
                "componentVersion": c["componentVersion"],
                "lifecycleState": state,
                "isRoot": bool(c.get("isRoot", False)),
                "lastStatusChangeTimestamp": float(changed or now),
                "lastReportedTimestamp": now,
            }
            details = c.get("lifecycleStateDetails")
            if details:
                row["lifecycleStateDetails"] = str(details)[:1000]
            if c.get("lastInstallationSource"):
                row["lastInstallationSource"] = str(c["lastInstallationSource"])
            codes = c.get("lifecycleStatusCodes")
            if codes:
                if not isinstance(codes, list):
                    raise field_error(f"{path}.lifecycleStatusCodes", "must be a list of strings")
                row["lifecycleStatusCodes"] = [str(x)[:255] for x in codes]
            installed.append(row)
        with self._lock:
            d = self.devices.setdefault(thing, {"coreDeviceThingName": thing})
            for key, default in (
                ("coreVersion", None),
                ("platform", None),
                ("architecture", None),
                ("runtime", "aws_nucleus_classic"),
            ):
                value = body.get(key, d.get(key, default))
                if value is not None:
                    d[key] = str(value)
            d["status"] = status
            d["lastStatusUpdateTimestamp"] = now
            d["thingGroups"] = list(groups)
            d["components"] = installed
            d.setdefault("effectiveDeployments", {})
            self._save("devices")
        return {}

    def _device_doc(self, d: dict[str, Any]) -> dict[str, Any]:
        components = {}
        for name, spec in d.get("components", {}).items():
            entry: dict[str, Any] = {"componentVersion": spec["componentVersion"]}
            update = spec.get("configurationUpdate")
            if update:
                entry["configurationUpdate"] = {
                    k: copy.deepcopy(update[k]) for k in ("merge", "reset") if k in update
                }
            if spec.get("runWith"):
                entry["runWith"] = copy.deepcopy(spec["runWith"])
            components[name] = entry
        return {
            "deploymentId": d["deploymentId"],
            "revisionId": d["revisionId"],
            "deploymentName": d["deploymentName"],
            "targetArn": d["targetArn"],
            "deploymentStatus": d["deploymentStatus"],
            "creationTimestamp": d["creationTimestamp"],
            "components": components,
            "deploymentPolicies": copy.deepcopy(d["deploymentPolicies"]),
        }

    def device_deployments(self, thing: str, groups: list[str]) -> dict[str, Any]:
        """For the thing and each group: the latest deployment that was not canceled."""
        targets = [self.thing_arn(thing)] + [self.thing_group_arn(g) for g in groups if g]
        docs = []
        with self._lock:
            for target in targets:
                for d in self.deployments.values():
                    if (
                        d["targetArn"] == target
                        and d.get("isLatestForTarget")
                        and d["deploymentStatus"] != "CANCELED"
                    ):
                        docs.append(self._device_doc(d))
                        break
        return {"deployments": docs}

    def report_deployment_status(
        self, thing: str, deployment_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        status = body.get("executionStatus")
        if status not in EXECUTION_STATUSES:
            raise field_error(
                "executionStatus", f"{status!r} is not one of {', '.join(EXECUTION_STATUSES)}"
            )
        details: dict[str, Any] = {}
        for key in ("errorStack", "errorTypes"):
            value = body.get(key)
            if value:
                if not isinstance(value, list):
                    raise field_error(key, "must be a list of strings")
                details[key] = [str(v)[:255] for v in value if str(v)]
        now = self.clock()
        with self._lock:
            local = body.get("local")
            if deployment_id not in self.deployments and isinstance(local, dict):
                # A local deployment (`edgekit local device deploy`, greengrass-cli): no
                # CreateDeployment, no job; listed for the core device it ran on.
                deployment = {
                    "deploymentName": str(local.get("deploymentName") or "LOCAL_DEPLOYMENT"),
                    "iotJobId": None,
                    "iotJobArn": None,
                    "targetArn": self.thing_arn(thing),
                    "creationTimestamp": local.get("creationTimestamp") or now,
                    "deploymentStatus": "LOCAL",
                }
            else:
                deployment = self._deployment(deployment_id)
            d = self.devices.setdefault(
                thing,
                {
                    "coreDeviceThingName": thing,
                    "status": "HEALTHY",
                    "lastStatusUpdateTimestamp": now,
                    "runtime": "aws_nucleus_classic",
                    "components": [],
                    "thingGroups": [],
                },
            )
            rows = d.setdefault("effectiveDeployments", {})
            row = {
                "deploymentId": deployment_id,
                "deploymentName": deployment["deploymentName"],
                "iotJobId": deployment["iotJobId"],
                "iotJobArn": deployment["iotJobArn"],
                "targetArn": deployment["targetArn"],
                "coreDeviceExecutionStatus": status,
                "creationTimestamp": deployment["creationTimestamp"],
                "modifiedTimestamp": now,
            }
            row = {k: v for k, v in row.items() if v is not None}  # a local one has no job
            if body.get("reason"):
                row["reason"] = str(body["reason"])
            if details:
                row["statusDetails"] = details
            rows[deployment_id] = row
            # A deployment to one thing ends with that thing's result, as its IoT job does.
            if (
                deployment["targetArn"] == self.thing_arn(thing)
                and deployment["deploymentStatus"] == "ACTIVE"
            ):
                if status in ("SUCCEEDED", "COMPLETED"):
                    deployment["deploymentStatus"] = "COMPLETED"
                elif status in ("FAILED", "REJECTED", "TIMED_OUT"):
                    deployment["deploymentStatus"] = "FAILED"
            self._save("devices", "deployments")
        return {}
