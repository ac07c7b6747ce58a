"""Latency, size and accuracy of the scratch detector: PyTorch eager vs ONNX Runtime fp32/int8.

Three ways to run the same trained weights (the shipped model by default):

1. PyTorch eager fp32: a ``ScratchDetector`` rebuilt from the ONNX file's weights
   (:mod:`edgekit.model.torch_weights`; batch norms already folded, as exported);
2. ONNX Runtime fp32: ``compile_model(source, "onnxruntime-fp32")``;
3. ONNX Runtime int8: ``compile_model(source, "onnxruntime-int8")`` (static QDQ).

Every row times the same end-to-end call, ``predictor.predict(image)`` on one
image at batch 1 (the first photo of the real validation split when the data set
is there, else a 450x300 synthetic render): numpy/Pillow preprocessing, the
network, numpy peak decoding. Only the network differs. Threads are pinned per row
(``torch.set_num_threads`` / ONNX Runtime ``intra_op_num_threads``). AP50 is
scored on the real validation split of tag-scratches (``evaluation_data(path,
"val")``) and on the synthetic validation set (200 images). A second table
compares the shipped model (pretrained on synthetic renders, fine-tuned on the real
training split), its synthetic-only start (``shipped/synthetic.onnx``) and the same
recipe from scratch (``train(<data>, out, seed=0, init=None)``, cached under ``--work``).

    .venv/bin/python benchmarks/model_latency.py                  # full run (trains once)
    .venv/bin/python benchmarks/model_latency.py --skip-train --iterations 50
    .venv/bin/python benchmarks/model_latency.py --quick          # seconds; smoke test

The output leads with the speed-up ratios of this run (machine-independent enough to
compare), and every table is followed by the CPU model, core count and load average.
``--readme README.md`` also writes the tables into README's ``model_latency`` section.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, machine_info

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "tag-scratches"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "edgekit-model-latency"
THREADS = (1, 2)
GOAL_SPEEDUP = 3.0
GOAL_INT8_AP_DROP = 0.02
GOAL_REAL_AP = 0.6

EAGER, FP32, INT8 = "PyTorch eager fp32", "ONNX Runtime fp32", "ONNX Runtime int8"


@dataclass
class Row:
    name: str
    make: Callable[[int], Any]  # threads -> predictor with .predict(image) and .info
    path: Path  # the file the row loads (its size is reported)
    latency: dict[int, Any] = field(default_factory=dict)  # threads -> LatencyStats
    ap_real: float | None = None
    ap_synthetic: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.2f} MB"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _has_data(path: Path) -> bool:
    return (path / "labels.csv").is_file() or any(path.glob("*.manifest"))


def compile_cached(source: Path, target: str, work: Path, *, quick: bool) -> tuple[Path, str]:
    """``compile_model`` once per (source file, target); returns the model and parity status.

    A failed parity gate does not stop the benchmark (``force=True``): the
    table reports both AP50s, and the int8 goal line says whether it held.
    """
    import warnings

    from edgekit.compile import ParityWarning, compile_model
    from edgekit.files import sha256_file

    sha = sha256_file(source)
    golden = 20 if quick else 200
    out = work / "compiled" / f"{sha[:12]}-{target}-golden{golden}"
    report = out / "compile_report.json"
    if report.is_file():
        data = json.loads(report.read_text())
        model = out / data["compiled"]["path"]
        if data["source"]["sha256"] == sha and model.is_file():
            return model, data["status"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParityWarning)
        result = compile_model(source, target, out, golden_count=golden, force=True)
    return result.model_path, result.status


def torch_weights_file(source: Path, work: Path) -> Path:
    """The eager model's state dict saved as PyTorch would ship it (for the size column)."""
    import torch

    from edgekit.files import sha256_file
    from edgekit.model.torch_weights import load_detector

    path = work / "torch" / f"{sha256_file(source)[:12]}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        model, _ = load_detector(source)
        torch.save(model.state_dict(), path)
    return path


