"""Results per second through the device's IoT Core spool, and how fast it drains after an outage.

A component publishes results with QoS 1 through Greengrass IPC (the official awsiot SDK,
one synchronous call after the other, as the inference app does); the IPC server's bridge
writes each to its spool (``mqtt.spooler``) before answering, and a paho subscriber on the
local broker receives them. Rows:

* broker up, Disk spool: each result fsynced before the component hears "success", removed
  on the broker's PUBACK (the device's default);
* broker up, Memory spool (``storageType: Memory``, the nucleus' default): no fsync;
* into the spool while the broker is unreachable (``--outage`` results, default 10,000);
* drain after that outage: from the bridge's reconnect to the last result at the subscriber;
* drain after an outage and a restart of the runtime: a new IPC server reads the spool back
  from disk and sends it, oldest first.

The outage is made by stopping the bridge's connection (the broker stays up, so the
subscriber is in place before the drain starts). Results are ``--payload`` bytes of JSON
with a ``message_id``; the subscriber counts distinct ids. The spool's bound is the
nucleus' default (2.5 MB) unless the outage needs more, then it is raised and printed.

    .venv/bin/python benchmarks/spool.py [--count 2000] [--outage 10000] [--payload 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

MESSAGE_ID = "message_id"


class Subscriber:
    """Counts distinct message ids and notes when the last expected one arrived."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.received = 0
        self.expected = 0
        self.done_at = 0.0
        self._done = threading.Event()
        self._lock = threading.Lock()

    def expect(self, n: int) -> None:
        with self._lock:
            self.ids, self.received, self.expected, self.done_at = set(), 0, n, 0.0
            self._done.clear()

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        key = json.loads(message.payload)[MESSAGE_ID]
        with self._lock:
            self.received += 1
            self.ids.add(key)
            if len(self.ids) >= self.expected and not self._done.is_set():
                self.done_at = time.perf_counter()
                self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


