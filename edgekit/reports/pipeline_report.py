"""``report.html`` of a pipeline run: what a scheduled run leaves for someone who was not watching.

Everything comes from the run folder, so an old run can be rendered again:
``parameters.json``, the executed notebooks (papermill records each one's duration and
whether it raised), the hand-over files (``model_package.json``, ``deployment.json``,
``results.jsonl``), ``rollout.json`` when the run included a rollout, and the PNGs in
``figures/``. The pipeline passes what it knows first-hand (its stage results, the
devices' proofs) instead.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import DataError
from edgekit.files import sha256_file, write_text_atomic
from edgekit.handover import DEPLOYMENT, MODEL_PACKAGE, RESULTS, read_handover
from edgekit.reports.devices import (
    has_proof,
    is_failed,
    proof_rows,
    proof_summary,
    proof_table,
    status_table,
)
from edgekit.reports.markup import (
    Child,
    Markup,
    banner,
    el,
    facts,
    figure_grid,
    number,
    page,
    percent,
    preformatted,
    seconds,
    section,
    status_badge,
    table,
)
from edgekit.reports.rollout_report import rollout_sections, rollout_verdict
from edgekit.version import __version__

PathLike = str | os.PathLike[str]

#: The rollout report a pipeline's rollout stage leaves in the run folder.
ROLLOUT = "rollout.json"

#: Figures in reading order: the model first, then what the fleet sent back; others follow.
FIGURE_ORDER = (
    "pr_curve",
    "pr_curve_compiled",
    "evaluation_samples",
    "model_latency",
    "detections",
    "defect_rate",
    "latency",
    "model_versions",
    "live_view",
)


# ---------------------------------------------------------------------------- inputs


def _stage_rows(run_dir: Path, stages: Sequence[Any] | None) -> list[dict[str, Any]]:
    """(name, ok, seconds, error, html) per notebook: from the pipeline, else from papermill."""
    rows: list[dict[str, Any]] = []
    if stages is not None:
        for stage in stages:
            get = (
                stage.get if isinstance(stage, Mapping) else lambda k, s=stage: getattr(s, k, None)
            )
            html_path = get("html")
            rows.append(
                {
                    "name": str(get("name")),
                    "ok": bool(get("ok")),
                    "seconds": get("seconds"),
                    "error": get("error"),
                    "html": Path(html_path).name if html_path else None,
                }
            )
        return rows
    for notebook in sorted(run_dir.glob("*.ipynb")):
        try:
            meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{notebook}: not a readable notebook ({exc.msg}); delete it or run the pipeline "
                "again",
                path=str(notebook),
            ) from exc
        record = meta.get("papermill") or {}
        html_file = notebook.with_suffix(".html")
        rows.append(
            {
                "name": notebook.stem,
                "ok": not record.get("exception"),
                "seconds": record.get("duration"),
                "error": "the notebook raised; open it for the failing cell"
                if record.get("exception")
                else None,
                "html": html_file.name if html_file.is_file() else None,
            }
        )
    return rows


def _figure_files(run_dir: Path) -> dict[str, Path]:
    found = {p.stem: p for p in sorted((run_dir / "figures").glob("*.png"))}
    ordered = {name: found.pop(name) for name in FIGURE_ORDER if name in found}
    return {**ordered, **found}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix or delete it",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object", path=str(path))
    return data


def _model_facts(run_dir: Path, deployment: Mapping[str, Any] | None) -> dict[str, Any]:
    built = read_handover(run_dir, MODEL_PACKAGE) or {}
    registered = (deployment or {}).get("model") or {}
    criteria = (deployment or {}).get("proof") or {}
    package = built.get("package")
    built_sha = (
        sha256_file(package) if isinstance(package, str) and Path(package).is_file() else None
    )
    return {
        "name": registered.get("name") or built.get("model_name"),
        "version": registered.get("semver") or built.get("model_version"),
        "deployed_sha256": criteria.get("package_sha256") or registered.get("sha256"),
        "built_sha256": built_sha,
        "package": package,
        "target": built.get("target") or registered.get("runtime"),
        "ap50": built.get("ap50"),
        "compiled_ap50": built.get("compiled_ap50") or registered.get("ap50"),
        "registry": registered,
    }


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def _results_by_thing(run_dir: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Per device: results, defects, latencies, model versions; and the unreadable line count."""
    path = run_dir / RESULTS
    stats: dict[str, dict[str, Any]] = {}
    unreadable = 0
    if not path.is_file():
        return stats, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            unreadable += 1  # shown in the report next to the table
            continue
        if not isinstance(result, dict):
            unreadable += 1
            continue
        thing = str(result.get("thing_name") or "?")
        entry = stats.setdefault(
            thing, {"results": 0, "defects": 0, "latency": [], "models": set(), "last": None}
        )
        entry["results"] += 1
        entry["defects"] += bool(result.get("defect"))
        total = (result.get("latency_ms") or {}).get("total")
        if isinstance(total, int | float):
            entry["latency"].append(float(total))
        model = result.get("model") or {}
        entry["models"].add(f"{model.get('name', '?')} {model.get('version', '?')}")
        stamp = result.get("timestamp")
        if isinstance(stamp, str) and (entry["last"] is None or stamp > entry["last"]):
            entry["last"] = stamp
    return stats, unreadable


