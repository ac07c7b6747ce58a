"""A rollout's stages and gates as tables: each gate with its numbers and its verdict.

Reads the rollout report JSON (``{"status", "gate", "stages": [...], "devices": {...}}``)
without insisting on more than those keys. Gates are found in the report's ``gates`` and
in each stage's ``gates``, as a list of dicts or a ``{name: dict | bool}`` map. A gate's
verdict is its ``passed``/``ok`` flag or its ``verdict``/``status`` text; the gate the
report names as the failing one is FAIL even without either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from edgekit.reports.markup import Markup, el, number, seconds, status_badge, table

_NAME_KEYS = ("name", "gate", "id")
_VALUE_KEYS = ("value", "observed", "actual", "measured")
_LIMIT_KEYS = {
    "limit": "",
    "threshold": "",
    "max": "≤ ",
    "maximum": "≤ ",
    "min": "≥ ",
    "minimum": "≥ ",
}
_VERDICT_KEYS = ("verdict", "status", "result", "outcome")
#: Which way a threshold points, for the gates edgekit.rollout evaluates (a gate may say
#: so itself with ``op``).
_DIRECTION = {
    "proof": "≥ ",
    "error_rate": "≤ ",
    "p95_latency": "≤ ",
    "defect_rate_delta": "≤ ",
    "shadow_agreement": "≥ ",
}
_DETAIL_KEYS = ("detail", "reason", "message", "why")
_QUIET_KEYS = {"stage", "passed", "ok", "op", "comparison", "unit", "numbers", "evaluated_at"}


def _first(data: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def _as_gates(raw: Any, stage: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        for name, value in raw.items():
            if isinstance(value, Mapping):
                items.append({"name": name, **value})
            elif isinstance(value, bool):
                items.append({"name": name, "passed": value})
            else:
                items.append({"name": name, "value": value})
    elif isinstance(raw, Iterable) and not isinstance(raw, str | bytes):
        for value in raw:
            items.append(dict(value) if isinstance(value, Mapping) else {"name": str(value)})
    for item in items:
        if stage is not None:
            item.setdefault("stage", stage)
    return items


def stage_name(stage: Mapping[str, Any], index: int) -> str:
    return str(_first(stage, ("name", "stage", "kind")) or f"stage {index + 1}")


def collect_gates(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every gate of the report, the report-level ones first, then stage by stage."""
    gates = _as_gates(report.get("gates"), None)
    for i, stage in enumerate(_stages(report)):
        gates.extend(_as_gates(stage.get("gates"), stage_name(stage, i)))
    return gates


def verdict(gate: Mapping[str, Any], failing: str | None) -> str:
    """PASS, FAIL, or the gate's own word for it (e.g. SKIPPED); "–" if it says nothing."""
    for key in ("passed", "ok"):
        if isinstance(gate.get(key), bool):
            return "PASS" if gate[key] else "FAIL"
    text = _first(gate, _VERDICT_KEYS)
    if text is not None:
        word = str(text).upper()
        return {"PASSED": "PASS", "FAILED": "FAIL", "TRUE": "PASS", "FALSE": "FAIL"}.get(word, word)
    if failing and str(_first(gate, _NAME_KEYS)) == failing:
        return "FAIL"
    return "–"


def _limit(gate: Mapping[str, Any]) -> str:
    op = gate.get("op") or gate.get("comparison")
    unit = f" {gate['unit']}" if gate.get("unit") else ""
    for key, prefix in _LIMIT_KEYS.items():
        if gate.get(key) is not None:
            prefix = prefix or _DIRECTION.get(str(_first(gate, _NAME_KEYS)), "")
            return f"{op + ' ' if op else prefix}{number(gate[key])}{unit}"
    return "–"


def _numbers(gate: Mapping[str, Any]) -> Markup:
    """Every other number the gate carries (per-device values, baselines, counts)."""
    shown = {*_NAME_KEYS, *_VALUE_KEYS, *_LIMIT_KEYS, *_VERDICT_KEYS, *_DETAIL_KEYS, *_QUIET_KEYS}
    extra = {k: v for k, v in gate.items() if k not in shown and v not in ({}, [])}
    if isinstance(gate.get("numbers"), Mapping):
        extra = {**gate["numbers"], **extra}
    if not extra:
        return Markup("")
    items = []
    for key, value in extra.items():
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):
            # per device: {thing: {number: value}}
            items.append(
                el(
                    "li",
                    el("code", key),
                    el(
                        "ul",
                        [
                            el("li", el("strong", thing), ": ", _value_text(v))
                            for thing, v in value.items()
                        ],
                    ),
                )
            )
        else:
            items.append(el("li", el("code", key), " = ", _value_text(value)))
    return el("ul", items, class_="numbers")


def _value_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value_text(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(v) for v in value)
    return number(value)


def _text(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return value if isinstance(value, str) else _value_text(value)


def gate_table(gates: list[Mapping[str, Any]], failing: str | None) -> Markup:
    headers = ("gate", "stage", "observed", "limit", "verdict", "numbers and detail")
    rows = []
    for gate in gates:
        word = verdict(gate, failing)
        unit = f" {gate['unit']}" if gate.get("unit") else ""
        observed = _first(gate, _VALUE_KEYS)
        detail = _first(gate, _DETAIL_KEYS)
        rows.append(
            el(
                "tr",
                el("th", _first(gate, _NAME_KEYS) or "–", scope="row"),
                el("td", gate.get("stage") or "–"),
                el(
                    "td",
                    _value_text(observed) + (unit if observed is not None else ""),
                    class_="num",
                ),
                el("td", _limit(gate), class_="num"),
                el("td", status_badge(word)),
                el("td", el("p", detail) if detail else None, _numbers(gate)),
                class_="failed gate" if word == "FAIL" else "gate",
            )
        )
    return table(headers, rows, numeric=(2, 3), class_="gates")


def _between(start: Any, end: Any) -> float | None:
    """Seconds from one ISO 8601 timestamp to another; None unless both parse."""
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        a = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None  # a timestamp we cannot read: the duration shows as a dash
    if (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return (b - a).total_seconds()


def _stages(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    stages = report.get("stages") or []
    if isinstance(stages, Mapping):
        return [
            {"name": k, **v} if isinstance(v, Mapping) else {"name": k} for k, v in stages.items()
        ]
    return [s if isinstance(s, Mapping) else {"name": str(s)} for s in stages]


def stage_table(report: Mapping[str, Any]) -> Markup:
    headers = ("stage", "outcome", "devices", "started", "took", "deployment", "detail")
    rows = []
    for i, stage in enumerate(_stages(report)):
        things = _first(stage, ("things", "devices", "targets"))
        if isinstance(things, Mapping):
            things = list(things)
        took = _first(stage, ("seconds", "duration", "duration_s", "elapsed"))
        if took is None:
            took = _between(stage.get("started_at"), stage.get("finished_at"))
        rows.append(
            (
                el("strong", stage_name(stage, i)),
                status_badge(_first(stage, ("status", "outcome", "state", "result"))),
                Markup(", ".join(el("span", t, class_="nowrap") for t in things))
                if isinstance(things, list | tuple) and things
                else _text(things),
                el(
                    "span",
                    _text(_first(stage, ("started_at", "started", "start"))),
                    class_="nowrap",
                ),
                seconds(took) if took is not None else "–",
                _text(_first(stage, ("deployment_id", "deployment"))),
                _first(stage, ("detail", "reason", "error")) or "–",
            )
        )
    return table(headers, rows, numeric=(4,), class_="stages")
