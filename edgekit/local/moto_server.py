"""``python -m edgekit.local.moto_server --host 127.0.0.1 --port 0 --port-file F``.

moto's own ``python -m moto.server`` needs a fixed port; this runs the same WSGI
app (every service moto emulates, one server) but can bind port 0 and report the
port it got, so parallel test runs and several homes never collide.
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

from edgekit.files import write_text_atomic
from edgekit.local import moto_cloudformation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekit.local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    args = parser.parse_args(argv)
    moto_cloudformation.install()  # the device stack's resource types, as on AWS
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    port = int(server.server_address[1])
    # moto builds some URLs (e.g. Lambda's endpoint) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    def _shutdown(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    if args.port_file is not None:
        write_text_atomic(args.port_file, f"{port}\n", fsync=False)
    print(f"edgekit moto server listening on http://{args.host}:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)  # a quick `local down`
    server.server_close()
    print("edgekit moto server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
