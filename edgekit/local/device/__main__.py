"""``python -m edgekit.local.device --thing NAME --root DIR --greengrass-endpoint URL
--aws-endpoint URL --mqtt HOST:PORT --region R [--poll 0.5]``: one device runtime.

Runs in the foreground until SIGTERM or SIGINT, then stops its components.
`edgekit local device add` starts it detached; this is what that process runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from edgekit.errors import EdgekitError
from edgekit.local.device.runtime import DeviceRuntime


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgekit.local.device",
        description="A local Greengrass core device (nucleus) for one IoT thing.",
    )
    parser.add_argument("--thing", required=True, help="IoT thing name of this core device")
    parser.add_argument("--root", required=True, help="device root folder ({kernel:rootPath})")
    parser.add_argument("--greengrass-endpoint", required=True, help="control plane URL")
    parser.add_argument("--aws-endpoint", required=True, help="moto URL (IoT, S3)")
    parser.add_argument("--mqtt", default=None, help="MQTT broker host:port")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument("--poll", type=float, default=0.5, help="deployment poll interval (s)")
    parser.add_argument("--status-interval", type=float, default=10.0)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.5,
        help="seconds a component must stay RUNNING before a deployment counts it healthy",
    )
    parser.add_argument("--no-ipc", action="store_true", help="do not serve Greengrass IPC")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runtime = DeviceRuntime(
            args.thing,
            args.root,
            args.greengrass_endpoint,
            args.aws_endpoint,
            args.mqtt,
            args.region,
            account_id=args.account_id,
            poll=args.poll,
            status_interval=args.status_interval,
            settle=args.settle,
            start_ipc=not args.no_ipc,
        )
        runtime.start()
    except EdgekitError as exc:
        print(f"edgekit device runtime: error: {exc}", file=sys.stderr)
        return 1
    print(f"edgekit device runtime for {args.thing} running (root {args.root})", flush=True)
    while not done.wait(1.0):
        pass
    runtime.stop()
    print(f"edgekit device runtime for {args.thing} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
