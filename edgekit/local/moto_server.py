"""``python -m edgekit.local.moto_server --host 127.0.0.1 --port 0 --port-file F``.

moto's own ``python -m moto.server`` needs a fixed port; this runs the same WSGI
app (every service moto emulates, one server) but can bind port 0 and report the
port it got, so parallel test runs and several homes never collide.

State machines execute (``moto_stepfunctions``): their ``aws-sdk:`` tasks call back
into this server, and ``greengrassv2`` into the Greengrass emulator whose port
``--greengrass-port-file`` names. With ``--mqtt-port-file`` (the local broker's port
file), IoT Core's Device Shadow service answers the shadow topics on that broker
(``moto_shadows``).

With ``--state-file F`` the server restores moto's backends from F before it
listens (refusing, with exit code 2 and the reason on stderr, a snapshot it cannot
restore) and keeps F up to date: every ``moto_keeper.SNAPSHOT_INTERVAL`` seconds
after a change, and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from edgekit.errors import LocalBackendError
from edgekit.files import write_text_atomic
from edgekit.local import moto_cloudformation, moto_shadows, moto_stepfunctions
from edgekit.local.moto_keeper import StateKeeper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekit.local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    parser.add_argument(
        "--state-file", type=Path, help="restore moto's state from here and keep it saved there"
    )
    parser.add_argument(
        "--greengrass-port-file",
        type=Path,
        help="the Greengrass emulator's port file: state machines' greengrassv2 calls go there",
    )
    parser.add_argument(
        "--mqtt-port-file",
        type=Path,
        help="the local broker's port file: the Device Shadow service answers its shadow topics",
    )
    args = parser.parse_args(argv)
    moto_cloudformation.install()  # the device stack's resource types, as on AWS
    app = DomainDispatcherApplication(create_backend_app)
    keeper = None if args.state_file is None else StateKeeper(args.state_file)
    if keeper is not None:
        try:
            services = keeper.restore()
        except LocalBackendError as exc:
            print(f"edgekit moto server: {exc}", file=sys.stderr, flush=True)
            return 2
        if services:
            print(f"restored {', '.join(services)} from {args.state_file}", flush=True)
        app = keeper.wrap(app)  # type: ignore[assignment]
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    port = int(server.server_address[1])
    # moto builds some URLs (e.g. Lambda's endpoint) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    # State machines run here, their aws-sdk tasks call back into this server (greengrassv2
    # into the emulator), and approvals in the registry start them (EventBridge).
    moto_stepfunctions.install(moto_port=port, greengrass_port_file=args.greengrass_port_file)
    # Devices' shadow updates over MQTT reach moto's iot-data backend, as on IoT Core.
    shadows = moto_shadows.install(moto_port=port, mqtt_port_file=args.mqtt_port_file)

    def _shutdown(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    if args.port_file is not None:
        write_text_atomic(args.port_file, f"{port}\n", fsync=False)
    print(f"edgekit moto server listening on http://{args.host}:{port}", flush=True)
    if keeper is not None:
        keeper.start()
    server.serve_forever(poll_interval=0.1)  # a quick `local down`
    if shadows is not None:
        shadows.stop()
    server.server_close()
    # The last snapshot; an error here exits non-zero with its message.
    if keeper is not None and keeper.stop():
        print(f"saved the moto state to {args.state_file}", flush=True)
    print("edgekit moto server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
