"""Messages per second through the local stream manager, with the public Stream Manager SDK.

One ``StreamManagerClient`` (the official Python SDK, synchronous calls one after the
other, as a component writes them) against edgekit's server on a loopback port. Rows:

* append to a Memory stream; to a File stream (written, not fsynced); to a File stream
  with ``flushOnWrite`` (fsync of every message before the answer);
* read the File stream back in batches of ``--batch`` messages, and one message per call.

    .venv/bin/python benchmarks/stream_manager_bench.py [--count 5000] [--payload 256] [--batch 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _machine import BenchOutput, add_readme_option, markdown_table
from stream_manager import (
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)

from edgekit.local.streammanager.server import StreamManagerServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="messages per row")
    parser.add_argument("--payload", type=int, default=256, help="bytes per message")
    parser.add_argument("--batch", type=int, default=100, help="messages per batched read")
    add_readme_option(parser)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="sm-bench-"))
    server = StreamManagerServer(workdir / "store").start()
    client = StreamManagerClient(port=server.port, request_timeout=120)
    payload = b"x" * args.payload
    rows: list[list[object]] = []
    failed = False
    try:
        for label, name, persistence, flush in (
            ("append, Memory stream", "memory", Persistence.Memory, False),
            ("append, File stream", "file", Persistence.File, False),
            ("append, File stream, flushOnWrite", "fsync", Persistence.File, True),
        ):
            client.create_message_stream(
                MessageStreamDefinition(
                    name=name,
                    strategy_on_full=StrategyOnFull.OverwriteOldestData,
                    persistence=persistence,
                    flush_on_write=flush,
                    max_size=max(1 << 30, 2 * args.count * args.payload),
                )
            )
            started = time.perf_counter()
            for _ in range(args.count):
                client.append_message(name, payload)
            rows.append(_row(label, args.count, time.perf_counter() - started, args.payload))

        started = time.perf_counter()
        got = 0
        while got < args.count:
            n = min(args.batch, args.count - got)
            messages = client.read_messages(
                "file",
                ReadMessagesOptions(
                    desired_start_sequence_number=got, min_message_count=n, max_message_count=n
                ),
            )
            got += len(messages)
        rows.append(
            _row(
                f"read File stream, {args.batch} per call",
                got,
                time.perf_counter() - started,
                args.payload,
            )
        )
        failed |= got != args.count

        single = min(args.count, 1000)
        started = time.perf_counter()
        for seq in range(single):
            (message,) = client.read_messages(
                "file", ReadMessagesOptions(desired_start_sequence_number=seq)
            )
            failed |= message.sequence_number != seq
        rows.append(
            _row(
                "read File stream, 1 per call", single, time.perf_counter() - started, args.payload
            )
        )
    finally:
        client.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    out = BenchOutput("stream_manager_bench", args.readme)
    out.table(
        markdown_table(["case", "messages", "seconds", "messages/s", "MB/s"], rows),
        f"Local stream manager: {args.payload}-byte messages, the official Python SDK "
        "(stream-manager), one synchronous call after the other on loopback.",
    )
    out.finish()
    if failed:
        print("a read returned other messages than were appended", file=sys.stderr)
        return 1
    return 0


def _row(label: str, count: int, seconds: float, payload: int) -> list[object]:
    rate = count / seconds if seconds > 0 else 0.0
    return [label, count, f"{seconds:.2f}", f"{rate:.0f}", f"{rate * payload / 1e6:.2f}"]


if __name__ == "__main__":
    sys.exit(main())
