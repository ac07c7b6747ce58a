"""The shadow stage: the candidate runs beside the current model on the canary devices.

The candidate's package goes out as a second model component (``<model component>.shadow``)
next to the versions the fleet runs, and the inference app is told to run it in shadow
(``ShadowPackagePath``: the shadow component's unpacked package, relative to the nucleus's
work folder). The app acts only on the current model; its health reports the shadow's
latency and its agreement with the current model, which the gates judge: agreement, the
shadow's error rate, and its p95 latency against the current model's on the same devices.

A candidate signed with another key than the one the fleet's agent trusts could not load
beside the current model, so the stage's deployment also merges the candidate's public key
into the agent's ``AdditionalPublicKeys`` (the agent then trusts both keys, and reports which
one verified each model); every later stage and every rollback resets it
(:data:`edgekit.rollout.stages.AGENT_RESET`).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgekit import clients
from edgekit.components import build_components, publish_components
from edgekit.components.publish import account_id, component_arn
from edgekit.deploy.expected import stored_recipe
from edgekit.errors import ConfigurationError, PackageError, RolloutError
from edgekit.package.keys import fingerprint
from edgekit.rollout import stages as gg
from edgekit.rollout.gates import (
    ERROR_RATE,
    FAIL,
    P95_LATENCY,
    PASS,
    SKIPPED,
    GateResult,
    agreement_gate,
    proof_gate,
)
from edgekit.rollout.record import Stage
from edgekit.settings import Settings

if TYPE_CHECKING:
    from edgekit.rollout.workflow import Runner

log = logging.getLogger(__name__)

SHADOW_SUFFIX = ".shadow"
#: The inference app's configuration keys of shadow mode (edgekit.edge.config).
SHADOW_KEYS = ("ShadowPackagePath", "ShadowModelName")
#: The agent's configuration key of the extra public keys it trusts (a PEM bundle).
TRUST_KEY = "AdditionalPublicKeys"


def shadow_component(settings: Settings) -> str:
    return settings.model_component + SHADOW_SUFFIX


def _merge(spec: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Merge ``values`` into ``spec``'s configuration update, and reset none of them."""
    update = spec.setdefault("configurationUpdate", {})
    merge = json.loads(update.get("merge") or "{}")
    merge.update(values)
    update["merge"] = json.dumps(merge)
    update["reset"] = [r for r in update.get("reset") or [] if r.lstrip("/") not in values]


def shadow_specs(
    settings: Settings,
    previous: Mapping[str, Any],
    shadow_version: str,
    *,
    trust_pem: str | None = None,
) -> dict[str, Any]:
    """The previous deployment plus the shadow model component, and the app in shadow mode.

    ``trust_pem``: the candidate's public key when the fleet's agent does not trust it; the
    agent then also trusts it (``AdditionalPublicKeys``) for the stage.
    """
    specs = gg.rollback_specs(settings, previous)
    if trust_pem:
        agent = specs.get(settings.agent_component)
        if agent is None:
            raise ConfigurationError(
                f"the previous deployment has no {settings.agent_component}, so no agent can "
                "be told to trust the candidate's key; deploy edgekit's components first"
            )
        _merge(agent, {TRUST_KEY: trust_pem})
    name = shadow_component(settings)
    specs[name] = {"componentVersion": shadow_version}
    app = specs.setdefault(settings.inference_component, {})
    _merge(app, {"ShadowPackagePath": f"{name}/package", "ShadowModelName": ""})
    return specs


def agent_public_key(settings: Settings, spec: Mapping[str, Any] | None) -> str:
    """The PEM public key an agent component spec makes the agent verify with: the spec's
    merged ``PublicKey``, else its version's ``DefaultConfiguration.PublicKey``."""
    if not spec or not spec.get("componentVersion"):
        raise ConfigurationError(
            f"no {settings.agent_component} version in the deployment; deploy edgekit's "
            "components first"
        )
    merge = json.loads(((spec.get("configurationUpdate") or {}).get("merge")) or "{}")
    pem = merge.get("PublicKey") if isinstance(merge, Mapping) else None
    arn = component_arn(
        settings, account_id(settings), settings.agent_component, str(spec["componentVersion"])
    )
    if not pem:
        recipe = stored_recipe(clients.client("greengrassv2", settings), arn)
        defaults = (recipe.get("ComponentConfiguration") or {}).get("DefaultConfiguration") or {}
        pem = defaults.get("PublicKey")
    if not pem:
        raise RolloutError(f"{arn}: no PublicKey in its configuration; publish the agent again")
    return str(pem)


def candidate_trust(runner: Runner) -> str | None:
    """The candidate's public key PEM when the fleet's agent does not trust it, else None."""
    record, settings = runner.record, runner.settings
    agent = settings.agent_component
    version = (record.candidate.get("components") or {}).get(agent)
    candidate = agent_public_key(settings, {"componentVersion": version} if version else None)
    fleet = agent_public_key(settings, (record.previous.get("specs") or {}).get(agent))
    try:
        new, old = fingerprint(candidate.encode()), fingerprint(fleet.encode())
    except PackageError as exc:
        raise RolloutError(f"the agent's PublicKey is not a PEM public key: {exc}") from exc
    if new == old:
        return None
    log.info("the candidate is signed with key %s, the fleet trusts %s: trusting both", new, old)
    return candidate


