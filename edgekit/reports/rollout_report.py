"""A rollout's report as a page: the verdict, the model, each device's proof, each gate, the stages.

The input is the rollout report JSON (``edgekit rollout --report``):
``{"status": "PROMOTED" | "ROLLED_BACK", "gate": null | NAME, "stages": [...],
"devices": {THING: {...}}}``; other keys are shown when present (``model``, ``id``,
``thing_group``, ``gates``, ``started_at``/``finished_at``, ``reason``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import DataError
from edgekit.files import write_text_atomic
from edgekit.reports.devices import proof_rows, proof_summary, proof_table
from edgekit.reports.gates import collect_gates, gate_table, stage_table, verdict
from edgekit.reports.markup import (
    Child,
    Markup,
    banner,
    el,
    facts,
    figure_grid,
    number,
    page,
    preformatted,
    section,
)
from edgekit.version import __version__

PathLike = str | os.PathLike[str]


def rollout_model(report: Mapping[str, Any]) -> dict[str, Any]:
    """Name, version and package sha256 of the candidate, from wherever the report keeps them."""
    model = report.get("model")
    model = dict(model) if isinstance(model, Mapping) else {}
    package = report.get("model_package")
    if isinstance(package, Mapping):
        model = {**package, **model}
    elif isinstance(package, str):
        model.setdefault("package", package)
    for key, alias in (
        ("name", "model_name"),
        ("version", "model_version"),
        ("package_sha256", "package_sha256"),
    ):
        if model.get(key) is None and report.get(alias) is not None:
            model[key] = report[alias]
    if model.get("package_sha256") is None and model.get("sha256") is not None:
        model["package_sha256"] = model["sha256"]
    return model


def _versions(previous: Any) -> str | None:
    """``com.x 1.0.0, com.y 1.0.0`` from ``{component: version}`` (or nested dicts)."""
    if not isinstance(previous, Mapping) or not previous:
        return None
    if isinstance(previous.get("components"), Mapping):
        # a rollout record's previous deployment: {deployment_id, components, specs, model}
        previous = previous["components"]
    parts = []
    for name, value in sorted(previous.items()):
        if isinstance(value, Mapping):
            value = value.get("version") or value.get("componentVersion") or ""
        parts.append(f"{name} {value}".strip())
    return ", ".join(parts)


def _options(options: Any) -> str | None:
    """``canary 1, soak 60, max_p95_ms 20`` from the rollout's options (None values left out)."""
    if not isinstance(options, Mapping) or not options:
        return None
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    return ", ".join(f"{k} {number(v)}" for k, v in flat.items() if v is not None) or None


def failing_gate_text(report: Mapping[str, Any]) -> str | None:
    """``"gate p95_latency failed: observed 41.2, limit ≤ 30"`` for a rolled-back report."""
    name = report.get("gate")
    if not name:
        return None
    if report.get("gate_detail"):
        return f"gate {name} failed: {report['gate_detail']}"
    for gate in collect_gates(report):
        if str(gate.get("name") or gate.get("gate") or "") == str(name):
            if verdict(gate, str(name)) != "FAIL":
                continue
            observed = next(
                (gate[k] for k in ("value", "observed", "actual", "measured") if k in gate), None
            )
            limit = next(
                (
                    gate[k]
                    for k in ("limit", "threshold", "max", "maximum", "min", "minimum")
                    if k in gate
                ),
                None,
            )
            parts = [f"gate {name} failed"]
            if gate.get("detail"):
                parts.append(str(gate["detail"]))
            elif observed is not None or limit is not None:
                parts.append(f"observed {number(observed)}, limit {number(limit)}")
            return ": ".join(parts)
    return f"gate {name} failed"


def rollout_sections(
    report: Mapping[str, Any], *, with_model: bool = True, prefix: str = ""
) -> list[Markup]:
    """The model, devices, gates and stages sections (the pipeline report reuses them,
    with ``prefix`` before each heading)."""
    model = rollout_model(report)
    rows = proof_rows(report.get("devices"))
    gates = collect_gates(report)
    out: list[Markup] = []
    if with_model:
        out.append(
            section(
                "Candidate model",
                facts(
                    [
                        ("name", model.get("name")),
                        ("version", model.get("version")),
                        ("package sha256", el("code", model.get("package_sha256") or "–")),
                        ("package", model.get("package")),
                        ("thing group", report.get("thing_group")),
                        ("canary group", report.get("canary_group")),
                        ("replaces", _versions(report.get("previous"))),
                        ("options", _options(report.get("options"))),
                        ("rollout", report.get("id") or report.get("rollout_id")),
                        ("started", report.get("started_at") or report.get("created_at")),
                        ("finished", report.get("finished_at")),
                        ("record", report.get("record")),
                    ]
                ),
            )
        )
    out.append(
        section(
            prefix + "Devices: proof of inspection",
            el("p", proof_summary(rows)) if rows else el("p", "The report lists no devices."),
            proof_table(rows, expected_sha256=model.get("package_sha256")) if rows else None,
        )
    )
    out.append(
        section(
            prefix + "Gates",
            gate_table(gates, report.get("gate"))
            if gates
            else el(
                "p",
                f"The report lists no gate numbers; the failing gate is {report['gate']}."
                if report.get("gate")
                else "The report lists no gates.",
            ),
        )
    )
    if report.get("stages"):
        out.append(section(prefix + "Stages", stage_table(report)))
    return out


def rollout_verdict(report: Mapping[str, Any]) -> tuple[str, str, Child]:
    """(status, one-line title, detail) for the banner."""
    status = str(report.get("status") or "UNKNOWN")
    model = rollout_model(report)
    what = " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or "the candidate"
    group = report.get("thing_group")
    if status.upper() == "PROMOTED":
        title = f"{what} was promoted" + (f" to thing group {group}" if group else "")
    elif status.upper() == "ROLLED_BACK":
        title = f"{what} was rolled back: " + (failing_gate_text(report) or "see the gates below")
    else:
        title = f"rollout of {what}: {status}"
    detail = report.get("reason") or report.get("error")
    return status, title, preformatted(detail) if detail else None


def render_rollout_report(
    report: Mapping[str, Any],
    out: PathLike,
    figures: Mapping[str, PathLike] | None = None,
) -> Path:
    """Write the rollout report as one self-contained HTML page at ``out``; returns the path."""
    if not isinstance(report, Mapping):
        raise DataError(
            f"rollout report: expected a JSON object with status, gate, stages and devices, "
            f"got {type(report).__name__}"
        )
    status, title, detail = rollout_verdict(report)
    body: list[Child] = [banner(status, title, detail), *rollout_sections(report)]
    if figures:
        body.append(section("Figures", figure_grid(figures)))
    body.append(
        section(
            "Report JSON",
            el(
                "details",
                el("summary", "the report as written by edgekit rollout"),
                preformatted(json.dumps(report, indent=2, default=str)),
            ),
        )
    )
    name = rollout_model(report).get("name")
    target = Path(out)
    write_text_atomic(
        target,
        page(
            f"edgekit rollout{': ' + str(name) if name else ''}",
            *body,
            subtitle=report.get("id") or None,
            footer=_footer(),
        ),
    )
    return target


def _footer() -> str:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return f"written by edgekit {__version__} at {now}"