# ---------------------------------------------------------------------------- sections


def _model_section(model: Mapping[str, Any]) -> Markup:
    deployed, built = model.get("deployed_sha256"), model.get("built_sha256")
    sha_pairs: list[tuple[str, Child]] = []
    if deployed and built and deployed != built:
        sha_pairs = [
            ("package sha256 deployed", el("code", deployed)),
            (
                "package sha256 built",
                Markup(
                    el("code", built)
                    + " "
                    + el("span", "differs from the deployed package", class_="mismatch")
                ),
            ),
        ]
    else:
        sha_pairs = [("package sha256", el("code", deployed or built or "–"))]
    registry = model.get("registry") or {}
    return section(
        "Model",
        facts(
            [
                ("name", model.get("name") or "–"),
                ("version", model.get("version") or "–"),
                *sha_pairs,
                ("compile target", model.get("target")),
                ("AP50 (trained)", number(model.get("ap50")) if model.get("ap50") else None),
                (
                    "AP50 (compiled)",
                    number(model.get("compiled_ap50")) if model.get("compiled_ap50") else None,
                ),
                (
                    "registry version",
                    f"{registry.get('group')} #{registry.get('version')} "
                    f"({registry.get('approval_status')})"
                    if registry.get("group")
                    else None,
                ),
                ("package file", model.get("package")),
            ]
        ),
    )


def _deployment_facts(deployment: Mapping[str, Any]) -> Markup:
    components = deployment.get("components") or {}
    return facts(
        [
            ("thing group", deployment.get("thing_group")),
            ("deployment", deployment.get("deployment_id")),
            ("Greengrass status", status_badge(deployment.get("status"))),
            (
                "components",
                ", ".join(f"{name} {version}" for name, version in sorted(components.items()))
                or None,
            ),
            ("proof required", _criteria_text(deployment.get("proof"))),
            ("written", deployment.get("written_at")),
        ]
    )


def _criteria_text(criteria: Any) -> str | None:
    """``at least 3 result(s) of NAME VERSION (sha256 …) since T, key …`` from the record."""
    if not isinstance(criteria, Mapping):
        return None
    text = (
        f"at least {criteria.get('min_results', '?')} result(s) of "
        f"{criteria.get('model_name', '?')} {criteria.get('model_version', '?')} "
        f"(package sha256 {str(criteria.get('package_sha256') or '?')[:12]}…)"
    )
    if criteria.get("since"):
        text += f" since {criteria['since']}"
    if criteria.get("key_fingerprint"):
        text += f", verified with key {criteria['key_fingerprint']}"
    return text


