"""The gates, table-driven on synthetic result and health messages and proofs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from edgekit.deploy.proof import DeviceProof
from edgekit.errors import ConfigurationError
from edgekit.rollout.gates import (
    DEFECT_RATE_DELTA,
    ERROR_RATE,
    FAIL,
    P95_LATENCY,
    PASS,
    PROOF,
    SHADOW_AGREEMENT,
    SKIPPED,
    DeviceWindow,
    Gates,
    device_window,
    evaluate,
    first_failure,
    percentile,
)

SHA = "a" * 64


def result(defect: bool = False, total: float = 10.0) -> dict[str, Any]:
    return {
        "thing_name": "t",
        "defect": defect,
        "latency_ms": {"preprocess": 1.0, "inference": total - 1.0, "total": total},
        "model": {"name": "m", "version": "1.0.0", "package_sha256": SHA},
    }


def health(errors: int, started: str = "s1", shadow: dict | None = None) -> dict[str, Any]:
    models: list[dict[str, Any]] = [
        {"role": "current", "package_sha256": SHA, "since_start": {"errors": errors}}
    ]
    if shadow is not None:
        models.append({"role": "shadow", "agreement": {"window": shadow}})
    return {"started_at": started, "state": "running", "models": models}


def window(
    thing: str, n: int, *, defects: int = 0, errors: int = 0, latency: float = 10.0
) -> DeviceWindow:
    results = [result(i < defects, latency) for i in range(n)]
    return device_window(thing, results, health(0), health(errors))


def proven(*things: str) -> dict[str, DeviceProof]:
    return {t: DeviceProof(t, "SUCCEEDED", SHA, state="PROVEN") for t in things}


@dataclass
class Case:
    id: str
    gate: str
    verdict: str
    candidate: dict[str, DeviceWindow]
    baseline: dict[str, DeviceWindow]
    gates: Gates = Gates()
    proofs: dict[str, DeviceProof] | None = None
    shadow: dict[str, DeviceWindow] | None = None
    detail: str = ""


def _shadow(thing: str, defect: float | None, detection: float | None) -> DeviceWindow:
    w = DeviceWindow(thing)
    w.defect_agreement, w.detection_agreement, w.images_compared = defect, detection, 40
    return w


GOOD = {"c1": window("c1", 20)}
BASE = {"f1": window("f1", 20), "f2": window("f2", 20)}
CASES = [
    Case("all-pass-proof", PROOF, PASS, GOOD, BASE),
    Case(
        "unproven-device",
        PROOF,
        FAIL,
        GOOD,
        BASE,
        proofs={**proven("c1"), "c2": DeviceProof("c2", "FAILED", state="FAILED", reason="BROKEN")},
        detail="c2: FAILED (BROKEN)",
    ),
    Case(
        "too-few-results-over-soak",
        PROOF,
        FAIL,
        {"c1": window("c1", 2)},
        BASE,
        detail="fewer than 3 results",
    ),
    Case("error-rate-ok", ERROR_RATE, PASS, {"c1": window("c1", 99, errors=1)}, BASE),
    Case(
        "error-rate-high",
        ERROR_RATE,
        FAIL,
        {"c1": window("c1", 90, errors=10)},
        BASE,
        detail="worst 0.100 on c1 > 0.050",
    ),
    Case("error-rate-off", ERROR_RATE, SKIPPED, GOOD, BASE, gates=Gates(max_error_rate=None)),
    Case(
        "p95-absolute-fails",
        P95_LATENCY,
        FAIL,
        {"c1": window("c1", 20, latency=50.0)},
        BASE,
        gates=Gates(max_p95_ms=20.0),
        detail="50.0 ms > 20.0 ms",
    ),
    Case(
        "p95-absolute-passes-ratio-too", P95_LATENCY, PASS, GOOD, BASE, gates=Gates(max_p95_ms=20.0)
    ),
    Case(
        "p95-ratio-fails",
        P95_LATENCY,
        FAIL,
        {"c1": window("c1", 20, latency=40.0)},
        BASE,
        gates=Gates(max_p95_ratio=2.0),
        detail="= 4.00 > 2.00",
    ),
    Case(
        "p95-ratio-passes",
        P95_LATENCY,
        PASS,
        {"c1": window("c1", 20, latency=15.0)},
        BASE,
        gates=Gates(max_p95_ratio=2.0),
    ),
    Case("p95-ratio-no-baseline", P95_LATENCY, SKIPPED, GOOD, {}, gates=Gates(max_p95_ratio=2.0)),
    Case(
        "defect-delta-fails",
        DEFECT_RATE_DELTA,
        FAIL,
        {"c1": window("c1", 20, defects=20)},
        BASE,
        detail="candidate 1.000 (20 results) vs current 0.000",
    ),
    Case("defect-delta-passes", DEFECT_RATE_DELTA, PASS, {"c1": window("c1", 20, defects=2)}, BASE),
    Case("defect-delta-no-fleet", DEFECT_RATE_DELTA, SKIPPED, GOOD, {}),
    Case("no-shadow-stage", SHADOW_AGREEMENT, SKIPPED, GOOD, BASE),
    Case(
        "shadow-agrees", SHADOW_AGREEMENT, PASS, GOOD, BASE, shadow={"c1": _shadow("c1", 0.95, 0.9)}
    ),
    Case(
        "shadow-detections-disagree",
        SHADOW_AGREEMENT,
        FAIL,
        GOOD,
        BASE,
        shadow={"c1": _shadow("c1", 0.95, 0.5)},
        detail="lowest agreement 0.500 on c1",
    ),
    Case(
        "shadow-silent",
        SHADOW_AGREEMENT,
        FAIL,
        GOOD,
        BASE,
        shadow={"c1": _shadow("c1", None, None)},
        detail="no shadow agreement",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gate_table(case: Case) -> None:
    proofs = case.proofs if case.proofs is not None else proven(*case.candidate)
    results = evaluate(
        case.gates,
        proofs=proofs,
        candidate=case.candidate,
        baseline=case.baseline,
        shadow=case.shadow,
    )
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == [
        PROOF,
        ERROR_RATE,
        P95_LATENCY,
        DEFECT_RATE_DELTA,
        SHADOW_AGREEMENT,
    ]
    got = by_name[case.gate]
    assert got.verdict == case.verdict, got.describe()
    assert case.detail in got.detail
    assert got.to_json()["name"] == case.gate


def test_first_failure_is_the_first_in_order() -> None:
    results = evaluate(
        Gates(max_p95_ms=1.0),
        proofs=proven("c1"),
        candidate={"c1": window("c1", 20, defects=20)},
        baseline=BASE,
    )
    failed = first_failure(results)
    assert failed is not None and failed.name == P95_LATENCY
    assert failed.describe().startswith("p95_latency FAIL: candidate p95 10.0 ms > 1.0 ms")


def test_window_counts_errors_of_the_last_run_after_a_restart() -> None:
    w = device_window("t", [result()] * 5, health(7, "run1"), health(2, "run2"))
    assert (w.results, w.errors, w.package_sha256, w.health_state) == (5, 2, SHA, "running")
    same = device_window("t", [], health(7), health(9))
    assert same.errors == 2 and same.error_rate == 1.0


def test_warmup_results_leave_the_latency_but_count_for_the_rates() -> None:
    slow_start = [result(True, 500.0)] * 3 + [result(False, 10.0)] * 17
    w = device_window("t", slow_start, None, None, warmup=3)
    assert (w.results, w.defects, w.p95_ms) == (20, 3, 10.0)
    assert device_window("t", slow_start, None, None).p95_ms == 500.0


def test_window_v1_health_counts_skipped_images() -> None:
    w = device_window("t", [result()], {"images_skipped": 1}, {"images_skipped": 4})
    assert w.errors == 3


def test_window_reads_shadow_agreement() -> None:
    last = health(
        0, shadow={"defect_agreement": 0.9, "detection_agreement": 0.8, "images_compared": 12}
    )
    w = device_window("t", [], None, last)
    assert (w.defect_agreement, w.detection_agreement, w.images_compared) == (0.9, 0.8, 12)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 95, None), ([5.0], 95, 5.0), ([1, 2, 3, 4, 5], 50, 3.0), (list(range(101)), 95, 95.0)],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_error_rate": 1.5}, "max_error_rate=1.5"),
        ({"max_p95_ms": 0}, "max_p95_ms=0"),
        ({"min_results": 0}, "min_results=0"),
        ({"min_agreement": -0.1}, "min_agreement=-0.1"),
    ],
)
def test_gates_refuse_bad_thresholds(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Gates(**kwargs)


def test_gates_round_trip_json() -> None:
    gates = Gates(max_p95_ms=12.5, min_results=5)
    assert Gates.from_json(gates.to_json()) == gates
