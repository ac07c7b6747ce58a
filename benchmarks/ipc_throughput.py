"""Throughput and latency of the local Greengrass IPC server, through the official awsiot SDK.

Measures, end to end inside one process:

* PublishToTopic: a component publishes (GreengrassCoreIPCClientV2.publish_to_topic)
  and another component's SubscribeToTopic stream receives it;
* PublishToIoTCore: a component publishes; a paho-mqtt client subscribed on the
  local broker receives it (IPC server -> MQTT bridge -> broker -> paho).

each paced at a fixed rate (default 100 msg/s) and flat out (one synchronous call
after the other, as component code usually publishes). Latency is from just before
the publish call to the subscriber's callback. Starts and stops its own broker and
IPC server; nothing else needs to run.

    .venv/bin/python benchmarks/ipc_throughput.py [--seconds 5] [--count 2000] [--payload 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

_SEQ = struct.Struct(">Q")


@dataclass
class Result:
    operation: str
    mode: str
    sent: int
    received: int
    seconds: float
    latencies_ms: list[float]

    def row(self) -> list[str]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> str:
            if not lat:
                return "-"
            return f"{lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]:.2f}"

        rate = self.received / self.seconds if self.seconds else 0.0
        return [
            self.operation,
            self.mode,
            str(self.sent),
            str(self.received),
            f"{rate:.0f}",
            pct(0.50),
            pct(0.95),
            f"{lat[-1]:.2f}" if lat else "-",
        ]


class Receiver:
    """Records the arrival time of each sequence number."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self._lock = threading.Lock()
        self._expected = 0
        self._done = threading.Event()

    def reset(self, expected: int) -> None:
        with self._lock:
            self.arrivals = {}
            self._expected = expected
            self._done.clear()

    def record(self, seq: int) -> None:
        now = time.perf_counter()
        with self._lock:
            self.arrivals.setdefault(seq, now)
            if len(self.arrivals) >= self._expected:
                self._done.set()

    def wait(self, timeout: float) -> None:
        self._done.wait(timeout)


def run(
    operation: str,
    mode: str,
    publish: Callable[[int], None],
    receiver: Receiver,
    count: int,
    rate: float | None,
) -> Result:
    receiver.reset(count)
    sent_at: dict[int, float] = {}
    started = time.perf_counter()
    next_at = started
    for seq in range(count):
        if rate is not None:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_at += 1.0 / rate
        sent_at[seq] = time.perf_counter()
        publish(seq)
    receiver.wait(10.0)
    arrivals = dict(receiver.arrivals)
    seconds = (max(arrivals.values()) if arrivals else time.perf_counter()) - started
    latencies = [(arrivals[s] - sent_at[s]) * 1000 for s in arrivals if s in sent_at]
    return Result(operation, mode, count, len(arrivals), seconds, latencies)


