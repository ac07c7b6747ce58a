"""The rollout's quality gates: what a stage's devices did over the soak window, and verdicts.

Pure functions on plain data (result and health messages, proofs): nothing here talks to
AWS, so the gates are tested table-driven on synthetic messages. ``DeviceWindow`` is one
device over the window (results, defects, errors, latencies, shadow agreement);
``evaluate`` turns the candidate's windows and the current model's (the rest of the fleet)
into one :class:`GateResult` per gate, in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import ConfigurationError
from edgekit.spelling import parameter_text

PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"

#: Gate names, in the order they are evaluated and reported.
PROOF = "proof"
ERROR_RATE = "error_rate"
P95_LATENCY = "p95_latency"
DEFECT_RATE_DELTA = "defect_rate_delta"
SHADOW_AGREEMENT = "shadow_agreement"
GATE_NAMES = (PROOF, ERROR_RATE, P95_LATENCY, DEFECT_RATE_DELTA, SHADOW_AGREEMENT)


@dataclass(frozen=True)
class Gates:
    """Thresholds of a rollout. ``None`` turns a gate off (it reports SKIPPED).

    - ``max_error_rate``: errors / (results + errors) of every candidate device.
    - ``max_p95_ms``: the candidate's p95 latency (all its devices' results pooled), in ms.
    - ``max_p95_ratio``: that p95 over the current model's p95 on the rest of the fleet.
    - ``max_defect_rate_delta``: |candidate defect rate - current model's defect rate|.
    - ``min_agreement``: shadow mode's image-level defect agreement (and detection
      agreement when reported) on every device.
    - ``min_results``: results each device must publish after its deployment to prove it
      inspects (the proof gate), and at least this many over the soak for the rates.
    - ``warmup_results``: each device's first results of a soak window left out of its
      latency (they still count for the rates): a model's first inferences after a
      (re)start are slower (allocation, caches, a neighbour installing), and would make
      the p95 judge the start-up rather than the model.
    """

    max_error_rate: float | None = 0.05
    max_p95_ms: float | None = None
    max_p95_ratio: float | None = 3.0
    max_defect_rate_delta: float | None = 0.2
    min_agreement: float | None = 0.8
    min_results: int = 3
    warmup_results: int = 10

    def __post_init__(self) -> None:
        for name in ("max_error_rate", "max_defect_rate_delta", "min_agreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigurationError(
                    f"{parameter_text(name, value)}: must be between 0 and 1 (gate {name})"
                )
        for name in ("max_p95_ms", "max_p95_ratio"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(
                    f"{parameter_text(name, value)}: must be more than 0 (gate {name})"
                )
        if self.min_results < 1:
            raise ConfigurationError(
                f"{parameter_text('min_results', self.min_results)}: must be at least 1"
            )
        if self.warmup_results < 0:
            raise ConfigurationError(
                f"{parameter_text('warmup_results', self.warmup_results)}: must be 0 or more"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gates:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation as numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(float(v) for v in values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class DeviceWindow:
    """One device over a soak window: what it published and what its health counted."""

    thing: str
    results: int = 0
    defects: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    package_sha256: str | None = None
    health_state: str | None = None
    defect_agreement: float | None = None
    detection_agreement: float | None = None
    images_compared: int = 0

    @property
    def error_rate(self) -> float | None:
        total = self.results + self.errors
        return None if total == 0 else self.errors / total

    @property
    def defect_rate(self) -> float | None:
        return None if self.results == 0 else self.defects / self.results

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies_ms, 95)

    def summary(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "errors": self.errors,
            "defect_rate": _round(self.defect_rate),
            "error_rate": _round(self.error_rate),
            "p95_ms": _round(self.p95_ms),
            "package_sha256": self.package_sha256,
            "health_state": self.health_state,
            "defect_agreement": _round(self.defect_agreement),
            "detection_agreement": _round(self.detection_agreement),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _model_entry(health: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    for entry in health.get("models") or []:
        if isinstance(entry, Mapping) and entry.get("role") == role:
            return entry
    return None


def _errors_of(health: Mapping[str, Any]) -> tuple[str | None, int]:
    """(started_at, errors since start) of the current model; v1 health: skipped images."""
    entry = _model_entry(health, "current")
    if entry is not None:
        counts = entry.get("since_start") or {}
        return health.get("started_at"), int(counts.get("errors") or 0)
    return health.get("started_at"), int(health.get("images_skipped") or 0)


def device_window(
    thing: str,
    results: Iterable[Mapping[str, Any]],
    health_first: Mapping[str, Any] | None,
    health_last: Mapping[str, Any] | None,
    *,
    warmup: int = 0,
) -> DeviceWindow:
    """``thing`` over a window: its ``results`` (already limited to the window, in arrival
    order; the first ``warmup`` of them left out of the latencies) and the errors counted
    between the first and last health message of the window.

    An app that restarted in the window (another ``started_at``) counts the errors of
    the last run only, which is what its counters still hold.
    """
    window = DeviceWindow(thing)
    for index, result in enumerate(results):
        window.results += 1
        window.defects += 1 if result.get("defect") else 0
        total = (result.get("latency_ms") or {}).get("total")
        if index >= warmup and isinstance(total, int | float):
            window.latencies_ms.append(float(total))
    if health_last is not None:
        started, last_errors = _errors_of(health_last)
        first_errors = 0
        if health_first is not None:
            first_started, errors = _errors_of(health_first)
            if first_started == started:
                first_errors = errors
        window.errors = max(0, last_errors - first_errors)
        window.health_state = health_last.get("state")
        current = _model_entry(health_last, "current")
        if current is not None:
            window.package_sha256 = current.get("package_sha256")
        shadow = _model_entry(health_last, "shadow")
        if shadow is not None:
            agreement = (shadow.get("agreement") or {}).get("window") or {}
            window.defect_agreement = agreement.get("defect_agreement")
            window.detection_agreement = agreement.get("detection_agreement")
            window.images_compared = int(agreement.get("images_compared") or 0)
    return window


@dataclass
class GateResult:
    """One gate's verdict with its numbers: ``value`` against ``threshold``."""

    name: str
    verdict: str
    value: float | None = None
    threshold: float | None = None
    detail: str = ""
    devices: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "value": _round(self.value),
            "threshold": self.threshold,
            "detail": self.detail,
            "devices": dict(self.devices),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateResult:
        return cls(
            str(data["name"]),
            str(data["verdict"]),
            data.get("value"),
            data.get("threshold"),
            str(data.get("detail") or ""),
            dict(data.get("devices") or {}),
        )

    def describe(self) -> str:
        """``p95_latency FAIL: 84.1 > 20.0 ms (...)``: the line a report and an error quote."""
        return f"{self.name} {self.verdict}: {self.detail}"


