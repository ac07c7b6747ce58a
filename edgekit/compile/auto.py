"""``auto``: compile every candidate target, measure them here, keep the fastest that passes.

For each candidate (:data:`CANDIDATES`, or ``options.extra["candidates"]``):

1. **available?** Its runtime's package must import on this machine
   (:func:`edgekit.runtimes.get_runtime`); if not, it is *skipped* and the
   record keeps the install hint.
2. **compiled and gated** by :func:`edgekit.compile.compile_model` with the
   caller's golden set and AP50 limit (a candidate's own compile is cached like
   any other compile). A candidate that fails parity, or fails to compile, is
   measured for the record but **never chosen**.
3. **measured** on the same few golden images (:data:`MEASURE_IMAGES`), end to
   end through ``Predictor.predict`` at ``threads`` (default 1), in interleaved
   rounds; each candidate keeps the round with the lowest median, the one least
   disturbed by other work on the machine.

:func:`choose` then picks, from the measurements alone (deterministic): the
fastest candidate that passed parity; a candidate within :data:`TIE_TOLERANCE`
of it that comes earlier in the candidate order wins instead (ONNX Runtime
before OpenVINO, fp32 before int8: no extra package on the device, no
quantization, for a difference the measurement cannot resolve). The output is
the chosen candidate's files; its compile record says ``target: auto`` and
holds the whole decision under ``auto`` (every candidate's p50/p95, parity
verdict and AP50 drop, the choice and the reason), which ``compile_report.json``
carries. The pipeline then checks the chosen model's parity once more, as for
every target.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.benchmarking import measure
from edgekit.compile.base import (
    CompiledModel,
    CompileOptions,
    Compiler,
    get_compiler,
    normalize_target,
    register_compiler,
)
from edgekit.compile.images import iter_source
from edgekit.compile.parity import DEFAULT_GOLDEN_COUNT, DEFAULT_MAX_AP50_DROP
from edgekit.compile.pipeline import ParityWarning, compile_model
from edgekit.errors import CompileError, ModelError
from edgekit.model.evaluate import VALIDATION_SEED
from edgekit.model.predict import Predictor
from edgekit.runtimes import get_runtime

CANDIDATES: tuple[str, ...] = (
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)
"""In order of preference when two are equally fast (see :data:`TIE_TOLERANCE`)."""
TIE_TOLERANCE = 0.05
"""Candidates whose p50 is within 5% of the fastest count as equally fast."""
MEASURE_IMAGES = 4
DEFAULT_RUNS = 30
ROUNDS = 3
WARMUP = 3
# options.extra keys auto reads (not passed on to the candidates' compilers).
AUTO_KEYS = ("candidates", "threads", "runs", "parity")
# compile record fields the pipeline writes itself (not copied from the chosen candidate).
PIPELINE_FIELDS = (
    "target",
    "runtime",
    "source_sha256",
    "source_name",
    "onnxruntime_version",
    "edgekit_version",
    "compiled_at",
)


@dataclass(frozen=True)
class Candidate:
    """One candidate target and what auto learned about it on this machine."""

    target: str
    runtime: str = ""
    status: str = "skipped"
    """``passed`` / ``failed`` (parity) / ``error`` (did not compile) / ``skipped``."""
    p50_ms: float | None = None
    p95_ms: float | None = None
    ap50_drop: float | None = None
    note: str = ""
    """Why it was skipped or failed (install hint, parity numbers, compile error)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("p50_ms", "p95_ms", "ap50_drop"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        return data


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def choose(candidates: Sequence[Candidate], *, tolerance: float = TIE_TOLERANCE) -> tuple[int, str]:
    """The index of the candidate to keep, and why; CompileError when none passed parity.

    Only ``passed`` candidates with a measured p50 are eligible. Deterministic:
    the result depends on the statuses, the p50s and the order alone.
    """
    eligible = [
        (i, c) for i, c in enumerate(candidates) if c.status == "passed" and c.p50_ms is not None
    ]
    if not eligible:
        lines = "; ".join(f"{c.target}: {c.status} ({c.note})" for c in candidates)
        raise CompileError(
            f"auto: no candidate target passed parity on this machine ({lines}). Use more "
            "representative calibration images (--calibration DIR), raise --max-ap50-drop, or "
            "compile a target by name"
        )
    fastest_index, fastest = min(eligible, key=lambda item: (item[1].p50_ms, item[0]))
    assert fastest.p50_ms is not None
    limit = fastest.p50_ms * (1.0 + tolerance)
    index, chosen = next((i, c) for i, c in eligible if c.p50_ms is not None and c.p50_ms <= limit)
    others = [c for i, c in eligible if i != index]
    if index == fastest_index:
        reason = (
            f"{chosen.target} is the fastest candidate that passes parity "
            f"(p50 {_ms(chosen.p50_ms)})"
        )
        if others:
            runner = min(others, key=lambda c: c.p50_ms or 0.0)
            ratio = (runner.p50_ms or 0.0) / (chosen.p50_ms or 1.0)
            reason += f"; next: {runner.target} {_ms(runner.p50_ms)} ({ratio:.2f}x slower)"
    else:
        reason = (
            f"{chosen.target} (p50 {_ms(chosen.p50_ms)}) is within {tolerance:.0%} of the "
            f"fastest, {fastest.target} ({_ms(fastest.p50_ms)}), and comes first in the "
            "preference order (fewer device dependencies, less quantization)"
        )
    refused = [c for c in candidates if c.status in ("failed", "error")]
    if refused:
        reason += "; never chosen: " + ", ".join(
            f"{c.target} ({c.status}, p50 {_ms(c.p50_ms)})" for c in refused
        )
    skipped = [c for c in candidates if c.status == "skipped"]
    if skipped:
        reason += "; skipped: " + ", ".join(c.target for c in skipped)
    return index, reason


def _available(target: str) -> tuple[str, str]:
    """(runtime, "") when ``target``'s runtime can run here, else ("", why, with the hint)."""
    compiler = get_compiler(target)
    if not compiler.runtime:
        return "", f"{target} names no runtime"
    try:
        get_runtime(compiler.runtime, where=f"auto candidate {target}")
    except ModelError as exc:
        return compiler.runtime, str(exc)
    return compiler.runtime, ""


def _timer(predictor: Predictor, images: list[Any]) -> Callable[[], None]:
    cycle = itertools.cycle(images)

    def run() -> None:
        predictor.predict(next(cycle))

    return run


@register_compiler
class AutoCompiler(Compiler):
    target = "auto"
    runtime = ""
    description = "measure the candidate targets on this machine; keep the fastest passing parity"
    cacheable = False  # measurements belong to a moment on a machine
    uses_parity = True

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        extra = dict(options.extra)
        targets = [normalize_target(t) for t in extra.get("candidates", CANDIDATES)]
        if not targets or normalize_target(self.target) in targets:
            raise CompileError(
                f"auto: candidates {targets!r} must name one or more targets other than auto"
            )
        threads = int(extra.get("threads", 1))
        runs = max(ROUNDS, int(extra.get("runs", DEFAULT_RUNS)))
        parity = dict(extra.get("parity") or {})
        golden = Path(parity["golden"]) if parity.get("golden") else None
        golden_count = int(parity.get("golden_count", DEFAULT_GOLDEN_COUNT))
        max_drop = float(parity.get("max_ap50_drop", DEFAULT_MAX_AP50_DROP))
        base = replace(options, extra={k: v for k, v in extra.items() if k not in AUTO_KEYS})

        candidates: list[Candidate] = []
        outputs: dict[int, tuple[Path, list[Path], dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory(prefix="edgekit-auto-") as tmp:
            for target in targets:
                runtime, missing = _available(target)
                if missing:
                    candidates.append(Candidate(target, runtime, "skipped", note=missing))
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ParityWarning)  # the verdict is recorded
                        report = compile_model(
                            source,
                            target,
                            Path(tmp) / target,
                            golden=golden,
                            golden_count=golden_count,
                            max_ap50_drop=max_drop,
                            force=True,
                            options=base,
                        )
                except CompileError as exc:
                    candidates.append(Candidate(target, runtime, "error", note=str(exc)))
                    continue
                p = report.parity
                status = "passed" if p is not None and p.passed else "failed"
                note = (
                    f"AP50 {p.source_ap50:.4f} -> {p.compiled_ap50:.4f}, drop {p.ap50_drop:+.4f} "
                    f"(limit {p.max_ap50_drop:.2f})"
                    if p is not None
                    else "parity could not run here"
                )
                candidates.append(
                    Candidate(
                        target,
                        report.runtime,
                        status,
                        ap50_drop=p.ap50_drop if p is not None else None,
                        note=note,
                    )
                )
                files = [report.out_dir / name for name in report.files]
                outputs[len(candidates) - 1] = (report.model_path, files, report.compile_info)

            images = [
                item.image
                for item in itertools.islice(
                    iter_source(golden, count=MEASURE_IMAGES, seed=VALIDATION_SEED),
                    MEASURE_IMAGES,
                )
            ]
            timers = {
                i: _timer(Predictor(path, threads=threads, runtime=candidates[i].runtime), images)
                for i, (path, _, _) in outputs.items()
            }
            best: dict[int, Any] = {}
            for _ in range(ROUNDS):
                for i, fn in timers.items():
                    stats = measure(
                        fn,
                        name=candidates[i].target,
                        threads=threads,
                        iterations=runs // ROUNDS,
                        warmup=WARMUP,
                        max_seconds=20.0,
                    )
                    if i not in best or stats.p50_ms < best[i].p50_ms:
                        best[i] = stats
            for i, stats in best.items():
                candidates[i] = replace(candidates[i], p50_ms=stats.p50_ms, p95_ms=stats.p95_ms)

            index, reason = choose(candidates)
            chosen = candidates[index]
            model_path, files, info = outputs[index]
            root = model_path.parent
            copied = []
            for path in files:
                target_path = out_dir / path.relative_to(root)
                target_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target_path)
                copied.append(target_path)

        details = {k: v for k, v in info.items() if k not in PIPELINE_FIELDS}
        details["auto"] = {
            "chosen": chosen.target,
            "reason": reason,
            "threads": threads,
            "runs": runs,
            "rounds": ROUNDS,
            "images": len(images),
            "tie_tolerance": TIE_TOLERANCE,
            "candidates": [c.to_json() for c in candidates],
        }
        return CompiledModel(
            target=self.target,
            runtime=chosen.runtime,
            model_path=out_dir / model_path.relative_to(root),
            files=tuple(copied),
            details=details,
        )
