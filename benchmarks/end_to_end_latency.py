"""End-to-end result latency: an image read on the device -> its result at an MQTT subscriber.

Starts the local backend in a temporary home (moto, the Greengrass emulator, the MQTT
broker, one device runtime), publishes and deploys the three components (model
package, model agent, inference app) and subscribes to the results topic with paho.
The app stamps each result with the wall-clock time it read the image
(``timestamp``, millisecond resolution, truncated); the subscriber subtracts it
from its own receive time. Same machine, same clock. The path measured: read +
decode JPEG, preprocess, gRPC Predict to the agent (shared memory), decode boxes,
spool (sqlite3), IPC PublishToIoTCore, the device's MQTT connection, broker,
subscriber. Rates are set with ``InferenceInterval`` by configuration deployments.

    python benchmarks/end_to_end_latency.py                     # 10 and 100 images/s
    python benchmarks/end_to_end_latency.py --rates 10 50 --seconds 20 --model tiny
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table
from device_memory import descendants, publish_bench_components

os.environ.setdefault("EDGEKIT_QUIET", "1")


PARTS = ("preprocess", "inference", "postprocess")


def device_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` and their children (/proc/<pid>/stat)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:13]) / tick  # utime, stime
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds ignored per rate")
    parser.add_argument("--model", choices=["shipped", "tiny"], default="shipped")
    parser.add_argument("--quick", action="store_true", help="5 s per rate after 1 s warm-up")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 5.0), min(args.warmup, 1.0)

    import paho.mqtt.client as paho

    from edgekit.deploy import deploy
    from edgekit.local import endpoints
    from edgekit.local.device import add_device
    from edgekit.schemas import parse_timestamp
    from edgekit.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="edgekit-e2e-bench-"))
    group = "latency-bench"
    try:
        ep = endpoints.up(home)
        settings = Settings(local_home=home, thing_group=group)
        device = add_device("bench-device", group, home)
        publish_bench_components(settings, home, args.model)

        received: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="latency-bench")
        client.on_message = lambda c, u, m: received.put((time.time(), json.loads(m.payload)))
        ready = threading.Event()
        client.on_subscribe = lambda *a: ready.set()
        client.connect(ep.mqtt_host, ep.mqtt_port)
        client.loop_start()
        client.subscribe(settings.results_topic, 0)
        ready.wait(10)

        rows = []
        for rate in args.rates:
            deploy(
                settings,
                thing_group=group,
                configuration={
                    settings.inference_component: {
                        "InferenceInterval": 1.0 / rate,
                        "CaptureBand": [],
                        "HealthInterval": 5.0,
                    }
                },
                timeout=300,
            )
            time.sleep(args.warmup)
            device_pids = descendants(device.pid) if device.pid else []
            while not received.empty():
                received.get()
            start = time.time()
            latencies: list[float] = []
            device_ms: list[float] = []
            parts: dict[str, list[float]] = {k: [] for k in PARTS}
            cpu_start = device_cpu_seconds(device_pids)
            while time.time() - start < args.seconds:
                try:
                    got, msg = received.get(timeout=1.0)
                except queue.Empty:
                    continue
                read = parse_timestamp(msg["timestamp"]).timestamp()
                latencies.append((got - read) * 1000.0)
                device_ms.append(float(msg["latency_ms"]["total"]))
                for key, values in parts.items():
                    values.append(float(msg["latency_ms"].get(key, 0.0)))
            cpu = (device_cpu_seconds(device_pids) - cpu_start) / max(len(latencies), 1)
            achieved = len(latencies) / args.seconds
            rows.append((rate, achieved, latencies, device_ms, parts, cpu * 1000.0))

        out = BenchOutput("end_to_end_latency", args.readme)
        measured = [(rate, lat, dev) for rate, _, lat, dev, _, _ in rows if lat]
        if measured:
            shares = ", ".join(
                f"{statistics.median(dev) / statistics.median(lat) * 100:.0f}% at {rate:g} img/s"
                for rate, lat, dev in measured
            )
            out.text(
                "**Measured in this run:** the device's own work (read to spooled) is "
                f"{shares} of the end-to-end p50."
            )
        table_rows: list[list[Any]] = []
        for rate, achieved, lat, dev, parts, cpu in rows:
            if not lat:
                table_rows.append([f"{rate:g}", 0, 0, *["-"] * (5 + len(PARTS))])
                continue
            table_rows.append(
                [
                    f"{rate:g}",
                    f"{achieved:.1f}",
                    len(lat),
                    f"{statistics.median(lat):.1f}",
                    f"{percentile(lat, 0.95):.1f}",
                    f"{statistics.median(dev):.1f}",
                    f"{percentile(dev, 0.95):.1f}",
                    *[f"{statistics.median(parts[k]):.1f}" for k in PARTS],
                    f"{cpu:.0f}",
                ]
            )
        headers = ["target img/s", "achieved img/s", "results", "e2e p50 ms", "e2e p95 ms"]
        out.table(
            markdown_table(
                [
                    *headers,
                    "device p50 ms",
                    "device p95 ms",
                    *[f"{k} p50 ms" for k in PARTS],
                    "device CPU ms/img",
                ],
                table_rows,
            ),
            f"Model: {args.model}; {args.seconds:g} s per rate. e2e: subscriber receive time "
            "minus the app's image-read time (timestamp is truncated to ms, so e2e may read up "
            "to 1 ms high); device: the app's own latency_ms.total (read to spooled), and "
            "its parts (preprocess includes reading and decoding the JPEG); device CPU: user "
            "+ system CPU time of the device's processes (runtime, agent, app) per result.",
        )
        out.finish()
        client.loop_stop()
        client.disconnect()
        return 0
    finally:
        endpoints.down(home)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