def publish_shadow(runner: Runner) -> str:
    """Build and publish the candidate as the shadow model component; its version."""
    record = runner.record
    known = record.candidate.get("shadow_component")
    if known:
        return str(known)
    settings = runner.settings.replace(model_component=shadow_component(runner.settings))
    built = build_components(
        settings,
        out_dir=runner.work / "shadow",
        model_package=record.model_package,
        key_dir=record.options.get("key_dir"),
        names=[settings.model_component],
    )
    version = publish_components(settings, built)[settings.model_component]
    record.candidate["shadow_component"] = version
    runner.save()
    return version


def _entry(health: Mapping[str, Any] | None, role: str) -> Mapping[str, Any]:
    for entry in (health or {}).get("models") or []:
        if isinstance(entry, Mapping) and entry.get("role") == role:
            return entry
    return {}


def shadow_latency_gate(runner: Runner, things: list[str]) -> GateResult:
    """The shadow's window p95 against the current model's on the same devices (health)."""
    gates = runner.gates
    devices: dict[str, Any] = {}
    worst: tuple[float, str] | None = None
    for thing in things:
        health = runner.observer.latest_health(thing)
        cur = ((_entry(health, "current").get("window") or {}).get("latency_ms") or {}).get("p95")
        new = ((_entry(health, "shadow").get("window") or {}).get("latency_ms") or {}).get("p95")
        devices[thing] = {"current_p95_ms": cur, "shadow_p95_ms": new}
        if new is None:
            return GateResult(
                P95_LATENCY,
                FAIL,
                None,
                gates.max_p95_ms,
                f"no shadow latency in the health of {thing}",
                devices,
            )
        if gates.max_p95_ms is not None and new > gates.max_p95_ms:
            return GateResult(
                P95_LATENCY,
                FAIL,
                new,
                gates.max_p95_ms,
                f"shadow p95 {new:.1f} ms on {thing} > {gates.max_p95_ms:.1f} ms",
                devices,
            )
        if gates.max_p95_ratio is not None and cur:
            ratio = float(new) / float(cur)
            if worst is None or ratio > worst[0]:
                worst = (ratio, thing)
    if worst is None:
        return GateResult(
            P95_LATENCY,
            SKIPPED if gates.max_p95_ms is None else PASS,
            detail="shadow latency within limits (no ratio to compare)",
            devices=devices,
        )
    ratio, thing = worst
    verdict = FAIL if gates.max_p95_ratio is not None and ratio > gates.max_p95_ratio else PASS
    return GateResult(
        P95_LATENCY,
        verdict,
        ratio,
        gates.max_p95_ratio,
        f"worst shadow/current p95 ratio {ratio:.2f} on {thing} "
        f"({'>' if verdict == FAIL else '<='} {gates.max_p95_ratio})",
        devices,
    )


def shadow_error_gate(runner: Runner, things: list[str]) -> GateResult:
    gates = runner.gates
    if gates.max_error_rate is None:
        return GateResult(ERROR_RATE, SKIPPED, detail="turned off")
    devices: dict[str, Any] = {}
    worst = (0.0, "")
    for thing in things:
        window = _entry(runner.observer.latest_health(thing), "shadow").get("window") or {}
        errors, done = int(window.get("errors") or 0), int(window.get("results_published") or 0)
        rate = errors / (errors + done) if errors + done else 0.0
        devices[thing] = {"errors": errors, "frames": done}
        worst = max(worst, (rate, thing))
    verdict = FAIL if worst[0] > gates.max_error_rate else PASS
    return GateResult(
        ERROR_RATE,
        verdict,
        worst[0],
        gates.max_error_rate,
        f"worst shadow error rate {worst[0]:.3f} on {worst[1] or '-'}",
        devices,
    )


def run_shadow(runner: Runner) -> GateResult | None:
    """The shadow stage on the canary devices; the failing gate, or None when all passed."""
    record, settings = runner.record, runner.settings
    stage = Stage("shadow", target=record.canary_group, things=list(record.canary_things))
    record.stages.append(stage)
    version = publish_shadow(runner)
    gg.ensure_group(settings, record.canary_group, record.thing_group)
    in_fleet = set(gg.group_members(settings, record.thing_group))
    gg.move_things(
        settings,
        [t for t in record.canary_things if t in in_fleet],
        record.thing_group,
        record.canary_group,
    )
    specs = shadow_specs(
        settings,
        copy.deepcopy(record.previous["specs"]),
        version,
        trust_pem=candidate_trust(runner),
    )
    # The devices still act on the current model: that is what they must prove.
    proofs = runner.deploy_and_prove(
        stage, record.canary_group, specs, record.previous["model"], record.canary_things
    )
    results = [proof_gate(proofs)]
    if not results[0].failed:
        start, end = runner.soak(stage)
        windows = runner.observer.windows(record.canary_things, start, end)
        for thing, window in windows.items():
            row = record.devices.setdefault(thing, {})
            row["shadow"] = window.summary()
        results += [
            shadow_error_gate(runner, record.canary_things),
            shadow_latency_gate(runner, record.canary_things),
            agreement_gate(runner.gates, windows),
        ]
    return runner.verdict(stage, results)
