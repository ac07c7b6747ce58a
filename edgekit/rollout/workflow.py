"""``rollout()``: promote a model package through shadow, canary and fleet, gated by the devices.

Each stage deploys, waits until every device of the stage proves it inspects with the
package it should run (`edgekit.deploy.wait_for_deployment` with proof criteria), soaks,
and evaluates the gates (`edgekit.rollout.gates`) on what the devices published over the
soak. A failing gate deploys the previous components again to every device the rollout
changed, waits until they prove the previous package, and ends the rollout ROLLED_BACK
naming the gate and its numbers. The record (`edgekit.rollout.record`) is saved after
every step; running the same rollout again resumes it, or returns it when finished.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.components import build_components, publish_components
from edgekit.deploy import DeploymentResult, wait_for_deployment
from edgekit.deploy.proof import PROVEN, DeviceProof, ProofCollector, ProofCriteria
from edgekit.errors import (
    ConfigurationError,
    DeploymentError,
    DeviceDeploymentError,
    EdgekitError,
    RolloutError,
)
from edgekit.files import sha256_file
from edgekit.package import open_package
from edgekit.progress import progress
from edgekit.rollout import stages as gg
from edgekit.rollout.gates import (
    DeviceWindow,
    GateResult,
    Gates,
    evaluate,
    first_failure,
    proof_gate,
)
from edgekit.rollout.observe import FleetObserver
from edgekit.rollout.outcome import record_in_registry
from edgekit.rollout.record import (
    CANARY,
    FAILED,
    FLEET,
    PROMOTED,
    ROLLED_BACK,
    ROLLING_BACK,
    RolloutRecord,
    Stage,
    find_record,
    now_iso,
    rollout_id,
    window_of,
    write_report,
)
from edgekit.rollout.shadow import run_shadow
from edgekit.settings import Settings
from edgekit.spelling import parameter_text

#: Seconds a stage's devices get to prove the package after its deployment is created.
DEFAULT_TIMEOUT = 300.0


def rollout(
    settings: Settings | None,
    model_package: str | Path,
    *,
    key_dir: str | Path | None = None,
    thing_group: str | None = None,
    canary: int = 1,
    canary_group: str | None = None,
    soak: float = 60.0,
    shadow: bool = False,
    gates: Gates | None = None,
    report: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    model_group: str | None = None,
    work_dir: str | Path | None = None,
) -> RolloutRecord:
    """Roll ``model_package`` out to ``thing_group`` (default Settings.thing_group).

    ``canary``: how many devices of the group take the candidate first (the first ones
    by name), unless ``canary_group`` names a thing group whose members are the canary.
    ``soak``: seconds each stage's devices run before its gates are evaluated.
    ``shadow``: first run the candidate beside the current model on the canary devices.
    ``report``: where to write the report JSON (and ``.html`` beside it when reports exist).
    ``model_group``: the registry group whose version carries the outcome (default
    Settings.model_name). Returns the record: ``status`` PROMOTED or ROLLED_BACK; any
    other error raises (the record keeps the step, and running again resumes it).
    """
    settings = settings or Settings.from_env()
    package = Path(model_package).expanduser().resolve()
    if not package.is_file():
        raise ConfigurationError(
            f"{package}: model package not found; build one with `edgekit package`"
        )
    if canary < 1:
        raise ConfigurationError(
            f"{parameter_text('canary', canary)}: at least one device must take the candidate first"
        )
    if soak < 0 or timeout <= 0:
        name, value, rule = (
            ("soak", soak, "0 seconds or more")
            if soak < 0
            else ("timeout", timeout, "more than 0 seconds")
        )
        raise ConfigurationError(f"{parameter_text(name, value)}: must be {rule}")
    gates = gates or Gates()
    group = thing_group or settings.thing_group
    sha = sha256_file(package)
    options = {
        "canary": canary,
        "canary_group": canary_group,
        "soak": soak,
        "shadow": shadow,
        "gates": gates.to_json(),
    }
    rid = rollout_id(group, sha, options)
    record = find_record(settings, rid)
    if record is None:
        with open_package(package) as opened:
            manifest = opened.manifest
        record = RolloutRecord(
            id=rid,
            thing_group=group,
            canary_group=canary_group or f"{group}-canary-{rid[-8:]}",
            model_package=str(package),
            package_sha256=sha,
            model_name=manifest.name,
            model_version=manifest.version,
            options={
                **options,
                "timeout": timeout,
                "model_group": model_group,
                "key_dir": str(key_dir) if key_dir else None,
            },
            backend=settings.backend,
        )
        record.save(settings)
    if not record.finished:
        runner = Runner(settings, record, gates, timeout, key_dir, work_dir)
        runner.run()
    write_report(record, report)
    return record


class Runner:
    """One run of a rollout's remaining steps over its record."""

    def __init__(
        self,
        settings: Settings,
        record: RolloutRecord,
        gates: Gates,
        timeout: float,
        key_dir: str | Path | None,
        work_dir: str | Path | None,
    ) -> None:
        self.settings = settings
        self.record = record
        self.gates = gates
        self.timeout = timeout
        self.key_dir = key_dir
        self.work = Path(work_dir) if work_dir else Path(settings.home) / "rollouts" / record.id
        self.started = time.monotonic()

    def save(self) -> None:
        self.record.save(self.settings)

    def run(self) -> None:
        record = self.record
        record.error = None
        for stage in record.stages:
            if stage.status == "RUNNING":  # an earlier run died in it: this run starts it again
                stage.status = "INTERRUPTED"
                stage.finished_at = stage.finished_at or now_iso()
        try:
            if record.status == ROLLING_BACK:
                self._rollback(record.gate or "resumed", record.gate_detail or "")
                return
            self._prepare()
            self._publish()
            with FleetObserver(self.settings) as observer:
                self.observer = observer
                if record.options.get("shadow") and not self._passed("shadow"):
                    verdict = run_shadow(self)
                    if verdict is not None:
                        self._rollback(verdict.name, verdict.detail)
                        return
                if not self._passed("canary"):
                    verdict = self._canary()
                    if verdict is not None:
                        self._rollback(verdict.name, verdict.detail)
                        return
                if record.fleet_things and not self._passed("fleet"):
                    verdict = self._fleet()
                    if verdict is not None:
                        self._rollback(verdict.name, verdict.detail)
                        return
                self._leave_canary_group()
                self._finish(PROMOTED)
        except EdgekitError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            if record.status not in (ROLLING_BACK,):
                record.status = FAILED
            self.save()
            raise

    def _passed(self, name: str) -> bool:
        stage = self.record.stage(name)
        return stage is not None and stage.status == "PASSED"

    # --- preparation -----------------------------------------------------------------------

    def _prepare(self) -> None:
        record, settings = self.record, self.settings
        if record.previous:
            return
        members = gg.group_members(settings, record.thing_group)
        named = record.options.get("canary_group")
        if named:
            canary = gg.group_members(settings, named)
            if not canary:
                raise ConfigurationError(
                    f"canary thing group {named} has no things; add the canary devices to it"
                )
        else:
            count = int(record.options["canary"])
            if len(members) < count:
                raise ConfigurationError(
                    f"thing group {record.thing_group} has {len(members)} device(s), fewer than "
                    f"--canary {count}; add devices or lower --canary"
                )
            canary = members[:count]
        previous = gg.latest_deployment(settings, record.thing_group)
        if previous is None or not previous.get("components"):
            raise ConfigurationError(
                f"thing group {record.thing_group} has no deployment yet: a rollout compares the "
                "candidate with the model the fleet runs and rolls back to it; deploy a first "
                "model with `edgekit deploy --wait` (or notebook 03)"
            )
        components = dict(previous["components"])
        model_version = components.get(settings.model_component, {}).get("componentVersion")
        if model_version is None:
            raise ConfigurationError(
                f"the latest deployment {previous.get('deploymentId')} to {record.thing_group} "
                f"has no {settings.model_component}; deploy edgekit's components first"
            )
        package = gg.package_of(settings, settings.model_component, str(model_version))
        record.canary_things = sorted(canary)
        record.fleet_things = sorted(set(members) - set(canary))
        record.previous = {
            "deployment_id": previous.get("deploymentId"),
            "components": {n: str(s.get("componentVersion")) for n, s in components.items()},
            "specs": components,
            "model": package,
        }
        self.save()

    def _publish(self) -> None:
        record, settings = self.record, self.settings
        if record.candidate.get("components"):
            return
        started = time.monotonic()
        key_dir = record.options.get("key_dir")
        built = build_components(
            settings,
            out_dir=self.work / "build",
            model_package=record.model_package,
            key_dir=key_dir,
        )
        published = publish_components(settings, built)
        record.candidate = {
            "components": {c.name: published[c.name] for c in built},
            "model": {
                "name": record.model_name,
                "version": record.model_version,
                "package_sha256": record.package_sha256,
            },
        }
        record.timings["publish_s"] = round(time.monotonic() - started, 2)
        self.save()

    # --- one deployment, proven -------------------------------------------------------------

    def criteria(self, model: dict[str, Any]) -> ProofCriteria:
        return ProofCriteria(
            package_sha256=str(model["package_sha256"]),
            model_name=str(model["name"]),
            model_version=str(model["version"]),
            min_results=self.gates.min_results,
            since=datetime.now(UTC),
        )

    def deploy_and_prove(
        self,
        stage: Stage,
        group: str,
        specs: dict[str, Any],
        model: dict[str, Any],
        things: list[str],
        before_wait: Iterable[Any] = (),
    ) -> dict[str, DeviceProof]:
        """Deploy ``specs`` to ``group``; every one of ``things`` PROVEN or FAILED.

        ``before_wait``: callables run after the deployment is created (e.g. moving
        devices into the group, which must follow the deployment on Greengrass).
        """
        criteria = self.criteria(model)
        with ProofCollector(self.settings, criteria, things) as collector:
            result = gg.create_stage_deployment(
                self.settings,
                group,
                specs,
                f"edgekit-rollout-{self.record.id}-{stage.name}",
                len(things),
            )
            stage.deployment_id = result.deployment_id
            self.save()
            for step in before_wait:
                step()
            proofs = self._wait(result, collector, things)
        stage.proven_at = now_iso()
        for thing, proof in proofs.items():
            # Updated, not replaced: the shadow and soak numbers of earlier stages stay.
            self.record.devices.setdefault(thing, {}).update(
                {
                    "package_sha256": proof.package_sha256,
                    "results": proof.results,
                    "errors": proof.errors,
                    "p95_ms": proof.p95_ms,
                    "state": proof.state,
                    "reason": proof.reason,
                    "stage": stage.name,
                    "greengrass_status": proof.greengrass_status,
                }
            )
        self.save()
        return proofs

    def _wait(
        self, result: DeploymentResult, collector: ProofCollector, things: list[str]
    ) -> dict[str, DeviceProof]:
        """Every one of ``things`` PROVEN or FAILED (at the timeout, silent ones FAILED)."""
        deadline = time.monotonic() + self.timeout
        unlisted = ""
        while True:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                wait_for_deployment(self.settings, result, timeout=remaining, collector=collector)
            except DeviceDeploymentError as exc:
                # A verdict, not an error of the rollout: the proof gate names each failure.
                return {t: exc.devices.get(t) or collector.proof(t) for t in things}
            except DeploymentError as exc:
                # No core device listed in the group yet: on AWS, ListCoreDevices lists a
                # device under a group only once it succeeded a deployment to it. The devices
                # are known by name here: keep waiting for them until the stage's deadline.
                unlisted = f"; {exc}"
            proofs = {t: collector.proof(t) for t in things}
            pending = [t for t, p in proofs.items() if p.state not in (PROVEN, "FAILED")]
            if not pending or time.monotonic() >= deadline:
                for thing in pending:
                    collector.fail(
                        thing,
                        f"not proven within {self.timeout:.0f} s: the device never reported "
                        f"deployment {result.deployment_id} in {result.target_arn}{unlisted}",
                    )
                return {t: collector.proof(t) for t in things}
            time.sleep(1.0)  # a device that joined the group late: wait for it too

    def soak(self, stage: Stage) -> tuple[float, float]:
        """Sleep the soak window; its (start, end) as time.time()."""
        seconds = float(self.record.options.get("soak") or 0)
        start = time.time()
        stage.soak_started_at = now_iso()
        self.save()
        with progress(total=round(seconds), desc=f"soak {stage.name}", unit="s") as bar:
            end = start + seconds
            while (left := end - time.time()) > 0:
                time.sleep(min(1.0, left))
                bar.n = round(seconds - max(0.0, end - time.time()))
                bar.refresh()
        return start, time.time()

    # --- stages -----------------------------------------------------------------------------

    def _canary(self) -> GateResult | None:
        record, settings = self.record, self.settings
        record.status = CANARY
        stage = Stage("canary", target=record.canary_group, things=list(record.canary_things))
        record.stages.append(stage)
        gg.ensure_group(settings, record.canary_group, record.thing_group)
        in_fleet = set(gg.group_members(settings, record.thing_group))
        gg.move_things(
            settings,
            [t for t in record.canary_things if t in in_fleet],
            record.thing_group,
            record.canary_group,
        )
        specs = gg.candidate_specs(
            settings, record.candidate["components"], record.previous["specs"]
        )
        t0 = time.monotonic()
        proofs = self.deploy_and_prove(
            stage, record.canary_group, specs, record.candidate["model"], record.canary_things
        )
        record.timings["canary_proven_s"] = round(time.monotonic() - t0, 2)
        # The current model on the rest of the fleet over the same window is the baseline.
        return self._judge(stage, proofs, record.canary_things, record.fleet_things)

    def _fleet(self) -> GateResult | None:
        record, settings = self.record, self.settings
        record.status = FLEET
        everyone = sorted(set(record.fleet_things) | set(record.canary_things))
        stage = Stage("fleet", target=record.thing_group, things=everyone)
        record.stages.append(stage)
        specs = gg.candidate_specs(
            settings, record.candidate["components"], record.previous["specs"]
        )
        t0 = time.monotonic()
        proofs = self.deploy_and_prove(
            stage,
            record.thing_group,
            specs,
            record.candidate["model"],
            everyone,
            before_wait=[self._rejoin_fleet],
        )
        record.timings["fleet_proven_s"] = round(time.monotonic() - t0, 2)
        # The fleet's own devices before (the canary's soak) and after: same devices, two models.
        before = window_of(record.stage("canary"))
        return self._judge(stage, proofs, record.fleet_things, record.fleet_things, before)

    def _rejoin_fleet(self) -> None:
        """Canary devices join the fleet group again. Called once the fleet group's latest
        deployment pins what the canary group pins (the candidate after the fleet stage's
        deployment, the previous versions after a canary rollback): a device is never in two
        groups that pin different versions."""
        settings, record = self.settings, self.record
        in_fleet = set(gg.group_members(settings, record.thing_group))
        for thing in record.canary_things:
            if thing not in in_fleet:
                gg.add_thing(settings, thing, record.thing_group)

    def _leave_canary_group(self) -> None:
        """Canary devices leave the canary group once the fleet group's latest deployment
        is done on them, so leaving changes nothing they run."""
        settings, record = self.settings, self.record
        in_canary = [
            t for t in gg.group_members(settings, record.canary_group) if t in record.canary_things
        ]
        if not in_canary:
            return
        gg.wait_effective(settings, in_canary, record.thing_group, self.timeout)
        for thing in in_canary:
            gg.remove_thing(settings, thing, record.canary_group)

    def _judge(
        self,
        stage: Stage,
        proofs: dict[str, DeviceProof],
        candidates: list[str],
        baseline: list[str],
        baseline_window: tuple[float, float] | None = None,
    ) -> GateResult | None:
        """Proof first (no soak for a stage that did not prove itself), then soak and gates:
        ``candidates`` over the soak against ``baseline`` devices running the previous model
        (over ``baseline_window``, default the same soak window)."""
        record = self.record
        first = proof_gate(proofs)
        if first.failed:
            return self.verdict(stage, [first])
        start, end = self.soak(stage)
        new, old = record.candidate["model"], record.previous["model"]
        warmup = self.gates.warmup_results
        windows = self.observer.windows(
            candidates, start, end, new["package_sha256"], new["version"], warmup
        )
        b_start, b_end = baseline_window or (start, end)
        base = self.observer.windows(
            baseline, b_start, b_end, old.get("package_sha256"), old.get("version"), warmup
        )
        results = evaluate(self.gates, proofs=proofs, candidate=windows, baseline=base)
        self._record_windows(windows, base)
        return self.verdict(stage, results)

    def _record_windows(
        self, windows: dict[str, DeviceWindow], base: dict[str, DeviceWindow]
    ) -> None:
        for thing, window in {**base, **windows}.items():
            row = self.record.devices.setdefault(thing, {"state": "CURRENT"})
            row["soak"] = window.summary()
            if thing in base and thing not in windows:
                row.setdefault("package_sha256", window.package_sha256)
                row.setdefault("results", window.results)
                row.setdefault("errors", window.errors)
                row.setdefault("p95_ms", window.p95_ms)

    def verdict(self, stage: Stage, results: list[GateResult]) -> GateResult | None:
        stage.gates = [r.to_json() for r in results]
        failed = first_failure(results)
        stage.status = "FAILED" if failed else "PASSED"
        stage.finished_at = now_iso()
        stage.detail = failed.describe() if failed else "every gate passed"
        self.save()
        return failed

    # --- the end ----------------------------------------------------------------------------

    def _rollback(self, gate: str, detail: str) -> None:
        record, settings = self.record, self.settings
        record.status = ROLLING_BACK
        record.gate = gate
        record.gate_detail = detail
        self.save()
        t0 = time.monotonic()
        specs = gg.rollback_specs(settings, record.previous["specs"])
        model = record.previous["model"]
        if not model.get("package_sha256"):
            raise RolloutError(
                f"rollout {record.id}: the previous model component has no package digest to "
                "prove the rollback with; roll back by hand with `edgekit deploy --components`"
            )
        fleet = record.stage("fleet")
        targets: list[tuple[str, list[str]]] = []
        if fleet is not None and fleet.deployment_id:
            # Everyone runs the fleet group's deployment: the canary devices leave their group
            # (which pins the candidate too) before the fleet group pins the previous versions.
            self._rejoin_fleet()
            self._leave_canary_group()
            everyone = sorted(set(record.fleet_things) | set(record.canary_things))
            targets.append((record.thing_group, everyone))
        else:
            targets.append((record.canary_group, list(record.canary_things)))
        for group, things in targets:
            stage = Stage("rollback", target=group, things=things)
            record.stages.append(stage)
            proofs = self.deploy_and_prove(stage, group, specs, model, things)
            verdict = proof_gate(proofs)
            stage.gates = [verdict.to_json()]
            stage.finished_at = now_iso()
            if verdict.failed:
                stage.status = "FAILED"
                self.save()
                raise RolloutError(
                    f"rollout {record.id}: gate {gate} failed ({detail}) and the rollback to "
                    f"{model.get('name')} {model.get('version')} did not prove itself: "
                    f"{verdict.detail}; `edgekit rollout status {record.id}` shows the devices"
                )
            stage.status = "PASSED"
            self.save()
        for stage in record.stages:
            if stage.name in ("canary", "fleet", "shadow") and stage.status == "PASSED":
                stage.status = "ROLLED_BACK"
        self._rejoin_fleet()
        self._leave_canary_group()
        record.timings["rollback_s"] = round(time.monotonic() - t0, 2)
        self._finish(ROLLED_BACK)

    def _finish(self, status: str) -> None:
        record = self.record
        record.status = status
        record.finished_at = now_iso()
        record.timings["total_s"] = round(
            record.timings.get("total_s", 0.0) + time.monotonic() - self.started, 2
        )
        if status == PROMOTED:
            record.gate = None
            record.gate_detail = None
        named = record.options.get("canary_group")
        if named:  # the user's canary group gets its devices back, pinning what the fleet runs
            gg.restore_group(
                self.settings,
                named,
                record.thing_group,
                record.canary_things,
                f"edgekit-rollout-{record.id}-restore",
            )
        record.registry = record_in_registry(self.settings, record)
        self.save()
