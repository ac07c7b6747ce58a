"""Each device's proof of inspection as a table row, whatever shape the proof came in.

A proof is an ``edgekit.deploy.proof.DeviceProof`` (any dataclass or object with its
attributes) or a plain dict with the same keys; a rollout report's ``devices`` map
(``{thing: {"package_sha256", "results", "errors", "p95_ms", "state", ...}}``) and a
deployment record's ``devices`` list (``[{"thing", "status", "reason", ...}]``) are
read the same way. Missing keys show as a dash; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from edgekit.reports.markup import (
    Markup,
    el,
    number,
    percent,
    preformatted,
    short_sha,
    status_badge,
    table,
)

#: The keys of a proof row (DeviceProof's fields).
PROOF_KEYS = (
    "thing",
    "greengrass_status",
    "package_sha256",
    "key_fingerprint",
    "results",
    "errors",
    "p95_ms",
    "health_state",
    "problem",
    "state",
    "reason",
)

#: Other spellings of the same facts (deployment records, older reports).
_ALIASES = {
    "thing": ("thing_name", "name"),
    "greengrass_status": ("status", "execution_status"),
    "results": ("results_published",),
}

FAILED_STATES = frozenset({"FAILED", "PENDING", "ROLLED_BACK"})
#: The state a rollout gives the devices it did not target (they keep the current model).
CURRENT = "CURRENT"


def as_row(proof: Any, thing: str | None = None) -> dict[str, Any]:
    """``proof`` as a dict of :data:`PROOF_KEYS` (plus any other keys it has)."""
    if dataclasses.is_dataclass(proof) and not isinstance(proof, type):
        data: dict[str, Any] = dataclasses.asdict(proof)
    elif isinstance(proof, Mapping):
        data = dict(proof)
    else:
        data = {key: getattr(proof, key) for key in PROOF_KEYS if hasattr(proof, key)}
    nested = data.get("proof")
    if isinstance(nested, Mapping):  # a deployment record entry with its proof inside
        data = {**data, **nested}
    for key, aliases in _ALIASES.items():
        if data.get(key) is None:
            for alias in aliases:
                if data.get(alias) is not None:
                    data[key] = data[alias]
                    break
    if thing is not None and not data.get("thing"):
        data["thing"] = thing
    for key in PROOF_KEYS:
        data.setdefault(key, None)
    return data


def proof_rows(devices: Any) -> list[dict[str, Any]]:
    """Rows from a ``{thing: proof}`` mapping or an iterable of proofs, sorted by thing."""
    if devices is None:
        return []
    if isinstance(devices, Mapping):
        rows = [as_row(proof, str(thing)) for thing, proof in devices.items()]
    elif isinstance(devices, Iterable) and not isinstance(devices, str | bytes):
        rows = [as_row(proof) for proof in devices]
    else:
        rows = [as_row(devices)]
    return sorted(rows, key=lambda r: str(r.get("thing") or ""))


def _kept_current(row: Mapping[str, Any]) -> bool:
    """A device a rollout left on the current model (the baseline of its gates)."""
    return str(row.get("state") or "").upper() == CURRENT


def _rolled_back(row: Mapping[str, Any]) -> bool:
    """A device whose last proof is a rollout's rollback: it proved the previous package."""
    return str(row.get("stage") or "").lower() == "rollback"


def is_failed(row: Mapping[str, Any]) -> bool:
    state = str(row.get("state") or "").upper()
    return state in FAILED_STATES


def _sha_cell(value: Any, expected: str | None) -> Markup:
    cell = short_sha(value)
    if expected and value and value != expected:
        return Markup(cell + " " + el("span", "≠ expected", class_="mismatch nowrap"))
    if expected and value == expected:
        return Markup(cell + " " + el("span", "= expected", class_="muted nowrap"))
    return cell


def _soak_text(soak: Any) -> Markup:
    """``defect rate 4.0 %, error rate 0.0 %, agreement 0.98 / 0.95`` from a soak window."""
    if not isinstance(soak, Mapping):
        return Markup("–")
    parts = []
    if soak.get("defect_rate") is not None:
        parts.append(f"defect rate {percent(soak['defect_rate'])}")
    if soak.get("error_rate") is not None:
        parts.append(f"error rate {percent(soak['error_rate'])}")
    agreement = [soak.get("defect_agreement"), soak.get("detection_agreement")]
    if any(a is not None for a in agreement):
        parts.append("agreement " + " / ".join(number(a) for a in agreement))
    if not parts:
        return Markup("–")
    return Markup(", ".join(el("span", part, class_="nowrap") for part in parts))


