"""Publish -> deliver latency and flat-out throughput of the local MQTT broker, with paho-mqtt.

One paho client publishes (QoS 1 by default), another subscribed paho client
receives; latency is from just before ``publish()`` to the subscriber's
``on_message``, both in this process (one clock). Runs:

* paced at ``--rate`` msg/s (default 100) for ``--seconds``;
* flat out: ``--count`` messages published back to back, the publisher
  keeping paho's default 20 QoS 1 messages in flight.

Starts and stops its own broker unless ``--endpoint host:port`` names one.

    .venv/bin/python benchmarks/mqtt_broker.py [--rate 100] [--seconds 5] [--count 5000]
        [--qos 1] [--payload 256] [--protocol 311|5] [--endpoint HOST:PORT]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import threading
import time
import uuid
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

_HEAD = struct.Struct(">Qd")  # sequence number, perf_counter at publish


class Receiver:
    def __init__(self) -> None:
        self.latencies_ms: dict[int, float] = {}
        self.expected = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def reset(self, expected: int) -> None:
        with self._lock:
            self.latencies_ms = {}
            self.expected = expected
            self.done.clear()

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.perf_counter()
        seq, sent = _HEAD.unpack_from(msg.payload)
        with self._lock:
            self.latencies_ms[seq] = (now - sent) * 1000.0
            if len(self.latencies_ms) >= self.expected:
                self.done.set()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def _client(host: str, port: int, protocol: int, **callbacks: Any) -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5 if protocol == 5 else paho.MQTTv311,
    )
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    for name, fn in callbacks.items():
        setattr(client, name, fn)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not connected.wait(5):
        raise SystemExit(f"no CONNACK from {host}:{port}")
    return client


def run(
    name: str,
    pub: Any,
    receiver: Receiver,
    topic: str,
    count: int,
    qos: int,
    filler: bytes,
    rate: float | None,
) -> list[str]:
    receiver.reset(count)
    infos = []
    start = time.perf_counter()
    for seq in range(count):
        if rate:
            due = start + seq / rate
            while (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
        infos.append(pub.publish(topic, _HEAD.pack(seq, time.perf_counter()) + filler, qos=qos))
    for info in infos:
        info.wait_for_publish(10)
    receiver.done.wait(max(10.0, count / 500))
    elapsed = time.perf_counter() - start
    lat = list(receiver.latencies_ms.values())
    got = len(lat)
    if not lat:
        return [name, str(count), "0", "-", "-", "-", "-", "-"]
    return [
        name,
        str(count),
        str(got),
        f"{got / elapsed:.0f}",
        f"{statistics.median(lat):.2f}",
        f"{_pct(lat, 0.99):.2f}",
        f"{max(lat):.2f}",
        "ok" if got == count else "LOST",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--qos", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--payload", type=int, default=256, help="bytes per message")
    parser.add_argument("--protocol", type=int, default=311, choices=[311, 5])
    parser.add_argument("--endpoint", help="host:port of a running broker (default: start one)")
    parser.add_argument("--quick", action="store_true", help="2 s paced, 1000 flat out")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.count = min(args.seconds, 2.0), min(args.count, 1000)

    broker = None
    if args.endpoint:
        host, _, port_text = args.endpoint.rpartition(":")
        port = int(port_text)
    else:
        from edgekit.local.mqtt import Broker

        broker = Broker().start()
        host, port = broker.host, broker.port
    receiver = Receiver()
    topic = f"bench/{uuid.uuid4().hex[:8]}"
    filler = b"x" * max(0, args.payload - _HEAD.size)
    sub = pub = None
    try:
        subscribed = threading.Event()
        sub = _client(
            host,
            port,
            args.protocol,
            on_message=receiver.on_message,
            on_subscribe=lambda *a: subscribed.set(),
        )
        sub.subscribe(topic, args.qos)
        if not subscribed.wait(5):
            raise SystemExit("no SUBACK")
        pub = _client(host, port, args.protocol)
        run("warm-up", pub, receiver, topic, 100, args.qos, filler, None)
        paced, label = int(args.rate * args.seconds), f"paced {args.rate:.0f}/s"
        rows = [
            run(label, pub, receiver, topic, paced, args.qos, filler, args.rate),
            run("flat out", pub, receiver, topic, args.count, args.qos, filler, None),
        ]
    finally:
        for c in (pub, sub):
            if c is not None:
                c.disconnect()
                c.loop_stop()
        if broker is not None:
            t0 = time.perf_counter()
            broker.stop()
            print(f"broker stop: {(time.perf_counter() - t0) * 1000:.1f} ms", file=sys.stderr)
    where = args.endpoint or "edgekit broker (in-process thread)"
    out = BenchOutput("mqtt_broker", args.readme)
    paced_rate, flat_rate = (float(r[3]) if r[3] != "-" else 0.0 for r in rows)
    if paced_rate > 0:
        out.text(
            f"**Measured in this run:** flat out, the broker carries {flat_rate / paced_rate:.1f}x "
            f"the paced {args.rate:.0f} msg/s."
        )
    header = ["run", "sent", "received", "msg/s", "p50 ms", "p99 ms", "max ms", "delivery"]
    out.table(
        markdown_table(header, rows),
        f"MQTT {args.protocol} QoS {args.qos}, {args.payload} B payloads, {where}.",
    )
    out.finish()
    return 0 if all(r[-1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
