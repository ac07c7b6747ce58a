"""Device-side memory: resident set size of every device process after the demo runs a while.

Starts the local backend in a temporary home (moto, the Greengrass emulator, the MQTT
broker), one device runtime, and deploys the demo's three components (model package,
model agent, inference app) as ``end_to_end_latency.py`` does, at the demo's default
inference interval. After ``--seconds`` of inspecting it reads the RSS of the device
runtime and of every process it started (``/proc/<pid>/status`` VmRSS; stdlib only),
names each by what it runs, and prints one row per process and the total. Goal: the
device side under 200 MB RSS in all. It also samples the total once a second while it
waits and prints the highest: processes that live only for a while (the agent's capture
upload process) count there even when the final reading misses them.

    python benchmarks/device_memory.py                 # 60 s
    python benchmarks/device_memory.py --seconds 30 --model tiny
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

os.environ.setdefault("EDGEKIT_QUIET", "1")
GOAL_MB = 200.0


def _status(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (VmRSS; 0 for a process that has no memory)."""
    value = _status(pid).get("VmRSS", "0 kB").split()[0]
    return int(value) / 1024.0


def pss_mb(pid: int) -> float | None:
    """Proportional set size of ``pid`` in MB (shared pages split between their users), or
    None without /proc/<pid>/smaps_rollup (Linux before 4.14)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (walks /proc/<pid>/stat's parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def sample(root: int) -> tuple[float, bool]:
    """RSS of ``root`` and every process below it, in MB (processes that end meanwhile: 0),
    and whether the agent's capture upload process is among them."""
    total, uploading = 0.0, False
    for pid in descendants(root):
        try:
            total += rss_mb(pid)
        except OSError:
            continue
        uploading = uploading or (label(pid) or "").startswith("capture upload")
    return total, uploading


def label(pid: int) -> str | None:
    """What the process runs (the device runtime, the agent, the app...); None for shells."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    text = " ".join(argv)
    if "edgekit.local.device" in text:
        return "device runtime (Greengrass nucleus stand-in)"
    if "agent serve" in text:
        return "model agent (edgekit agent serve)"
    if "edgekit.edge.app" in text:
        return "inference app (edgekit.edge.app)"
    if "edgekit.agent.capture_upload" in text:
        return "capture upload (the agent's child, while uploads are due)"
    if argv and os.path.basename(argv[0]).startswith("python"):
        return " ".join(argv[1:4])
    return None  # sh -c wrappers: a few hundred kB, listed under "other"


def publish_bench_components(settings: Any, home: Path, model: str) -> None:
    """Build and publish the three components into ``home``'s local backend, with the
    shipped model or (``model == "tiny"``) a tiny detector packaged as 1.0.0."""
    from edgekit.components import build_components, publish_components
    from edgekit.components.build import signing_keys

    package = None
    if model == "tiny":
        from edgekit.compile.testing import build_tiny_model
        from edgekit.package import build_package

        private, _ = signing_keys(None, settings)
        package = build_package(
            build_tiny_model(home / "tiny.onnx"),
            name=settings.model_name,
            version="1.0.0",
            key=private,
            out=home / "tiny.tar.gz",
        ).path
    built = build_components(settings, out_dir=home / "build", model_package=package)
    publish_components(settings, built)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="inspecting time")
    parser.add_argument("--interval", type=float, default=None, help="InferenceInterval s")
    parser.add_argument("--model", choices=["shipped", "tiny"], default="shipped")
    parser.add_argument(
        "--no-capture",
        action="store_true",
        help="CaptureBand [] (no CaptureData, so the agent never starts its upload process)",
    )
    parser.add_argument("--quick", action="store_true", help="30 s instead of 60 s")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 30.0)

    from edgekit.deploy import deploy
    from edgekit.local import endpoints
    from edgekit.local.device import add_device
    from edgekit.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="edgekit-mem-bench-"))
    group = "memory-bench"
    try:
        endpoints.up(home)
        settings = Settings(local_home=home, thing_group=group)
        device = add_device("mem-device", group, home)
        assert device.pid is not None, "the device runtime did not start"
        publish_bench_components(settings, home, args.model)
        app_config: dict[str, object] = {}
        if args.interval is not None:
            app_config["InferenceInterval"] = args.interval
        if args.no_capture:
            app_config["CaptureBand"] = []
        configuration = {settings.inference_component: app_config} if app_config else None
        deploy(settings, thing_group=group, configuration=configuration, timeout=300)
        samples: list[tuple[float, bool]] = []
        peak, peak_at, started = 0.0, 0.0, time.monotonic()
        while (elapsed := time.monotonic() - started) < args.seconds:
            time.sleep(min(1.0, args.seconds - elapsed))
            samples.append(sample(device.pid))
            if samples[-1][0] > peak:
                peak, peak_at = samples[-1][0], time.monotonic() - started
        mean = sum(t for t, _ in samples) / max(1, len(samples))
        uploading = sum(1 for _, u in samples if u)

        rows: list[list[str]] = []
        total = other = pss_total = other_pss = 0.0
        for pid in sorted(descendants(device.pid)):
            try:
                mb = rss_mb(pid)
            except OSError:
                continue
            pss = pss_mb(pid) or 0.0
            total += mb
            pss_total += pss
            what = label(pid)
            if what is None:
                other += mb
                other_pss += pss
                continue
            rows.append([what, str(pid), f"{mb:.1f}", f"{pss:.1f}"])
        if other:
            rows.append(["other (shell wrappers)", "", f"{other:.1f}", f"{other_pss:.1f}"])
        rows.append(["**total**", "", f"**{total:.1f}**", f"**{pss_total:.1f}**"])

        out = BenchOutput("device_memory", args.readme)
        verdict = "met" if total <= GOAL_MB else "NOT met"
        out.text(
            f"**Measured in this run:** the device side holds {total:.0f} MB RSS after "
            f"{args.seconds:g} s of inspecting (goal <= {GOAL_MB:.0f} MB: {verdict}). Sampled "
            f"once a second meanwhile: mean {mean:.0f} MB, highest {peak:.0f} MB (at "
            f"{peak_at:.0f} s); the agent's capture upload process was alive in {uploading} of "
            f"{len(samples)} samples."
        )
        interval = "the demo's default interval" if args.interval is None else f"{args.interval} s"
        if args.no_capture:
            interval += ", no data capture (CaptureBand [])"
        else:
            interval += (
                ", data capture on (the agent uploads captures to S3 from a child process it "
                "starts while uploads are due, listed when alive)"
            )
        out.table(
            markdown_table(["device process", "pid", "RSS MB", "PSS MB"], rows),
            f"Model: {args.model}; one device with the demo's components (model package, model "
            f"agent, inference app), {interval}, read after {args.seconds:g} s. RSS (VmRSS) counts "
            "the shared libraries every process maps (Python, numpy, protobuf) once per process; "
            "PSS splits them between the processes, so its total is what the device holds (it "
            "splits them with any other process on the machine that maps them too, so it varies "
            "with what else runs).",
        )
        out.finish()
        return 0
    finally:
        endpoints.down(home)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