def result(i: int, run: str, payload: int) -> bytes:
    body = {MESSAGE_ID: f"{run}-{i}", "defect": i % 7 == 0, "score": 0.5, "pad": ""}
    raw = json.dumps(body)
    body["pad"] = "x" * max(0, payload - len(raw))
    return json.dumps(body).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="results per broker-up run")
    parser.add_argument("--outage", type=int, default=10_000, help="results during the outage")
    parser.add_argument("--payload", type=int, default=256, help="bytes per result")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait per run")
    parser.add_argument("--quick", action="store_true", help="500 results, an outage of 2000")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.outage = min(args.count, 500), min(args.outage, 2000)

    import paho.mqtt.client as paho
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    from edgekit.local.ipc.memory_host import MemoryHost
    from edgekit.local.ipc.mqtt_spool import DEFAULT_MAX_BYTES
    from edgekit.local.ipc.server import IpcServer
    from edgekit.local.mqtt import Broker

    acl = {"aws.greengrass.ipc.mqttproxy": {"bench": {"operations": ["*"], "resources": ["*"]}}}
    workdir = Path(tempfile.mkdtemp(prefix="ekspool-", dir="/tmp"))
    max_bytes = max(DEFAULT_MAX_BYTES, args.outage * args.payload + 65536)
    broker = Broker(host="127.0.0.1", port=0).start()
    sub = Subscriber()
    peer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-cloud")
    peer.on_message = sub.on_message
    subscribed = threading.Event()
    peer.on_subscribe = lambda *a: subscribed.set()
    peer.connect(broker.host, broker.port)
    peer.loop_start()
    peer.subscribe("bench/results", qos=1)
    subscribed.wait(5)
    rows: list[tuple[str, int, int, float]] = []
    servers: list[IpcServer] = []
    clients: list[Any] = []

    def make_server(name: str, storage: str) -> tuple[IpcServer, Any]:
        host = MemoryHost(thing_name="bench", mqtt_endpoint=broker.endpoint)
        spooler = {"storageType": storage, "maxSizeInBytes": max_bytes}
        host.add_component("aws.greengrass.Nucleus", configuration={"mqtt": {"spooler": spooler}})
        token = host.add_component("bench.Publisher", access_control=acl)
        server = IpcServer(
            workdir / f"{name}.sock",
            host,
            mqtt_reconnect_delay=(0.05, 0.2),
            spool_dir=workdir / "spool",
        ).start()
        servers.append(server)
        assert server.bridge is not None
        os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] = str(server.socket_path)
        os.environ["SVCUID"] = token
        client = GreengrassCoreIPCClientV2()
        clients.append(client)
        return server, client

    def publish_all(client: Any, n: int, run: str) -> float:
        started = time.perf_counter()
        for i in range(n):
            client.publish_to_iot_core(
                topic_name="bench/results", qos="1", payload=result(i, run, args.payload)
            )
        return time.perf_counter() - started

    def wait_drained(server: IpcServer, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while server.mqtt_stats().get("queued") and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        # -- broker up: Disk, then Memory
        for storage in ("Disk", "Memory"):
            server, client = make_server(f"up-{storage}", storage)
            assert server.bridge is not None and server.bridge.wait_connected(10)
            sub.expect(args.count)
            started = time.perf_counter()
            publish_all(client, args.count, f"up-{storage}")
            sub.wait(args.timeout)
            seconds = (sub.done_at or time.perf_counter()) - started
            rows.append((f"broker up, {storage} spool", args.count, len(sub.ids), seconds))
            wait_drained(server, args.timeout)
            server.stop()

        # -- outage: the bridge is cut off, results wait in the Disk spool
        for restart in (False, True):
            server, client = make_server(f"out-{restart}", "Disk")
            bridge = server.bridge
            assert bridge is not None and bridge.wait_connected(10)
            bridge.stop()
            run = f"outage-{restart}"
            seconds = publish_all(client, args.outage, run)
            queued = server.mqtt_stats()["queued"]
            if not restart:
                rows.append(
                    ("into the spool, broker unreachable (Disk)", args.outage, int(queued), seconds)
                )
            sub.expect(args.outage)
            if restart:
                server.stop()  # the runtime goes away; the spool stays on disk
                started = time.perf_counter()
                server, client = make_server("restarted", "Disk")
                label = "drain after the outage and a runtime restart"
            else:
                started = time.perf_counter()
                bridge.start()
                label = "drain after the outage"
            sub.wait(args.timeout)
            seconds = (sub.done_at or time.perf_counter()) - started
            rows.append((label, args.outage, len(sub.ids), seconds))
            wait_drained(server, args.timeout)
            server.stop()
    finally:
        for c in clients:
            try:
                c.close()
            except Exception as exc:  # report, keep cleaning up
                print(f"closing an IPC client failed: {exc!r}", file=sys.stderr)
        for s in servers:
            s.stop()
        peer.disconnect()
        peer.loop_stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    out = BenchOutput("spool", args.readme)
    rates = {label: got / seconds if seconds > 0 else 0.0 for label, _, got, seconds in rows}
    disk, memory = rates.get("broker up, Disk spool"), rates.get("broker up, Memory spool")
    if disk and memory:
        out.text(
            f"**Measured in this run:** the Memory spool carries {memory / disk:.2f}x the "
            "results/s of the Disk spool (which fsyncs each result before answering)."
        )
    failed = False
    table_rows = []
    for label, sent, got, seconds in rows:
        table_rows.append([label, sent, got, f"{seconds:.2f}", f"{rates[label]:.0f}"])
        failed |= got != sent
    out.table(
        markdown_table(
            ["case", "results", "delivered (spooled)", "seconds", "results/s"], table_rows
        ),
        f"IoT Core spool: {args.payload}-byte QoS 1 results through IPC (awsiot SDK), one call "
        f"after the other; spool bound {max_bytes} bytes.",
    )
    out.finish()
    if failed:
        print("some results were not delivered (see 'delivered')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
