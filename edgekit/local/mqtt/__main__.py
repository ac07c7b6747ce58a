"""``python -m edgekit.local.mqtt --host 127.0.0.1 --port 0 --port-file F``.

Serves until SIGTERM/SIGINT. With ``--port 0`` the OS picks a free port; it is
written to ``--port-file`` once the broker accepts connections. With
``--websocket-port P`` it also serves MQTT over WebSocket (``ws://host:P/mqtt``;
0 picks a port, written to ``--websocket-port-file``); upgrades must be SigV4
presigned with ``--websocket-access-key ID:SECRET`` (repeatable; default the
local backend's ``testing:testing``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from edgekit.errors import LocalBackendError
from edgekit.files import write_text_atomic
from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.server import MqttServer


def _write_port(path: Path, port: int) -> None:
    write_text_atomic(path, f"{port}\n", fsync=False)


async def serve(
    host: str,
    port: int,
    port_file: Path | None,
    limits: BrokerLimits | None = None,
    websocket_port: int | None = None,
    websocket_port_file: Path | None = None,
    websocket_credentials: dict[str, str] | None = None,
    state_dir: Path | None = None,
) -> None:
    server = MqttServer(
        host, port, limits, websocket_port, websocket_credentials, state_dir=state_dir
    )
    bound = await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if server.websocket_port is not None:
        if websocket_port_file is not None:
            _write_port(websocket_port_file, server.websocket_port)
        print(f"edgekit MQTT broker websockets on ws://{host}:{server.websocket_port}/mqtt")
    if port_file is not None:  # written last: a caller waiting for it finds both ready
        _write_port(port_file, bound)
    print(f"edgekit MQTT broker listening on {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        print("edgekit MQTT broker stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekit.local.mqtt", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    parser.add_argument(
        "--websocket-port", type=int, help="also serve MQTT over WebSocket here (0 picks a port)"
    )
    parser.add_argument(
        "--websocket-port-file", type=Path, help="write the bound websocket port here when ready"
    )
    parser.add_argument(
        "--websocket-access-key",
        action="append",
        metavar="ID:SECRET",
        help="credentials a websocket upgrade may be SigV4-signed with (repeatable)",
    )
    parser.add_argument(
        "--max-packet-size", type=int, default=BrokerLimits.max_packet_size, help="bytes"
    )
    parser.add_argument(
        "--session-expiry",
        type=int,
        default=BrokerLimits.session_expiry,
        help="seconds a persistent session outlives its connection (IoT Core: 3600)",
    )
    parser.add_argument(
        "--max-sessions", type=int, default=BrokerLimits.max_sessions, help="sessions kept"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="accept anonymous clients from non-loopback addresses too",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep persistent sessions, their queued messages and retained messages here, "
        "so they survive a crash; without it they live in memory only",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if args.websocket_port_file is not None and args.websocket_port is None:
        parser.error("--websocket-port-file needs --websocket-port (0 picks a free port)")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    credentials = None
    if args.websocket_access_key:
        pairs = [key.partition(":") for key in args.websocket_access_key]
        if any(not key_id or not sep or not secret for key_id, sep, secret in pairs):
            parser.error("--websocket-access-key takes ACCESS_KEY_ID:SECRET_ACCESS_KEY")
        credentials = {key_id: secret for key_id, _, secret in pairs}
    limits = BrokerLimits(
        max_packet_size=args.max_packet_size,
        allow_remote=args.allow_remote,
        session_expiry=args.session_expiry,
        max_sessions=args.max_sessions,
    )
    try:
        asyncio.run(
            serve(
                args.host,
                args.port,
                args.port_file,
                limits,
                args.websocket_port,
                args.websocket_port_file,
                credentials,
                state_dir=args.state_dir,
            )
        )
    except LocalBackendError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
