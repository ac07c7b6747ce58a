"""``python -m edgekit.schedule --home DIR --host H --port P --port-file F``: the local
scheduler process (`edgekit local up` starts it; see `edgekit.schedule.scheduler`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekit.schedule.scheduler import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edgekit.schedule", description=__doc__)
    parser.add_argument("--home", required=True, help="the local home whose schedules run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    serve(Path(args.home), args.host, args.port, Path(args.port_file) if args.port_file else None)


if __name__ == "__main__":
    main()
