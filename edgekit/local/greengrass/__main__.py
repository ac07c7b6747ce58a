"""``python -m edgekit.local.greengrass``: run the control-plane emulator in the foreground.

The port file is written (atomically) only once the socket listens, so a
launcher may poll for it as the readiness signal. SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.local.greengrass.server import GreengrassServer


def _write_port_file(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgekit.local.greengrass",
        description="Local emulator of the AWS IoT Greengrass v2 control plane (greengrassv2).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--state-dir", type=Path, required=True, help="persisted JSON state")
    parser.add_argument(
        "--aws-endpoint", default=None, help="S3 endpoint for artifacts (the local moto server)"
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        server = GreengrassServer(
            args.state_dir,
            args.aws_endpoint,
            args.region,
            args.host,
            args.port,
            account_id=args.account_id,
        )
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.port_file:
        _write_port_file(args.port_file, server.port)
    logging.getLogger(__name__).info(
        "Greengrass emulator listening on %s (state %s, S3 %s, region %s)",
        server.url,
        args.state_dir,
        args.aws_endpoint or "AWS",
        args.region,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