def proof_gate(proofs: Mapping[str, Any]) -> GateResult:
    """Every device of the stage proved it inspects with the candidate (DeviceProof-like:
    ``.state`` PROVEN, ``.reason`` why not)."""
    if not proofs:
        return GateResult(PROOF, FAIL, 0.0, 1.0, "no device in the stage to prove anything")
    failed = {t: p for t, p in proofs.items() if getattr(p, "state", None) != "PROVEN"}
    share = (len(proofs) - len(failed)) / len(proofs)
    devices = {
        t: {"state": getattr(p, "state", None), "reason": getattr(p, "reason", None)}
        for t, p in sorted(proofs.items())
    }
    if failed:
        named = "; ".join(
            f"{t}: {getattr(p, 'state', None)} ({getattr(p, 'reason', None) or 'no reason'})"
            for t, p in sorted(failed.items())
        )
        return GateResult(
            PROOF,
            FAIL,
            share,
            1.0,
            f"{len(failed)} of {len(proofs)} device(s) unproven: {named}",
            devices,
        )
    return GateResult(PROOF, PASS, share, 1.0, f"all {len(proofs)} device(s) proved", devices)


def _pooled(windows: Iterable[DeviceWindow]) -> DeviceWindow:
    pooled = DeviceWindow("*")
    for w in windows:
        pooled.results += w.results
        pooled.defects += w.defects
        pooled.errors += w.errors
        pooled.latencies_ms.extend(w.latencies_ms)
    return pooled


