"""OpenVINO beside ONNX Runtime: the scratch detector at fp32, bf16 and int8, and what auto picks.

Rows (the shipped model by default), each compiled by ``compile_model`` with its parity gate:

1. ONNX Runtime fp32 (``onnxruntime-fp32``) and int8 (``onnxruntime-int8``, static QDQ);
2. OpenVINO strict fp32 (``openvino-fp32``: ``INFERENCE_PRECISION_HINT`` f32);
3. OpenVINO at the CPU plugin's default precision, bf16 on CPUs with AVX-512 BF16 or AMX
   (``openvino-bf16``; the row says what the default is on this machine);
4. OpenVINO int8 (``openvino-int8``: the same QDQ file as ONNX Runtime int8, float parts f32).

Every row times the same end-to-end call, ``predictor.predict(image)`` at batch 1 (the first
photo of the real validation split when the data set is there, else a 450x300 synthetic
render), through the runtime registry exactly as ``predict`` and the agent run it, at 1 and 2
threads, rows interleaved over rounds (each keeps its least disturbed round); "network" is
``predictor.run(tensor)`` alone at 1 thread. Then the ``auto`` target runs on the same machine
and its decision (every candidate's p50 and parity verdict, the choice, the reason) is printed.

    .venv/bin/python benchmarks/openvino_latency.py            # full
    .venv/bin/python benchmarks/openvino_latency.py --quick    # about a minute
    .venv/bin/python benchmarks/openvino_latency.py --quick --readme README.md

Rows whose runtime is not installed (no ``openvino``) are listed as skipped with the hint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option
from model_latency import DEFAULT_DATA, DEFAULT_WORK, _has_data, _mb, compile_cached

THREADS = (1, 2)


@dataclass
class Row:
    name: str
    target: str
    runtime: str = ""
    path: Path | None = None
    status: str = ""
    skipped: str = ""
    latency: dict[int, Any] = field(default_factory=dict)
    network_ms: float | None = None
    ap_real: float | None = None


def default_precision() -> str:
    """OpenVINO's CPU default INFERENCE_PRECISION_HINT on this machine (bf16 / f32)."""
    import openvino

    value = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    return str(value.to_string())