def proof_table(
    rows: Iterable[Mapping[str, Any]],
    *,
    expected_sha256: str | None = None,
    caption: str | None = None,
) -> Markup:
    """One row per device; a failed device gets a second row with its reason, in full.

    Rollout rows add a ``stage`` column and, when they carry one, the ``soak`` window's
    defect rate, error rate and shadow agreement.
    """
    rows = list(rows)
    staged = any(row.get("stage") for row in rows)
    soaked = any(isinstance(row.get("soak"), Mapping) for row in rows)
    headers = [
        "device",
        "state",
        *(["stage"] if staged else []),
        "Greengrass",
        "package sha256 reported",
        "results",
        "errors",
        "p95 ms",
        "health",
        *(["over the soak"] if soaked else []),
    ]
    first_number = headers.index("results")
    body: list[Markup] = []
    for row in rows:
        failed = is_failed(row)
        soak = row.get("soak") if isinstance(row.get("soak"), Mapping) else {}
        cells = [
            el("th", row.get("thing") or "–", scope="row"),
            el("td", status_badge(row.get("state"))),
            *([el("td", row.get("stage") or "–")] if staged else []),
            el("td", status_badge(row.get("greengrass_status"))),
            el(
                "td",
                _sha_cell(
                    row.get("package_sha256"),
                    None if _kept_current(row) or _rolled_back(row) else expected_sha256,
                ),
            ),
            el("td", number(row.get("results")), class_="num"),
            el("td", number(row.get("errors")), class_="num"),
            el("td", number(row.get("p95_ms")), class_="num"),
            el("td", row.get("health_state") or soak.get("health_state") or "–"),
            *([el("td", _soak_text(row.get("soak")))] if soaked else []),
        ]
        body.append(el("tr", cells, class_="failed device" if failed else "device"))
        reason = row.get("reason") or (row.get("problem") if failed else None)
        if reason:
            body.append(
                el(
                    "tr",
                    el(
                        "td",
                        el("strong", "reason: " if failed else "note: "),
                        preformatted(reason),
                        colspan=len(headers),
                    ),
                    class_="reason",
                )
            )
    return table(
        headers,
        body,
        caption=caption,
        numeric=range(first_number, first_number + 3),
        class_="proofs",
    )


def has_proof(rows: Iterable[Mapping[str, Any]]) -> bool:
    """True when some row carries proof-of-inspection numbers (not only a Greengrass status)."""
    keys = ("state", "package_sha256", "results", "p95_ms", "health_state")
    return any(row.get(key) is not None for row in rows for key in keys)


def status_table(rows: Iterable[Mapping[str, Any]]) -> Markup:
    """Devices of a deployment record without proofs: Greengrass status and components."""
    body = []
    for row in rows:
        components = row.get("components") or {}
        listed = [
            el(
                "li",
                f"{name} {info.get('version', '')} ",
                status_badge(info.get("state")),
            )
            if isinstance(info, Mapping)
            else el("li", f"{name} {info}")
            for name, info in sorted(components.items())
        ]
        failed = str(row.get("greengrass_status") or "").upper() not in (
            "",
            "SUCCEEDED",
            "COMPLETED",
        )
        body.append(
            el(
                "tr",
                el("th", row.get("thing") or "–", scope="row"),
                el("td", status_badge(row.get("greengrass_status"))),
                el("td", el("ul", listed, class_="plain") if listed else "–"),
                el("td", preformatted(row["reason"]) if row.get("reason") else "–"),
                class_="failed device" if failed else "device",
            )
        )
    return table(("device", "Greengrass", "components", "reason"), body, class_="proofs")


def proof_summary(rows: list[Mapping[str, Any]]) -> str:
    """``"2 of 3 device(s) proved inspection; not proven: a, b"`` (empty when there are no rows).

    Devices a rollout left on the current model are counted apart, not as unproven.
    """
    if not rows:
        return ""
    current = [r for r in rows if _kept_current(r)]
    targeted = [r for r in rows if not _kept_current(r)]
    proven = [r for r in targeted if str(r.get("state") or "").upper() == "PROVEN"]
    failed = [str(r.get("thing")) for r in targeted if is_failed(r)]
    text = f"{len(proven)} of {len(targeted)} device(s) proved inspection"
    if failed:
        text += "; not proven: " + ", ".join(failed)
    if current:
        text += f"; {len(current)} kept the current model"
    return text