def _short_windows(windows: Mapping[str, DeviceWindow], minimum: int) -> list[str]:
    return sorted(t for t, w in windows.items() if w.results < minimum)


def error_rate_gate(gates: Gates, candidate: Mapping[str, DeviceWindow]) -> GateResult:
    if gates.max_error_rate is None:
        return GateResult(ERROR_RATE, SKIPPED, detail="turned off (max_error_rate=None)")
    rates = {t: w.error_rate for t, w in candidate.items()}
    devices = {t: {"errors": w.errors, "results": w.results} for t, w in candidate.items()}
    silent = sorted(t for t, r in rates.items() if r is None)
    if silent:
        return GateResult(
            ERROR_RATE,
            FAIL,
            None,
            gates.max_error_rate,
            f"no results and no errors over the soak from {', '.join(silent)}",
            devices,
        )
    worst_thing, worst = max(rates.items(), key=lambda kv: (kv[1], kv[0]))
    assert worst is not None
    verdict = FAIL if worst > gates.max_error_rate else PASS
    sign = ">" if verdict == FAIL else "<="
    return GateResult(
        ERROR_RATE,
        verdict,
        worst,
        gates.max_error_rate,
        f"worst {worst:.3f} on {worst_thing} {sign} {gates.max_error_rate:.3f} "
        f"({candidate[worst_thing].errors} errors, {candidate[worst_thing].results} results)",
        devices,
    )


def p95_gate(
    gates: Gates, candidate: Mapping[str, DeviceWindow], baseline: Mapping[str, DeviceWindow]
) -> GateResult:
    if gates.max_p95_ms is None and gates.max_p95_ratio is None:
        return GateResult(P95_LATENCY, SKIPPED, detail="turned off (max_p95_ms and ratio None)")
    devices = {t: {"p95_ms": _round(w.p95_ms)} for t, w in candidate.items()}
    p95 = _pooled(candidate.values()).p95_ms
    if p95 is None:
        return GateResult(
            P95_LATENCY, FAIL, None, gates.max_p95_ms, "no latency reported over the soak", devices
        )
    if gates.max_p95_ms is not None and p95 > gates.max_p95_ms:
        return GateResult(
            P95_LATENCY,
            FAIL,
            p95,
            gates.max_p95_ms,
            f"candidate p95 {p95:.1f} ms > {gates.max_p95_ms:.1f} ms",
            devices,
        )
    current = _pooled(baseline.values()).p95_ms
    if gates.max_p95_ratio is not None and current:
        ratio = p95 / current
        verdict = FAIL if ratio > gates.max_p95_ratio else PASS
        sign = ">" if verdict == FAIL else "<="
        return GateResult(
            P95_LATENCY,
            verdict,
            ratio,
            gates.max_p95_ratio,
            f"candidate p95 {p95:.1f} ms / current {current:.1f} ms = {ratio:.2f} {sign} "
            f"{gates.max_p95_ratio:.2f}",
            devices,
        )
    if gates.max_p95_ms is not None:
        return GateResult(
            P95_LATENCY,
            PASS,
            p95,
            gates.max_p95_ms,
            f"candidate p95 {p95:.1f} ms <= {gates.max_p95_ms:.1f} ms",
            devices,
        )
    return GateResult(
        P95_LATENCY,
        SKIPPED,
        p95,
        None,
        f"candidate p95 {p95:.1f} ms; no current-model latency from the rest of the fleet "
        "to compare with",
        devices,
    )