def time_rows(rows: list[Row], image: Any, iterations: int, rounds: int) -> None:
    from edgekit.benchmarking import measure
    from edgekit.model.postprocess import as_rgb_array, preprocess
    from edgekit.model.predict import Predictor

    live = [r for r in rows if not r.skipped]
    per_round = max(3, iterations // rounds)
    for threads in THREADS:
        predictors = [Predictor(r.path, threads=threads, runtime=r.runtime) for r in live]
        for _ in range(rounds):
            for row, predictor in zip(live, predictors, strict=True):
                stats = measure(
                    lambda p=predictor: p.predict(image),
                    name=row.name,
                    threads=threads,
                    iterations=per_round,
                    warmup=3,
                    max_seconds=60.0,
                )
                best = row.latency.get(threads)
                if best is None or stats.p50_ms < best.p50_ms:
                    row.latency[threads] = stats
        if threads == 1:
            array = as_rgb_array(image)
            for row, predictor in zip(live, predictors, strict=True):
                tensor = preprocess(array, predictor.info.preprocessing)
                stats = measure(
                    lambda p=predictor, t=tensor: p.run(t),
                    name=row.name,
                    threads=1,
                    iterations=iterations,
                    warmup=3,
                )
                row.network_ms = stats.p50_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, help="timed calls per row and thread count")
    parser.add_argument("--quick", action="store_true", help="few iterations, 20 golden images")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 3)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tag-scratches folder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--model", type=Path, help="exported edgekit ONNX (default: shipped)")
    parser.add_argument(
        "--auto-golden",
        type=int,
        default=200,
        metavar="N",
        help="golden images of the auto step's parity checks (default 200, as `edgekit "
        "compile`, also with --quick: 20 images decide int8 parity by noise)",
    )
    add_readme_option(parser)
    args = parser.parse_args(argv)

    import onnxruntime

    from edgekit.benchmarking import format_table
    from edgekit.compile import compile_model, get_compiler
    from edgekit.data import load_image
    from edgekit.errors import CompileError, ModelError
    from edgekit.model import default_model_path
    from edgekit.model.evaluate import evaluate, evaluation_data, synthetic_validation
    from edgekit.model.predict import Predictor
    from edgekit.runtimes import get_runtime

    iterations = args.iterations or (30 if args.quick else 200)
    rounds = args.rounds or 3
    golden = 20 if args.quick else 200
    work = args.work.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = (args.model or default_model_path()).expanduser().resolve()
    started = time.perf_counter()

    try:
        get_runtime("openvino")
        ov_default = default_precision()
        import openvino

        ov_version = openvino.__version__.split("-")[0]
        missing = ""
    except ModelError as exc:
        ov_default, ov_version, missing = "n/a", "not installed", str(exc)
    rows = [
        Row("ONNX Runtime fp32", "onnxruntime-fp32"),
        Row("ONNX Runtime int8", "onnxruntime-int8"),
        Row("OpenVINO fp32 (strict f32)", "openvino-fp32"),
        Row(f"OpenVINO default precision ({ov_default} here; openvino-bf16)", "openvino-bf16"),
        Row("OpenVINO int8 (same QDQ file, float parts f32)", "openvino-int8"),
    ]
    for row in rows:
        if row.target.startswith("openvino") and missing:
            row.skipped = missing
            continue
        row.path, row.status = compile_cached(source, row.target, work, quick=args.quick)
        row.runtime = get_compiler(row.target).runtime

    data = args.data.expanduser()
    real_val = evaluation_data(data, "val") if _has_data(data) else None
    if real_val is not None and real_val.samples:
        photo = real_val.samples[0].image_path
        image = load_image(photo)
        image_note = f"the photo {photo.name} ({image.shape[1]}x{image.shape[0]}) of {data.name}"
    else:
        image = synthetic_validation(1)[0][0]
        image_note = "a 450x300 synthetic render (no data set, so no real photo)"
    time_rows(rows, image, iterations, rounds)
    if real_val is not None:
        for row in rows:
            if not row.skipped:
                predictor = Predictor(row.path, threads=2, runtime=row.runtime)
                row.ap_real = evaluate(predictor, real_val, progress_desc=row.name).ap50

    out = BenchOutput("openvino_latency", args.readme)
    base = {r.target: r for r in rows}
    table = []
    for row in rows:
        if row.skipped:
            table.append({"model": row.name, "p50_1": "skipped", "status": row.skipped})
            continue
        one, two = row.latency[1], row.latency[2]
        ort = base["onnxruntime-int8" if "int8" in row.target else "onnxruntime-fp32"]
        table.append(
            {
                "model": row.name,
                "runtime": row.runtime,
                "p50_1": one.p50_ms,
                "p95_1": one.p95_ms,
                "p50_2": two.p50_ms,
                "net": row.network_ms,
                "vs": f"{ort.latency[1].p50_ms / one.p50_ms:.2f}x",
                "size": _mb(row.path) if row.path else "",
                "ap": "n/a" if row.ap_real is None else f"{row.ap_real:.3f}",
                "status": row.status,
            }
        )
    columns = [
        ("model", "model"),
        ("runtime", "manifest runtime"),
        ("p50_1", "p50 ms (1 thr)"),
        ("p95_1", "p95 ms (1 thr)"),
        ("p50_2", "p50 ms (2 thr)"),
        ("net", "network p50 ms (1 thr)"),
        ("vs", "speed-up vs ONNX Runtime, same precision class (1 thr)"),
        ("size", "file size"),
        ("ap", "AP50 real val"),
        ("status", f"parity gate ({golden} golden images)"),
    ]
    out.table(
        format_table(table, columns),
        f"End to end (preprocess + network + decode) on {image_note}, batch 1, through the "
        f"runtime registry (`Predictor(..., runtime=<manifest runtime>)`), p50/p95 of "
        f"{rows[0].latency[1].iterations if rows[0].latency else '?'} calls, best of {rounds} "
        f"interleaved rounds; network = the session alone. Parity gate: compile_model on "
        f"{golden} synthetic golden images (AP50 drop <= 0.02). onnxruntime "
        f"{onnxruntime.__version__}, OpenVINO {ov_version}.",
    )

    if args.quick:
        out.text(
            f"Parity column: {golden} golden images with --quick, where one box more or less "
            "moves an int8 model's AP50 by about 0.03; the auto table below gates on "
            f"{args.auto_golden}, as `edgekit compile` does."
        )
    load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    if load > cores:
        out.text(
            f"Load average {load:.1f} on {cores} usable cores while measuring: other work "
            "shared the CPU, so these milliseconds are slower and noisier than on an idle "
            "machine; compare rows within the table, and rerun on an idle machine before "
            "relying on a close call (auto's choice between candidates within ~30% of each "
            "other can change with the load)."
        )

    auto = None
    try:
        report = compile_model(
            source, "auto", work / "auto", golden_count=args.auto_golden, force=False, cache=None
        )
        auto = report.compile_info["auto"]
    except CompileError as exc:  # no candidate passed parity: printed, never hidden
        out.text(f"auto: no choice ({type(exc).__name__}: {exc})")
    if auto is not None:
        auto_rows = [
            {
                "target": c["target"] + (" **(chosen)**" if c["target"] == auto["chosen"] else ""),
                "status": c["status"],
                "p50": "n/a" if c["p50_ms"] is None else f"{c['p50_ms']:.2f}",
                "p95": "n/a" if c["p95_ms"] is None else f"{c['p95_ms']:.2f}",
                "note": c["note"] if len(c["note"]) < 120 else c["note"][:117] + "...",
            }
            for c in auto["candidates"]
        ]
        out.table(
            format_table(
                auto_rows,
                [
                    ("target", "auto candidate"),
                    ("status", "parity"),
                    ("p50", "p50 ms"),
                    ("p95", "p95 ms"),
                    ("note", "parity detail / why skipped"),
                ],
            ),
            f"`edgekit compile --target auto` on this machine (parity on {args.auto_golden} "
            f"golden images, candidates from the compile cache when compiled before): "
            f"{auto['runs']} end-to-end calls "
            f"per candidate at {auto['threads']} thread(s) over {auto['images']} golden images, "
            f"{auto['rounds']} interleaved rounds. Choice: **{auto['chosen']}**. Reason: "
            f"{auto['reason']}.",
        )
    out.finish()
    print(f"\n({time.perf_counter() - started:.0f} s; cache: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
