"""``compile_report.json``: what was compiled, how big it is, how it compares, how long it took."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.compile.parity import ParityResult

REPORT_NAME = "compile_report.json"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass
class CompileReport:
    """The result of :func:`edgekit.compile.compile_model`.

    ``status`` is ``passed`` (parity held), ``forced`` (parity failed, kept with
    force), ``failed`` (parity failed; the model is left for inspection but
    ``edgekit package`` refuses it) or ``skipped`` (the output cannot run here).
    """

    target: str
    runtime: str
    status: str
    out_dir: Path
    model_path: Path
    source_path: Path
    source_sha256: str
    compiled_sha256: str
    source_size: int
    compiled_size: int
    compile_info: dict[str, Any]
    parity: ParityResult | None
    times_s: dict[str, float]
    created_at: str
    files: list[str] = field(default_factory=list)
    cache: dict[str, Any] | None = None
    """None: not cached (cache off, or a target that is never cached); else ``key``,
    ``hit`` (True: the files and parity result came from the cache), ``entry`` (its
    folder; None if it could not be stored) and ``note`` (a corrupt entry was rebuilt)."""

    @property
    def from_cache(self) -> bool:
        return bool(self.cache and self.cache.get("hit"))

    def cache_summary(self) -> str:
        """One line: ``from cache (key 1a2b3c4d5e6f)``, ``compiled, cached (key ...)``, ..."""
        if not self.cache:
            return "compiled (compile cache off for this target or run)"
        key = str(self.cache.get("key", ""))[:12]
        if self.cache.get("hit"):
            return f"from cache (key {key})"
        stored = "cached" if self.cache.get("entry") else "not cached (store failed)"
        note = f"; {self.cache['note']}" if self.cache.get("note") else ""
        return f"compiled, {stored} (key {key}){note}"

    @property
    def path(self) -> Path:
        return self.out_dir / REPORT_NAME

    @property
    def passed(self) -> bool:
        return self.status in ("passed", "forced", "skipped")

    def to_json(self) -> dict[str, Any]:
        parity = self.parity.to_json() if self.parity is not None else None
        return {
            "target": self.target,
            "runtime": self.runtime,
            "status": self.status,
            "model": self.model_path.name,
            "files": self.files,
            "source": {
                "path": str(self.source_path),
                "sha256": self.source_sha256,
                "size_bytes": self.source_size,
            },
            "compiled": {
                "path": self.model_path.name,
                "sha256": self.compiled_sha256,
                "size_bytes": self.compiled_size,
            },
            "size_bytes": {"source": self.source_size, "compiled": self.compiled_size},
            "size_ratio": round(self.compiled_size / self.source_size, 4)
            if self.source_size
            else None,
            "parity": parity,
            "times_s": {k: round(v, 3) for k, v in self.times_s.items()},
            "compile": self.compile_info,
            "created_at": self.created_at,
            "cache": self.cache,
        }

    def write(self) -> Path:
        self.path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return self.path

    def table(self) -> str:
        """A short human-readable summary (the CLI prints it)."""
        ratio = self.compiled_size / self.source_size if self.source_size else float("nan")
        rows = [
            ("target", f"{self.target} (runtime {self.runtime})"),
            ("model", str(self.model_path)),
            (
                "size",
                f"{_size(self.compiled_size)} (source {_size(self.source_size)}, {ratio:.2f}x)",
            ),
        ]
        auto = self.compile_info.get("auto")
        if isinstance(auto, dict):  # the auto target: every candidate and the choice
            rows.append(("auto", str(auto.get("reason", ""))))
            for c in auto.get("candidates", []):
                p50 = "n/a" if c.get("p50_ms") is None else f"p50 {c['p50_ms']:.2f} ms"
                rows.append((f"  {c['target']}", f"{c['status']}, {p50}; {c.get('note', '')}"))
        calibration = self.compile_info.get("calibration")
        if calibration:
            rows.append(("calibration", str(calibration)))
        excluded = self.compile_info.get("nodes_to_exclude")
        if excluded is not None:  # int8: nodes left in float, and why (in the JSON report)
            why = str(self.compile_info.get("nodes_excluded_because", "")).split(":")[0]
            rows.append(("kept in float", f"{len(excluded)} node(s): {why}"))
        p = self.parity
        if p is None:
            rows.append(("parity", "skipped (the compiled model cannot run on this machine)"))
        else:
            verdict = {True: "ok", False: "FAILED"}[p.passed] + (" (forced)" if p.forced else "")
            rows += [
                ("golden set", f"{p.golden}, reference: {p.reference}"),
                (
                    "AP50",
                    f"source {p.source_ap50:.4f}  compiled {p.compiled_ap50:.4f}  "
                    f"drop {p.ap50_drop:+.4f} (limit {p.max_ap50_drop:.2f})  {verdict}",
                ),
                (
                    f"scores @ {p.score_threshold:g}",
                    f"max |diff| {p.max_abs_score_diff:.4f}, mean {p.mean_abs_score_diff:.4f} "
                    f"over {p.matched_detections} matched detections",
                ),
                (
                    "detections",
                    f"source {p.source_detections}, compiled {p.compiled_detections}; "
                    f"count differs on {p.images_with_count_diff} of {p.images} images",
                ),
            ]
        rows.append(("time", ", ".join(f"{k} {v:.1f} s" for k, v in self.times_s.items())))
        rows.append(("cache", self.cache_summary()))
        rows.append(("report", str(self.path)))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
