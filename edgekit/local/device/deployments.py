"""Deployments: poll for them, apply them, report their outcome, roll a failed one back.

`DeploymentsMixin` follows Greengrass: the deployments of the thing and of its
thing groups combine (the thing's own wins a conflict), leaving a group removes
that group's components, a failure rolls back unless the deployment says
DO_NOTHING, and every outcome is saved before it is reported so a crash cannot
lose it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.local.device.artifacts import remove_version
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.lifecycle import ComponentService
from edgekit.local.device.local_deployments import LocalDeploymentsMixin
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.planning import Plan, Planner
from edgekit.local.device.store import ComponentRecord, DeviceState
from edgekit.local.device.supervision import Interrupted


def unexpected_reason(exc: BaseException, thing: str) -> str:
    """The reason reported for an error the device did not foresee."""
    return (
        f"the device could not apply the deployment ({type(exc).__name__}: {exc}); "
        f"the device runtime log has the traceback (`edgekit local device logs {thing}`); "
        "fix the deployment or its components and deploy again"
    )


class DeploymentsMixin(LocalDeploymentsMixin):
    """The deployment part of `DeviceRuntime` (local deployments: `LocalDeploymentsMixin`)."""

    thing_name: str
    layout: DeviceLayout
    cloud: ControlPlane
    groups: list[str]
    group_refresh: float
    poll: float
    planner: Planner
    services: dict[str, ComponentService]
    state: DeviceState
    log: logging.Logger
    _lock: threading.RLock
    _apply_lock: threading.Lock
    _stopping: threading.Event
    _report_event: threading.Event
    _status_ok: bool
    _update_policy: Callable[[str, dict[str, Any]], AbstractContextManager[None]]  # IpcHostMixin

    def _poll_loop(self) -> None:
        next_groups = 0.0
        while not self._stopping.is_set():
            try:
                self._handle_local()  # `edgekit local device deploy`: no control plane needed
            except Interrupted:
                return
            except Exception as exc:  # keep polling whatever one local deployment did
                self.log.exception("unexpected error while handling local deployments: %r", exc)
            try:
                if time.monotonic() >= next_groups:
                    groups = self.cloud.thing_groups()
                    if groups is None:
                        # Keep the groups we knew: a lost IoT registry must not uninstall.
                        self._warn_once(
                            "thing",
                            f"AWS IoT does not know the thing {self.thing_name}; "
                            "register it (`edgekit local device add`) to receive group deployments",
                        )
                    elif groups != self.groups:
                        self.groups = groups
                        self._report_event.set()  # the control plane lists devices by group
                    next_groups = time.monotonic() + self.group_refresh
                if not self._status_ok:
                    self._send_status()
                self._flush_unreported()
                docs = self.cloud.deployments(self.groups)
                self._handle(docs)
            except ControlPlaneUnavailable as exc:
                self._warn_once("poll", f"cannot poll for deployments: {exc}")
            except Interrupted:
                return
            except Exception as exc:  # keep polling whatever one deployment did
                self.log.exception("unexpected error while handling deployments: %r", exc)
            self._stopping.wait(self.poll)

    def _handle(self, docs: list[dict[str, Any]]) -> None:
        with self._apply_lock:
            by_target = {d["targetArn"]: d for d in docs if d.get("targetArn")}
            pending = self.state.pending
            if (
                pending
                and by_target.get(pending["targetArn"], {}).get("deploymentId")
                != pending["deploymentId"]
            ):
                self._finish(
                    pending["deploymentId"],
                    pending["targetArn"],
                    "FAILED",
                    "the device runtime stopped during this deployment and it is no longer the "
                    "latest deployment for its target",
                    ["DEPLOYMENT_FAILURE", "DEPLOYMENT_INTERRUPTED"],
                    [],
                    "FAILED_NO_STATE_CHANGE",
                )
            # Leaving a thing group removes that group's components, as on Greengrass.
            for arn in list(self.state.targets):
                if ":thinggroup/" in arn and arn.rsplit("/", 1)[1] not in self.groups:
                    self._apply_group_removal(arn)
            new = [
                d
                for d in docs
                if d.get("deploymentId")
                and self.state.handled.get(d["targetArn"]) != d["deploymentId"]
            ]
            new.sort(key=lambda d: float(d.get("creationTimestamp") or 0))
            for doc in new:
                if self._stopping.is_set():
                    raise Interrupted()
                self._apply(doc)

    def _put(self, deployment_id: str, body: dict[str, Any]) -> bool:
        local = self._local_meta(deployment_id)
        if local is not None:  # the control plane lists it among the effective deployments
            body = {**body, "local": local}
        try:
            self.cloud.update_deployment(deployment_id, body)
            return True
        except ControlPlaneUnavailable as exc:
            if exc.status in (400, 404):  # refused for good (e.g. deployment deleted): drop it
                self.log.error("control plane refused the status of %s: %s", deployment_id, exc)
                return True
            self._warn_once("put", f"cannot report deployment {deployment_id}: {exc}")
            return False

    def _flush_unreported(self) -> None:
        for deployment_id, body in list(self.state.unreported.items()):
            if self._put(deployment_id, body):
                with self._lock:
                    self.state.unreported.pop(deployment_id, None)
                    self._save()

    def _finish(
        self,
        deployment_id: str,
        target: str,
        status: str,
        reason: str,
        error_stack: list[str],
        error_types: list[str],
        detailed: str,
    ) -> None:
        """Record the outcome (saved first, so a crash cannot lose it), then report it."""
        body = {
            "executionStatus": status,
            "reason": reason,
            "errorStack": error_stack,
            "errorTypes": error_types,
            "detailedDeploymentStatus": detailed,
        }
        with self._lock:
            self.state.handled[target] = deployment_id
            if self.state.pending and self.state.pending.get("deploymentId") == deployment_id:
                self.state.pending = None
            self.state.unreported[deployment_id] = body
            self._save()
        self._send_status()
        log = self.log.info if status == "SUCCEEDED" else self.log.error
        log("deployment %s %s%s", deployment_id, status, f": {reason}" if reason else "")
        if self._put(deployment_id, body):
            with self._lock:
                self.state.unreported.pop(deployment_id, None)
                self._save()
        self._local_finished(deployment_id, body)

    def _apply(self, doc: dict[str, Any]) -> None:
        deployment_id = str(doc["deploymentId"])
        target = str(doc["targetArn"])
        policies = doc.get("deploymentPolicies") or {}
        policy = str(policies.get("failureHandlingPolicy") or "ROLLBACK").upper()
        self.log.info(
            "deployment %s (%s) for %s: %s",
            deployment_id,
            doc.get("deploymentName", ""),
            target,
            ", ".join(
                f"{n} {c.get('componentVersion')}" for n, c in (doc.get("components") or {}).items()
            )
            or "no components",
        )
        resuming = bool(
            self.state.pending and self.state.pending.get("deploymentId") == deployment_id
        )
        if not resuming:
            self._put(deployment_id, {"executionStatus": "QUEUED"})
        self._put(deployment_id, {"executionStatus": "IN_PROGRESS"})
        new_targets = {**self.state.targets, target: doc}
        updates = {
            name: comp.get("configurationUpdate") or {}
            for name, comp in (doc.get("components") or {}).items()
        }
        try:
            plan = self.planner.plan(new_targets, updates, self.state.components)
        except DeploymentFailure as failure:
            self._finish(
                deployment_id,
                target,
                "FAILED",
                str(failure),
                failure.error_stack,
                failure.types,
                "FAILED_NO_STATE_CHANGE",
            )
            return
        except ControlPlaneUnavailable as exc:
            if not exc.refused:
                raise  # not this deployment's fault: try again at the next poll
            self._finish(
                deployment_id,
                target,
                "FAILED",
                f"the control plane refused a request this deployment needs: {exc}",
                ["DEPLOYMENT_FAILURE", "CLOUD_SERVICE_ERROR"],
                ["CLOUD_SERVICE_ERROR"],
                "FAILED_NO_STATE_CHANGE",
            )
            return
        except Interrupted:
            raise
        except (EdgekitError, OSError, ValueError) as exc:
            code = "IO_ERROR" if isinstance(exc, OSError) else "COMPONENT_PACKAGE_LOADING_ERROR"
            self._finish(
                deployment_id,
                target,
                "FAILED",
                f"{type(exc).__name__}: {exc}",
                ["DEPLOYMENT_FAILURE", code],
                [],
                "FAILED_NO_STATE_CHANGE",
            )
            return
        except Exception as exc:  # a bug or a limit: fail this deployment, never wedge the device
            self.log.exception("deployment %s: unexpected error while planning", deployment_id)
            self._finish(
                deployment_id,
                target,
                "FAILED",
                unexpected_reason(exc, self.thing_name),
                ["DEPLOYMENT_FAILURE", "UNKNOWN_ERROR"],
                ["UNKNOWN_ERROR"],
                "FAILED_NO_STATE_CHANGE",
            )
            return
        previous = self.state.copy()
        with self._lock:
            self.state.pending = {"deploymentId": deployment_id, "targetArn": target}
            self._save()
        try:
            with self._update_policy(deployment_id, doc):  # componentUpdatePolicy
                changed = self._switch(plan)
                self._await(plan, changed)
        except DeploymentFailure as failure:
            self._fail_and_recover(deployment_id, target, doc, plan, previous, policy, failure)
            return
        except (OSError, ValueError) as exc:
            failure = DeploymentFailure(
                f"the device could not apply the deployment: {type(exc).__name__}: {exc}",
                codes=["IO_ERROR"],
                types=["DEVICE_ERROR"],
            )
            self._fail_and_recover(deployment_id, target, doc, plan, previous, policy, failure)
            return
        except (Interrupted, ControlPlaneUnavailable):
            raise  # resumed after a restart / at the next poll (state.pending says where)
        except Exception as exc:  # a bug or a limit: fail this deployment, never wedge the device
            self.log.exception("deployment %s: unexpected error while applying", deployment_id)
            failure = DeploymentFailure(
                unexpected_reason(exc, self.thing_name),
                codes=["UNKNOWN_ERROR"],
                types=["UNKNOWN_ERROR"],
            )
            self._fail_and_recover(deployment_id, target, doc, plan, previous, policy, failure)
            return
        with self._lock:
            for name, record in plan.records.items():
                svc = self.services.get(name)
                if svc is not None:  # IPC updates made while the deployment ran
                    record.configuration = copy.deepcopy(svc.spec.configuration)
            self.state.targets = new_targets
            self.state.components = plan.records
            self._save()
        self._cleanup_versions()
        self._finish(deployment_id, target, "SUCCEEDED", "", [], [], "SUCCESSFUL")

    def _fail_and_recover(
        self,
        deployment_id: str,
        target: str,
        doc: dict[str, Any],
        plan: Plan,
        previous: DeviceState,
        policy: str,
        failure: DeploymentFailure,
    ) -> None:
        reason = str(failure)
        if policy == "DO_NOTHING":
            with self._lock:
                self.state.targets = {**self.state.targets, target: doc}
                self.state.components = plan.records
                self._save()
            self._finish(
                deployment_id,
                target,
                "FAILED",
                reason,
                failure.error_stack,
                failure.types,
                "FAILED_ROLLBACK_NOT_REQUESTED",
            )
            return
        self.log.warning("deployment %s failed, rolling back: %s", deployment_id, reason)
        detailed = "FAILED_ROLLBACK_COMPLETE"
        try:
            rollback = Plan({n: copy.deepcopy(r) for n, r in previous.components.items()})
            rollback.specs = self.planner.build_specs(rollback)
            for spec in rollback.specs.values():
                spec.bootstrap = False
            changed = self._switch(rollback, fresh_errors=True)
            self._await(rollback, changed)
            reason += "; rolled back to the previous components"
        except Interrupted:
            raise
        except Exception as second:  # report it whatever it is; the next deployment can repair
            if not isinstance(second, (DeploymentFailure, OSError, ValueError)):
                self.log.exception("deployment %s: unexpected error in rollback", deployment_id)
            detailed = "FAILED_UNABLE_TO_ROLLBACK"
            reason += f"; rollback failed too: {type(second).__name__}: {second}"
        with self._lock:
            self.state.components = previous.components
            self.state.targets = previous.targets
            self._save()
        self._finish(
            deployment_id, target, "FAILED", reason, failure.error_stack, failure.types, detailed
        )

    def _apply_group_removal(self, arn: str) -> None:
        """The thing left a group: keep only what the remaining targets need."""
        self.log.info(
            "thing %s is no longer in %s; removing that group's components", self.thing_name, arn
        )
        targets = {a: d for a, d in self.state.targets.items() if a != arn}
        try:
            plan = self.planner.plan(targets, {}, self.state.components)
            changed = self._switch(plan)
            self._await(plan, changed)
        except DeploymentFailure as exc:
            self.log.error("removing the components of %s failed: %s", arn, exc)
            return
        except (Interrupted, ControlPlaneUnavailable):
            raise
        except Exception:  # tried again at the next poll; never blocks the deployments
            self.log.exception("removing the components of %s failed; retrying later", arn)
            return
        with self._lock:
            self.state.targets = targets
            self.state.handled.pop(arn, None)
            self.state.components = plan.records
            self._save()
        self._cleanup_versions()

    def _live_records(self) -> dict[str, ComponentRecord]:
        """The committed records with each running component's current configuration."""
        records = {n: copy.deepcopy(r) for n, r in self.state.components.items()}
        for name, svc in dict(self.services).items():
            if name in records and records[name].version == svc.spec.version:
                records[name].configuration = copy.deepcopy(svc.spec.configuration)
        return records

    def _reconfigure(self) -> None:
        """After an IPC configuration update: restart what interpolates the changed values."""
        with self._apply_lock:
            plan = Plan(self._live_records())
            try:
                plan.specs = self.planner.build_specs(plan)
                self._switch(plan)
            except (DeploymentFailure, Interrupted, OSError) as exc:
                self.log.error("applying a configuration update failed: %s", exc)

    def _cleanup_versions(self) -> None:
        """Delete artifacts of component versions no longer in use."""
        keep = {(n, r.version) for n, r in self.state.components.items()}
        base = self.layout.packages / "artifacts"
        if not base.is_dir():
            return
        for comp_dir in base.iterdir():
            for version_dir in comp_dir.iterdir() if comp_dir.is_dir() else []:
                if (comp_dir.name, version_dir.name) not in keep:
                    remove_version(
                        version_dir, self.layout.unarchived(comp_dir.name, version_dir.name)
                    )
                    self.log.info("removed artifacts of %s %s", comp_dir.name, version_dir.name)
            with contextlib.suppress(OSError):
                comp_dir.rmdir()
