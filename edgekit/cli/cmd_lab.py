"""``edgekit lab`` (``make lab``): JupyterLab on the demo's run folder, local backend up."""

from __future__ import annotations

import argparse
import signal

from edgekit.local.home import add_home_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="open the notebooks in JupyterLab (local backend up), until Ctrl-C",
        description=(
            "Bring the local backend up (as `edgekit local up`), then start JupyterLab from "
            "this environment on 127.0.0.1, in the newest demo run (RUNS/latest; without one, "
            "RUNS/notebooks with the notebooks shipped with edgekit), and print its URL. "
            "Ctrl-C stops JupyterLab and its kernels; the local endpoints and devices keep "
            "running (`edgekit local down` stops them)."
        ),
    )
    parser.add_argument(
        "--dir", metavar="DIR", help="folder to open (default: RUNS/latest, see above)"
    )
    parser.add_argument(
        "--runs-root",
        metavar="RUNS",
        default="runs",
        help="where `make demo` writes its runs (default: runs)",
    )
    parser.add_argument(
        "--port", type=int, default=8888, metavar="N", help="port on 127.0.0.1 (8888; 0: any)"
    )
    add_home_option(parser)
    parser.set_defaults(handler=_lab)


def _lab(args: argparse.Namespace) -> int:
    from edgekit.lab import lab_folder, start_lab
    from edgekit.local.endpoints import up
    from edgekit.settings import Settings

    settings = Settings.from_env()
    if getattr(args, "home", None):
        settings = settings.replace(local_home=args.home)
    folder = args.dir or lab_folder(args.runs_root)
    endpoints = up(settings.home)
    print(f"local backend: up in {endpoints.home} (moto, Greengrass, MQTT and the devices)")
    server = start_lab(settings, folder, port=args.port)
    print(f"JupyterLab in {server.folder} (log: {server.log})")
    print()
    print(f"    {server.url}")
    print()
    print("Open that URL in a browser. Ctrl-C stops JupyterLab and its kernels.", flush=True)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        print("\nstopping JupyterLab and its kernels...", flush=True)
        try:
            code = server.stop()
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait for a clean stop
            code = server.kill()
        print(f"JupyterLab stopped (exit {code}).")
    else:
        print(f"JupyterLab exited (code {code}).")
    print(
        "The local endpoints and devices keep running; stop them with: "
        f"edgekit local down{_home_flag(args)}"
    )
    return 0 if code in (0, -signal.SIGTERM) else 1


def _home_flag(args: argparse.Namespace) -> str:
    home = getattr(args, "home", None)
    return f" --home {home}" if home else ""