def defect_rate_gate(
    gates: Gates, candidate: Mapping[str, DeviceWindow], baseline: Mapping[str, DeviceWindow]
) -> GateResult:
    if gates.max_defect_rate_delta is None:
        return GateResult(DEFECT_RATE_DELTA, SKIPPED, detail="turned off")
    devices = {t: {"defect_rate": _round(w.defect_rate)} for t, w in candidate.items()}
    new = _pooled(candidate.values())
    old = _pooled(baseline.values())
    if old.defect_rate is None:
        return GateResult(
            DEFECT_RATE_DELTA,
            SKIPPED,
            None,
            gates.max_defect_rate_delta,
            "no results from the rest of the fleet (current model) over the soak to compare with",
            devices,
        )
    if new.defect_rate is None:
        return GateResult(
            DEFECT_RATE_DELTA,
            FAIL,
            None,
            gates.max_defect_rate_delta,
            "no results from the candidate over the soak",
            devices,
        )
    delta = abs(new.defect_rate - old.defect_rate)
    verdict = FAIL if delta > gates.max_defect_rate_delta else PASS
    sign = ">" if verdict == FAIL else "<="
    return GateResult(
        DEFECT_RATE_DELTA,
        verdict,
        delta,
        gates.max_defect_rate_delta,
        f"candidate {new.defect_rate:.3f} ({new.results} results) vs current "
        f"{old.defect_rate:.3f} ({old.results} results): |delta| {delta:.3f} {sign} "
        f"{gates.max_defect_rate_delta:.3f}",
        devices,
    )


def agreement_gate(gates: Gates, shadow: Mapping[str, DeviceWindow] | None) -> GateResult:
    if shadow is None:
        return GateResult(SHADOW_AGREEMENT, SKIPPED, detail="no shadow stage in this rollout")
    if gates.min_agreement is None:
        return GateResult(SHADOW_AGREEMENT, SKIPPED, detail="turned off (min_agreement=None)")
    devices = {
        t: {
            "defect_agreement": _round(w.defect_agreement),
            "detection_agreement": _round(w.detection_agreement),
            "images_compared": w.images_compared,
        }
        for t, w in shadow.items()
    }
    silent = sorted(t for t, w in shadow.items() if w.defect_agreement is None)
    if silent:
        return GateResult(
            SHADOW_AGREEMENT,
            FAIL,
            None,
            gates.min_agreement,
            f"no shadow agreement reported by {', '.join(silent)}",
            devices,
        )
    scores = {
        t: min(v for v in (w.defect_agreement, w.detection_agreement) if v is not None)
        for t, w in shadow.items()
    }
    worst_thing, worst = min(scores.items(), key=lambda kv: (kv[1], kv[0]))
    verdict = FAIL if worst < gates.min_agreement else PASS
    sign = "<" if verdict == FAIL else ">="
    return GateResult(
        SHADOW_AGREEMENT,
        verdict,
        worst,
        gates.min_agreement,
        f"lowest agreement {worst:.3f} on {worst_thing} {sign} {gates.min_agreement:.3f} "
        f"({shadow[worst_thing].images_compared} images compared)",
        devices,
    )


def evaluate(
    gates: Gates,
    *,
    proofs: Mapping[str, Any],
    candidate: Mapping[str, DeviceWindow],
    baseline: Mapping[str, DeviceWindow],
    shadow: Mapping[str, DeviceWindow] | None = None,
) -> list[GateResult]:
    """Every gate over a stage: proofs, then the soak windows of the candidate's devices
    against the current model's on the rest of the fleet (``baseline``), then shadow."""
    results = [proof_gate(proofs)]
    short = _short_windows(candidate, gates.min_results)
    if short:
        results[0] = GateResult(
            PROOF,
            FAIL,
            results[0].value,
            1.0,
            f"fewer than {gates.min_results} results over the soak from {', '.join(short)}",
            results[0].devices,
        )
    results.append(error_rate_gate(gates, candidate))
    results.append(p95_gate(gates, candidate, baseline))
    results.append(defect_rate_gate(gates, candidate, baseline))
    results.append(agreement_gate(gates, shadow))
    return results


def first_failure(results: Iterable[GateResult]) -> GateResult | None:
    return next((r for r in results if r.failed), None)