def time_rows(
    rows: list[Row], image: Any, iterations: int, rounds: int, max_seconds: float
) -> None:
    """Fill ``row.latency``: per thread count, rows interleaved in ``rounds`` rounds.

    Each round runs ``measure`` once per row; a row keeps the round with the
    lowest median, i.e. the one least disturbed by other work on the machine.
    """
    import torch

    from edgekit.benchmarking import measure

    per_round = max(3, iterations // rounds)
    for threads in THREADS:
        predictors = [row.make(threads) for row in rows]
        for _ in range(rounds):
            for row, predictor in zip(rows, predictors, strict=True):
                torch.set_num_threads(threads)  # process-wide: pin again before every row
                stats = measure(
                    lambda p=predictor: p.predict(image),
                    name=row.name,
                    threads=threads,
                    iterations=per_round,
                    warmup=3,
                    max_seconds=max_seconds,
                )
                best = row.latency.get(threads)
                if best is None or stats.p50_ms < best.p50_ms:
                    row.latency[threads] = stats


def time_stages(rows: list[Row], image: Any, iterations: int) -> None:
    """Median ms of preprocess / network / decode alone, 1 thread (for ``--breakdown``)."""
    import numpy as np
    import torch

    from edgekit.benchmarking import measure
    from edgekit.model.postprocess import as_rgb_array, decode, preprocess

    array = as_rgb_array(image)
    size = (array.shape[1], array.shape[0])
    for row in rows:
        predictor = row.make(1)
        torch.set_num_threads(1)
        info = predictor.info
        tensor = preprocess(array, info.preprocessing)
        outputs = predictor.run(tensor)
        stages = {
            "preprocess": partial(preprocess, array, info.preprocessing),
            "network": partial(predictor.run, tensor),
            "decode": partial(decode, outputs, info, size),
        }
        for stage, fn in stages.items():
            stats = measure(fn, name=stage, threads=1, iterations=iterations, warmup=3)
            row.breakdown[stage] = stats.p50_ms
        row.breakdown["sum"] = float(np.sum([row.breakdown[s] for s in stages]))


def score(predictor: Any, data: Any, desc: str) -> float:
    from edgekit.model.evaluate import evaluate

    return evaluate(predictor, data, progress_desc=desc).ap50


def _total_seconds(metrics_path: Path) -> float | None:
    """``training.total_seconds`` of a model's metrics.json (None when absent)."""
    if not metrics_path.is_file():
        return None
    return json.loads(metrics_path.read_text())["training"].get("total_seconds")


def train_real(data: Path, work: Path) -> tuple[Path, dict[str, Any], bool]:
    """The real training split from scratch (no pretraining), seed 0; cached in ``work``."""
    out = work / "real-train-scratch-seed0"
    model, metrics_path = out / "model.onnx", out / "metrics.json"
    if model.is_file() and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        if metrics["training"]["data"].get("path") == str(data.resolve()):
            return model, metrics, True
    from edgekit.model.train import train

    result = train(data, out, seed=0, init=None)
    return result.model_path, result.metrics, False


def environment() -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        **machine_info(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onnxruntime": onnxruntime.__version__,
    }


def speedup_line(by_name: dict[str, Row]) -> str:
    """The ratios of this run, which travel between machines better than milliseconds."""
    eager, fp32, int8 = (by_name[n].latency[1].p50_ms for n in (EAGER, FP32, INT8))
    two = by_name[INT8].latency[2].p50_ms
    return (
        f"**Speed-up, measured in this run (p50, batch 1, 1 thread):** ONNX Runtime int8 "
        f"{eager / int8:.2f}x and ONNX Runtime fp32 {eager / fp32:.2f}x faster than PyTorch "
        f"eager fp32; int8 {fp32 / int8:.2f}x faster than fp32; int8 on 2 threads runs at "
        f"{int8 / two:.2f}x its 1-thread speed."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, help="timed calls per row and thread count")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few iterations, 20 synthetic images, small calibration; trains nothing",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tag-scratches folder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--model", type=Path, help="exported edgekit ONNX (default: shipped)")
    parser.add_argument("--skip-train", action="store_true", help="do not train on the real split")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time preprocess/network/decode alone"
    )
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 3)")
    add_readme_option(parser)
    args = parser.parse_args(argv)

    from edgekit.benchmarking import format_table
    from edgekit.data import load_image
    from edgekit.model import PRETRAINED_SYNTHETIC, default_model_path
    from edgekit.model.evaluate import evaluation_data, synthetic_validation
    from edgekit.model.predict import Predictor
    from edgekit.model.torch_weights import TorchPredictor

    iterations = args.iterations or (10 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    synthetic_count = 20 if args.quick else 200
    work = args.work.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = (args.model or default_model_path()).expanduser().resolve()
    data = args.data.expanduser()
    has_data = _has_data(data)
    started = time.perf_counter()

    fp32, fp32_status = compile_cached(source, "onnxruntime-fp32", work, quick=args.quick)
    int8, int8_status = compile_cached(source, "onnxruntime-int8", work, quick=args.quick)
    rows = [
        Row(EAGER, lambda t: TorchPredictor(source, threads=t), torch_weights_file(source, work)),
        Row(FP32, lambda t: Predictor(fp32, threads=t), fp32),
        Row(INT8, lambda t: Predictor(int8, threads=t), int8),
    ]

    synthetic = synthetic_validation(synthetic_count)
    real_val = evaluation_data(data, "val") if has_data else None
    if real_val is not None and real_val.samples:
        # A real photo when there is one (never copied: read from the data set in place).
        photo = real_val.samples[0].image_path
        image = load_image(photo)
        image_note = f"the photo {photo.name} ({image.shape[1]}x{image.shape[0]}) of {data.name}"
    else:
        image = synthetic[0][0]  # a 450x300 render, the size of the real photos
        image_note = "a 450x300 synthetic render (no data set, so no real photo)"
    time_rows(rows, image, iterations, rounds, max_seconds=60.0)
    if args.breakdown:
        time_stages(rows, image, max(10, iterations // 2))

    for row in rows:
        predictor = row.make(2)
        row.ap_synthetic = score(predictor, synthetic, f"{row.name}: synthetic")
        if real_val is not None:
            row.ap_real = score(predictor, real_val, f"{row.name}: real val")

    # Second table: synthetic-only (shipped) vs trained on the real training split.
    training: dict[str, Any] = {"shipped": None, "real": None, "real_status": None}
    shipped_metrics_path = source.parent / "metrics.json"
    shipped_seconds = _total_seconds(shipped_metrics_path)
    # The source model itself (not a compiled copy), scored with ONNX Runtime.
    source_predictor = Predictor(source, threads=2)
    training["shipped"] = {
        "model": str(source),
        "ap50_real_val": score(source_predictor, real_val, "source: real") if has_data else None,
        "ap50_synthetic": score(source_predictor, synthetic, "source: synthetic"),
        "train_seconds": shipped_seconds,
    }
    cached_real = (work / "real-train-scratch-seed0" / "model.onnx").is_file()
    if not has_data:
        training["real_status"] = f"not run (no data set at {data})"
    elif args.skip_train:
        training["real_status"] = "not run (--skip-train)"
    elif args.quick and not cached_real:
        training["real_status"] = "not run (--quick trains nothing; no cached model in --work)"
    if training["real_status"] is None:
        model_path, metrics, cached = train_real(data, work)
        predictor = Predictor(model_path, threads=2)
        training["real"] = {
            "model": str(model_path),
            "cached": cached,
            "ap50_real_val": score(predictor, real_val, "real-trained: real"),
            "ap50_synthetic": score(predictor, synthetic, "real-trained: synth"),
            "train_seconds": metrics["training"].get("total_seconds"),
            "epochs": metrics["training"]["settings"]["epochs"],
            "train_images": metrics["training"]["data"].get("train_images"),
        }

    # ---- print -----------------------------------------------------------------------
    env = environment()
    out = BenchOutput("model_latency", args.readme)
    by_name = {row.name: row for row in rows}
    out.text(speedup_line(by_name))
    table_rows = []
    for row in rows:
        one, two = row.latency[1], row.latency[2]
        table_rows.append(
            {
                "model": row.name,
                "p50_1": one.p50_ms,
                "p95_1": one.p95_ms,
                "p50_2": two.p50_ms,
                "p95_2": two.p95_ms,
                "ips": f"{one.images_per_s:.1f}",
                "size": _mb(row.path),
                "ap_real": _fmt(row.ap_real),
                "ap_syn": _fmt(row.ap_synthetic),
            }
        )
    columns = [
        ("model", "model"),
        ("p50_1", "p50 ms (1 thr)"),
        ("p95_1", "p95 ms (1 thr)"),
        ("p50_2", "p50 ms (2 thr)"),
        ("p95_2", "p95 ms (2 thr)"),
        ("ips", "images/s (1 thr)"),
        ("size", "file size"),
        ("ap_real", "AP50 real val"),
        ("ap_syn", f"AP50 synthetic ({synthetic_count})"),
    ]
    n_real = len(real_val) if real_val is not None else 0
    out.table(
        format_table(table_rows, columns),
        f"Latency: {image_note}, batch 1, end to end (preprocess + network + decode; "
        f"the same `predict` path in every row, only the network differs), p50/p95 of "
        f"{rows[0].latency[1].iterations} calls, best of {rounds} interleaved round(s); "
        f"images/s = 1000 / mean ms at 1 thread. AP50 at IoU 0.5: real val = "
        + (f"{n_real} photos of {data.name} (split seed 0)" if has_data else "n/a (no data set)")
        + f", synthetic = synthetic_validation({synthetic_count}). Eager weights: the ONNX "
        f"file's initializers loaded into ScratchDetector (size = torch.save state dict). "
        f"torch {env['torch']} ({env['torch_cpu_capability']}), onnxruntime "
        f"{env['onnxruntime']}. compile_model parity gate: fp32 {fp32_status}, "
        f"int8 {int8_status}.",
    )

    if args.breakdown:
        stage_rows = [
            {
                "model": row.name,
                "pre": row.breakdown["preprocess"],
                "net": row.breakdown["network"],
                "dec": row.breakdown["decode"],
                "sum": row.breakdown["sum"],
            }
            for row in rows
        ]
        out.table(
            format_table(
                stage_rows,
                [
                    ("model", "stage p50 ms, 1 thread"),
                    ("pre", "preprocess"),
                    ("net", "network"),
                    ("dec", "decode"),
                    ("sum", "sum"),
                ],
            )
        )

    real = training["real"]
    pretrained = None
    if args.model is None and PRETRAINED_SYNTHETIC.is_file():
        pretrained_predictor = Predictor(PRETRAINED_SYNTHETIC, threads=2)
        pretrained = {
            "model": "(c) synthetic renders only (shipped/synthetic.onnx, the start of (a))",
            "real": _fmt(score(pretrained_predictor, real_val, "synthetic-only: real"))
            if has_data
            else "n/a",
            "syn": _fmt(score(pretrained_predictor, synthetic, "synthetic-only: synth")),
            "time": _fmt(
                _total_seconds(PRETRAINED_SYNTHETIC.with_name("synthetic-metrics.json")), 0
            )
            + " s",
        }
    second = [
        {
            "model": "(a) shipped: synthetic pretraining, fine-tuned on the real train split"
            if args.model is None
            else f"(a) {source.name}",
            "real": _fmt(training["shipped"]["ap50_real_val"]),
            "syn": _fmt(training["shipped"]["ap50_synthetic"]),
            "time": _fmt(shipped_seconds, 0) + " s" if shipped_seconds else "n/a",
        },
        {
            "model": "(b) the same recipe from scratch (--init none), seed 0"
            + (f" ({real['train_images']} photos, {real['epochs']} epochs)" if real else ""),
            "real": _fmt(real["ap50_real_val"]) if real else training["real_status"],
            "syn": _fmt(real["ap50_synthetic"]) if real else "not run",
            "time": (
                (_fmt(real["train_seconds"], 0) + " s" + (" (cached)" if real["cached"] else ""))
                if real
                else "not run"
            ),
        },
    ]
    if pretrained is not None:
        second.append(pretrained)
    out.table(
        format_table(
            second,
            [
                ("model", "model"),
                ("real", "AP50 real val"),
                ("syn", f"AP50 synthetic ({synthetic_count})"),
                ("time", "training time"),
            ],
        )
    )

    # Goals: reported, never asserted.
    speedup = by_name[EAGER].latency[1].p50_ms / by_name[INT8].latency[1].p50_ms
    drops = {
        name: abs(getattr(by_name[FP32], attr) - getattr(by_name[INT8], attr))
        for name, attr in (("real val", "ap_real"), ("synthetic", "ap_synthetic"))
        if getattr(by_name[FP32], attr) is not None
    }
    goals = [
        {
            "goal": f"int8 >= {GOAL_SPEEDUP:g}x faster than PyTorch eager fp32 (batch 1, 1 thread)",
            "met": speedup >= GOAL_SPEEDUP,
            "measured": f"{speedup:.2f}x (p50 {by_name[EAGER].latency[1].p50_ms:.1f} ms -> "
            f"{by_name[INT8].latency[1].p50_ms:.1f} ms)",
        },
        {
            "goal": f"int8 AP50 within {GOAL_INT8_AP_DROP} of fp32",
            "met": max(drops.values()) <= GOAL_INT8_AP_DROP,
            "measured": ", ".join(f"|diff| {v:.3f} on {k}" for k, v in drops.items()),
        },
        {
            "goal": f"real-trained AP50 >= {GOAL_REAL_AP} on real val",
            "met": None if real is None else real["ap50_real_val"] >= GOAL_REAL_AP,
            "measured": f"{real['ap50_real_val']:.3f}" if real else training["real_status"],
        },
    ]
    lines = []
    for goal in goals:
        verdict = "not run" if goal["met"] is None else ("met" if goal["met"] else "NOT met")
        lines.append(f"- goal: {goal['goal']}: {verdict} — {goal['measured']}")
    out.text("\n".join(lines))
    out.finish()
    print(f"\n({time.perf_counter() - started:.0f} s; cache: {work})")

    if args.json:
        payload = {
            "rows": [
                {
                    "name": row.name,
                    "file": str(row.path),
                    "size_bytes": row.path.stat().st_size,
                    "latency": {str(t): s.to_json() for t, s in row.latency.items()},
                    "ap50_real_val": row.ap_real,
                    "ap50_synthetic": row.ap_synthetic,
                    "breakdown_ms": row.breakdown or None,
                }
                for row in rows
            ],
            "training": training,
            "goals": goals,
            "settings": {
                "iterations": iterations,
                "rounds": rounds,
                "synthetic_count": synthetic_count,
                "real_val_images": n_real,
                "timed_image": image_note,
                "source": str(source),
                "data": str(data),
                "quick": args.quick,
                "compile_status": {"fp32": fp32_status, "int8": int8_status},
            },
            "environment": env,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
