"""Staged rollouts on the local backend: a canary of 2 and a fleet of 8 devices.

Starts its own local endpoints in a temporary home, starts 10 device runtimes in one
thing group, and deploys a first model (a tiny detector that flags nothing) to all of
them. Then times two rollouts with ``edgekit.rollout.rollout``:

- a candidate that behaves like the current model: time to PROMOTED (canary of 2, then
  the other 8), with and without the soak windows;
- a candidate that flags every image as defective: time to ROLLED_BACK (the canary's
  defect-rate gate fails, the 2 canary devices go back to the previous versions and
  prove the previous package again).

The clock starts when ``rollout()`` is called (it publishes the candidate's components
first) and stops when it returns. Everything is stopped and deleted afterwards.

    python benchmarks/rollout.py                      # canary 2, fleet 8, soak 10 s
    python benchmarks/rollout.py --soak 5 --interval 0.5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

from edgekit.settings import Settings

GROUP = "bench-line"


def _package(settings: Settings, out: Path, version: str, bias: float) -> Path:
    from edgekit.compile.testing import build_tiny_model
    from edgekit.components.build import signing_keys
    from edgekit.package import build_package

    private, _ = signing_keys(None, settings)
    model = build_tiny_model(out.with_suffix(".onnx"), heatmap_bias=bias)
    return build_package(
        model, name=settings.model_name, version=version, key=private, out=out
    ).path


def _soak_seconds(record: Any) -> float:
    total = 0.0
    for stage in record.stages:
        if stage.soak_started_at and stage.finished_at:
            start = dt.datetime.fromisoformat(stage.soak_started_at)
            total += (dt.datetime.fromisoformat(stage.finished_at) - start).total_seconds()
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--canary", type=int, default=2)
    parser.add_argument("--fleet", type=int, default=8, help="devices besides the canary")
    parser.add_argument("--soak", type=float, default=10.0, help="soak per stage (s)")
    parser.add_argument("--interval", type=float, default=0.5, help="InferenceInterval (s)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    parser.add_argument("--quick", action="store_true", help="canary 1 + fleet 2, soak 3 s")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.canary, args.fleet, args.soak = min(args.canary, 1), min(args.fleet, 2), 3.0
    os.environ.setdefault("EDGEKIT_QUIET", "1")

    from edgekit.components import build_components, publish_components
    from edgekit.deploy import deploy
    from edgekit.local import endpoints
    from edgekit.local.device import add_device
    from edgekit.rollout import Gates, rollout

    home = Path(tempfile.mkdtemp(prefix="edgekit-bench-rollout-"))
    settings = Settings(backend="local", local_home=home, thing_group=GROUP)
    count = args.canary + args.fleet
    things = [f"line-{i:02d}" for i in range(count)]
    # The local machine is small and shared: latency ratios are noisy with 10 devices on it.
    gates = Gates(max_p95_ratio=5.0)
    print(
        f"home {home}; cpus {os.cpu_count()}; {count} devices; soak {args.soak} s; "
        f"inference every {args.interval} s; gates {gates}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        endpoints.up(home, timeout=120)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda t: add_device(t, GROUP, home, timeout=120), things))
        print(f"  {count} device runtimes in {time.monotonic() - started:.1f} s", flush=True)
        work = home / "bench"
        first = _package(settings, work / "m-1.0.0.tar.gz", "1.0.0", -8.0)
        built = build_components(settings, out_dir=work / "first", model_package=first)
        publish_components(settings, built)
        started = time.monotonic()
        deploy(
            settings,
            thing_group=GROUP,
            configuration={settings.inference_component: {"InferenceInterval": args.interval}},
            timeout=args.timeout,
        )
        print(
            f"  first model proven on {count} devices in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        for label, version, bias in (
            ("candidate like the current model", "1.1.0", -8.0),
            ("candidate that flags every image (fails defect_rate_delta)", "1.2.0", 8.0),
        ):
            candidate = _package(settings, work / f"m-{version}.tar.gz", version, bias)
            t0 = time.monotonic()
            record = rollout(
                settings,
                candidate,
                canary=args.canary,
                soak=args.soak,
                gates=gates,
                timeout=args.timeout,
            )
            wall = time.monotonic() - t0
            soak = _soak_seconds(record)
            row = {
                "label": label,
                "status": record.status,
                "gate": record.gate or "-",
                "wall": wall,
                "soak": soak,
                "publish": record.timings.get("publish_s", float("nan")),
                "canary": record.timings.get("canary_proven_s", float("nan")),
                "fleet": record.timings.get("fleet_proven_s", float("nan")),
                "rollback": record.timings.get("rollback_s", float("nan")),
            }
            rows.append(row)
            print(
                f"  {label}: {record.status} in {wall:.1f} s ({soak:.1f} s of soak)"
                + (f", gate {record.gate}: {record.gate_detail}" if record.gate else ""),
                flush=True,
            )
    finally:
        endpoints.down(home)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    out = BenchOutput("rollout", args.readme)
    if rows and rows[0]["wall"] > 0:
        share = (rows[0]["wall"] - rows[0]["soak"]) / rows[0]["wall"]
        out.text(
            f"**Measured in this run:** soaking is {1 - share:.0%} of the time to "
            f"{rows[0]['status']}; the rest ({share:.0%}) is edgekit's own work."
        )
    table_rows = []
    for r in rows:
        outcome = r["status"] + ("" if r["gate"] == "-" else f" ({r['gate']})")
        cells = [r["wall"], r["wall"] - r["soak"], r["publish"], r["canary"], r["fleet"]]
        cells.append(r["rollback"])
        table_rows.append([r["label"], outcome, *(f"{v:.1f}".replace("nan", "-") for v in cells)])
    headers = ["rollout", "outcome", "total (s)", "soak excluded (s)", "publish (s)"]
    headers += ["canary proven (s)", "fleet proven (s)", "rollback proven (s)"]
    out.table(
        markdown_table(headers, table_rows),
        f"Canary {args.canary} + fleet {args.fleet} local devices, soak {args.soak:g} s per "
        f"stage, inference every {args.interval:g} s.",
    )
    out.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