def _record_proofs(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's devices, plus a row for any device its proof names as failed but lists
    no entry for (a device Greengrass never reported on is still a failed device)."""
    devices = [dict(d) for d in deployment.get("devices") or [] if isinstance(d, Mapping)]
    listed = {d.get("thing") for d in devices}
    criteria = deployment.get("proof")
    failed = criteria.get("failed") if isinstance(criteria, Mapping) else None
    for thing in failed or []:
        if thing not in listed:
            devices.append(
                {
                    "thing": thing,
                    "state": "FAILED",
                    "reason": "named as failed by the deployment's proof; Greengrass listed "
                    "no execution for it",
                }
            )
    return devices


def _results_section(stats: Mapping[str, Mapping[str, Any]], unreadable: int) -> Markup:
    rows = []
    for thing, s in sorted(stats.items()):
        n = s["results"]
        rows.append(
            (
                el("strong", thing),
                n,
                s["defects"],
                percent(s["defects"] / n) if n else "–",
                number(_percentile(s["latency"], 50)),
                number(_percentile(s["latency"], 95)),
                ", ".join(sorted(s["models"])),
                s["last"] or "–",
            )
        )
    note = (
        el("p", f"{unreadable} line(s) of {RESULTS} were not JSON objects and are not counted.")
        if unreadable
        else None
    )
    return section(
        "Results collected",
        el("p", f"What notebook 04 received from each device ({RESULTS})."),
        table(
            (
                "device",
                "results",
                "defects",
                "defect rate",
                "p50 ms",
                "p95 ms",
                "model",
                "last result",
            ),
            rows,
            numeric=(1, 2, 3, 4, 5),
            class_="results",
        ),
        note,
    )


def _stage_table(rows: Iterable[Mapping[str, Any]]) -> Markup:
    body = []
    for row in rows:
        name = row["name"]
        link = el("a", name, href=row["html"]) if row.get("html") else name
        body.append(
            el(
                "tr",
                el("th", link, scope="row"),
                el("td", status_badge("OK" if row["ok"] else "FAILED")),
                el("td", seconds(row.get("seconds")), class_="num"),
                el("td", preformatted(row["error"]) if row.get("error") else "–"),
                class_="stage" if row["ok"] else "failed stage",
            )
        )
    return table(("notebook", "status", "took", "error"), body, numeric=(2,), class_="notebooks")


# ---------------------------------------------------------------------------- page


def render_pipeline_report(
    run_dir: PathLike,
    *,
    stages: Sequence[Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    proofs: Mapping[str, Any] | Iterable[Any] | None = None,
    rollout: Mapping[str, Any] | None = None,
    figures: Mapping[str, PathLike] | None = None,
    out: PathLike | None = None,
) -> Path:
    """Write ``run_dir/report.html`` (or ``out``): one self-contained page; returns its path.

    ``stages``: the pipeline's StageResults (or dicts with name, ok, seconds, error,
    html); default: the executed notebooks in ``run_dir``. ``proofs``: each device's
    DeviceProof (or dict) by thing; default: the devices of ``deployment.json``.
    ``rollout``: a rollout report dict; default: ``run_dir/rollout.json`` if present.
    ``figures``: name -> PNG; default: ``run_dir/figures/*.png``.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise DataError(f"{run}: no such run folder; pass the folder a pipeline run wrote")
    params = (
        dict(parameters) if parameters is not None else (_read_json(run / "parameters.json") or {})
    )
    stage_rows = _stage_rows(run, stages)
    deployment = read_handover(run, DEPLOYMENT)
    model = _model_facts(run, deployment)
    if proofs is None and deployment is not None:
        proofs = _record_proofs(deployment)
    rows = proof_rows(proofs)
    report = rollout if rollout is not None else _read_json(run / ROLLOUT)
    stats, unreadable = _results_by_thing(run)
    figure_files = dict(figures) if figures is not None else _figure_files(run)

    problems: list[str] = []
    for row in stage_rows:
        if not row["ok"]:
            problems.append(f"notebook {row['name']} failed: {row.get('error') or 'see it'}")
    if deployment is not None and str(deployment.get("status")).upper() == "FAILED":
        failure = deployment.get("failure") or {}
        problems.append(
            f"deployment {deployment.get('deployment_id')} failed"
            + (f" on {failure.get('thing')}: {failure.get('reason')}" if failure else "")
        )
    for row in rows:
        if is_failed(row):
            first = str(row.get("reason") or row.get("problem") or "no reason given").splitlines()
            problems.append(f"device {row['thing']} {row['state']}: {first[0] if first else ''}")
    if report is not None and str(report.get("status")).upper() != "PROMOTED":
        problems.append(rollout_verdict(report)[1])
    if not stage_rows:
        problems.append("no notebook ran")

    status = "FAILED" if problems else "SUCCESS"
    what = " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or "the model"
    ran = sum(1 for r in stage_rows if r["ok"])
    title = f"{ran} of {len(stage_rows)} notebook(s) ran"
    if rows:
        title += f"; {what}: " + (
            proof_summary(rows)
            if any(r.get("state") for r in rows)
            else f"Greengrass status only for {len(rows)} device(s), no proof of inspection"
        )
    detail = el("ul", [el("li", p) for p in problems]) if problems else None

    body: list[Child] = [banner(status, title, detail), _model_section(model)]
    device_parts: list[Child] = []
    if deployment is not None:
        device_parts.append(_deployment_facts(deployment))
    if rows and has_proof(rows):
        device_parts.append(proof_table(rows, expected_sha256=model.get("deployed_sha256")))
    elif rows:
        device_parts.append(
            el(
                "p",
                "This deployment record carries no proof of inspection (it predates it): "
                "the Greengrass status of each device, and its components.",
                class_="muted",
            )
        )
        device_parts.append(status_table(rows))
    else:
        device_parts.append(el("p", "This run deployed nothing (no deployment.json)."))
    body.append(section("Devices", *device_parts))
    if report is not None:
        rollout_status, rollout_title, _ = rollout_verdict(report)
        body.append(
            section(
                "Rollout",
                el("p", status_badge(rollout_status), " ", rollout_title),
            )
        )
        body.extend(rollout_sections(report, with_model=False, prefix="Rollout – "))
    if stats or unreadable:
        body.append(_results_section(stats, unreadable))
    body.append(section("Notebooks", _stage_table(stage_rows)))
    if figure_files:
        body.append(section("Figures", figure_grid(figure_files)))
    body.append(
        section(
            "Parameters",
            el(
                "details",
                el("summary", f"{len(params)} parameter(s) the notebooks ran with"),
                preformatted(json.dumps(params, indent=2, default=str)),
            ),
        )
    )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    target = Path(out) if out is not None else run / "report.html"
    write_text_atomic(
        target,
        page(
            f"edgekit pipeline run: {run.resolve().name}",
            *body,
            subtitle=f"backend {params.get('backend', '?')} · {what}",
            footer=f"written by edgekit {__version__} at {now}",
        ),
    )
    return target