def print_table(out: BenchOutput, results: list[Result], payload: int) -> None:
    header = ["operation", "mode", "sent", "received", "msg/s", "p50 ms", "p95 ms", "max ms"]
    flat = {r.operation: r for r in results if r.mode == "flat out" and r.seconds}
    local = flat.get("PublishToTopic")
    cloud = flat.get("PublishToIoTCore q1")
    if local and cloud and cloud.received:
        ratio = (local.received / local.seconds) / (cloud.received / cloud.seconds)
        out.text(
            f"**Measured in this run:** flat out, PublishToTopic carries {ratio:.2f}x the "
            "messages/s of PublishToIoTCore QoS 1."
        )
    out.table(
        markdown_table(header, [r.row() for r in results]),
        f"IPC throughput: {payload}-byte payloads, official awsiot SDK.",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each paced run")
    parser.add_argument("--rate", type=float, default=100.0, help="paced rate, messages/s")
    parser.add_argument("--count", type=int, default=2000, help="messages in each flat-out run")
    parser.add_argument("--payload", type=int, default=256, help="payload bytes per message")
    parser.add_argument("--quick", action="store_true", help="2 s paced runs, 500 flat out")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.count = min(args.seconds, 2.0), min(args.count, 500)

    import paho.mqtt.client as paho
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import BinaryMessage, PublishMessage

    from edgekit.local.ipc.memory_host import MemoryHost
    from edgekit.local.ipc.server import IpcServer
    from edgekit.local.mqtt import Broker

    acl = {
        "aws.greengrass.ipc.pubsub": {"bench": {"operations": ["*"], "resources": ["*"]}},
        "aws.greengrass.ipc.mqttproxy": {"bench": {"operations": ["*"], "resources": ["*"]}},
    }
    workdir = Path(tempfile.mkdtemp(prefix="ekbench-", dir="/tmp"))
    broker = Broker(host="127.0.0.1", port=0).start()
    host = MemoryHost(thing_name="bench", mqtt_endpoint=broker.endpoint)
    pub_token = host.add_component("bench.Publisher", access_control=acl)
    sub_token = host.add_component("bench.Subscriber", access_control=acl)
    server = IpcServer(workdir / "ipc.sock", host).start()
    clients: list[Any] = []
    peer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-peer")
    try:
        assert server.bridge is not None
        if not server.bridge.wait_connected(10):
            print("the IPC server could not reach the MQTT broker", file=sys.stderr)
            return 1

        def client(token: str) -> GreengrassCoreIPCClientV2:
            os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] = str(
                server.socket_path
            )
            os.environ["SVCUID"] = token
            c = GreengrassCoreIPCClientV2()
            clients.append(c)
            return c

        publisher, subscriber = client(pub_token), client(sub_token)
        filler = b"x" * max(0, args.payload - _SEQ.size)

        local = Receiver()
        subscriber.subscribe_to_topic(
            topic="bench/local",
            on_stream_event=lambda e: local.record(_SEQ.unpack_from(e.binary_message.message)[0]),
        )

        def publish_local(seq: int) -> None:
            message = BinaryMessage(message=_SEQ.pack(seq) + filler)
            publisher.publish_to_topic(
                topic="bench/local", publish_message=PublishMessage(binary_message=message)
            )

        cloud = Receiver()
        subscribed = threading.Event()
        peer.on_message = lambda c, u, m: cloud.record(_SEQ.unpack_from(m.payload)[0])
        peer.on_subscribe = lambda *a: subscribed.set()
        peer.connect(broker.host, broker.port)
        peer.loop_start()
        peer.subscribe("bench/cloud", qos=1)
        subscribed.wait(5)

        def publish_cloud(qos: str) -> Callable[[int], None]:
            def publish(seq: int) -> None:
                publisher.publish_to_iot_core(
                    topic_name="bench/cloud", qos=qos, payload=_SEQ.pack(seq) + filler
                )

            return publish

        paced_count = int(args.seconds * args.rate)
        paced = f"paced {args.rate:.0f}/s"
        runs: list[tuple[str, str, Callable[[int], None], Receiver, int, float | None]] = [
            ("PublishToTopic", paced, publish_local, local, paced_count, args.rate),
            ("PublishToTopic", "flat out", publish_local, local, args.count, None),
            ("PublishToIoTCore q0", paced, publish_cloud("0"), cloud, paced_count, args.rate),
            ("PublishToIoTCore q0", "flat out", publish_cloud("0"), cloud, args.count, None),
            ("PublishToIoTCore q1", paced, publish_cloud("1"), cloud, paced_count, args.rate),
            ("PublishToIoTCore q1", "flat out", publish_cloud("1"), cloud, args.count, None),
        ]
        # warm-up: first connections, JIT-free but caches, socket buffers
        run("warm-up", "", publish_local, local, 50, None)
        run("warm-up", "", publish_cloud("0"), cloud, 50, None)
        results = []
        for name, mode, publish, receiver, count, rate in runs:
            results.append(run(name, mode, publish, receiver, count, rate))
            print(f"  done: {name} {mode}", file=sys.stderr)
        out = BenchOutput("ipc_throughput", args.readme)
        print_table(out, results, args.payload)
        goal = next(r for r in results if r.operation == "PublishToIoTCore q0" and r.mode == paced)
        p50 = statistics.median(goal.latencies_ms) if goal.latencies_ms else float("nan")
        verdict = "met" if p50 <= 5.0 else "NOT met"
        goal_text = f"PublishToIoTCore p50 <= 5 ms at {args.rate:.0f} msg/s"
        out.text(f"goal {goal_text}: {p50:.2f} ms ({verdict})")
        out.finish()
        return 0
    finally:
        for c in clients:
            c.close()
        peer.loop_stop()
        server.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
