"""What the model agent costs over running ONNX Runtime in-process.

Runs the same model three ways and prints p50/p95 latency per inference:

1. in-process, the session edgekit's ONNX runtime opens (the floor; the agent's
   sessions have the same options);
2. agent Predict with the input in the gRPC message (``byte_data``);
3. agent Predict with the input in POSIX shared memory.

The agent runs as a separate process (``edgekit agent serve``), as on a
device. Two models: the shipped one (``edgekit/model/shipped/model.onnx``;
without it, a tiny random detector with the same input shape), and a tiny
random detector with the same input shape, whose run is short enough that the
agent's own cost is not lost in the model's run-to-run noise. Goal: shared
memory adds at most 0.3 ms p50 over in-process.

    python benchmarks/agent_overhead.py [--iterations 200] [--model PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import BenchOutput, add_readme_option, markdown_table

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "edgekit" / "model" / "shipped" / "model.onnx"
DEFAULT_SHAPE = (1, 3, 256, 384)  # the shipped detector's input (ModelConfig defaults)
GOAL_MS = 0.3


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def _time_blocks(fns: list, iterations: int, warmup: int, block: int = 25) -> list[list[float]]:
    """Seconds per call for each function, in blocks of ``block`` calls taken in turn.

    Blocks spread each path over the whole run, so load from other processes hits all
    paths alike, while consecutive calls of one path keep its caches and ONNX Runtime's
    thread pool warm (one call per turn would measure the other paths' leftovers).
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    while len(samples[0]) < iterations:
        for fn, out in zip(fns, samples, strict=True):
            fn()  # the first call after another path's block is not counted
            for _ in range(min(block, iterations - len(out))):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--model", type=Path, help="an edgekit ONNX file (default: shipped)")
    parser.add_argument("--quick", action="store_true", help="30 iterations after 5 warm-up")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup = min(args.iterations, 30), min(args.warmup, 5)

    from edgekit.agent.client import AgentClient
    from edgekit.agent.testing import short_tempdir, signed_package
    from edgekit.runtimes import get_runtime

    work = short_tempdir("ek-bench-")
    proc = None
    try:
        h, w = DEFAULT_SHAPE[2:]
        model = args.model or (SHIPPED if SHIPPED.is_file() else None)
        tiny = signed_package(work, name="tiny", height=h, width=w)
        if model is None:
            source = f"tiny random detector, input {list(DEFAULT_SHAPE)} (shipped model absent)"
            pkg = tiny
        else:
            source = str(model)
            pkg = signed_package(work, name="bench", model=model, key_dir=work / "keys")
        packages = [("bench", Path(source).name if model else source, pkg)]
        if model is not None:
            packages.append(("tiny", "tiny random detector (same input)", tiny))

        sock = work / "agent.sock"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgekit",
                "agent",
                "serve",
                "--socket",
                str(sock),
                "--public-key",
                str(pkg.public_key),
                "--log-level",
                "WARNING",
            ],
            stderr=subprocess.DEVNULL,
        )
        all_results = []
        with AgentClient(sock) as client:
            client.wait_ready(timeout=30)
            for name, label, package in packages:
                session = get_runtime("onnxruntime").open(package.model)
                (inp,) = session.inputs
                shape = [d if d > 0 else 1 for d in inp.shape]
                x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
                feeds = {inp.name: x}
                client.load_model(name, package.package)
                ref = session.run(feeds)
                for shm in (False, True):
                    got = client.predict(name, feeds, shared_memory=shm)
                    for a, b in zip(got.values(), ref, strict=True):
                        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
                rows = [
                    ("in-process ONNX Runtime", lambda s=session, f=feeds: s.run(f)),
                    ("agent Predict, bytes", lambda n=name, f=feeds: client.predict(n, f)),
                    (
                        "agent Predict, shared memory",
                        lambda n=name, f=feeds: client.predict(n, f, shared_memory=True),
                    ),
                ]
                samples = _time_blocks([fn for _, fn in rows], args.iterations, args.warmup)
                results = [
                    (path, *_percentiles(s)) for (path, _), s in zip(rows, samples, strict=True)
                ]
                all_results.append((label, results))

        out = BenchOutput("agent_overhead", args.readme)
        summary = []
        for label, results in all_results:
            base = results[0][1]
            summary.append(
                f"{label}: agent Predict p50 is {results[1][1] / base:.2f}x the in-process "
                f"call with bytes, {results[2][1] / base:.2f}x with shared memory"
            )
        out.text("**Measured in this run:** " + "; ".join(summary) + ".")
        table_rows = []
        for label, results in all_results:
            base = results[0][1]
            table_rows += [
                [label, path, f"{p50:.2f}", f"{p95:.2f}", f"{p50 - base:+.2f}"]
                for path, p50, p95 in results
            ]
        table = markdown_table(["model", "path", "p50 ms", "p95 ms", "p50 overhead ms"], table_rows)
        out.table(
            table,
            f"Input float32 {list(DEFAULT_SHAPE)} ({x.nbytes / 1e6:.2f} MB) for both models; "
            f"{args.iterations} iterations after {args.warmup} warm-up, in blocks of 25 "
            "taken in turn.",
        )
        verdicts = []
        for label, results in all_results:
            overhead = results[2][1] - results[0][1]
            verdict = "met" if overhead <= GOAL_MS else "NOT met"
            verdicts.append(f"{label}: {verdict} ({overhead:+.2f} ms)")
        out.text(f"goal (shared memory adds <= {GOAL_MS} ms p50): " + "; ".join(verdicts))
        out.finish()
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
