"""``make demo``: the main job on the local backend, into ``runs/<timestamp>/``.

At the end it says what keeps running (the local endpoints and the device runtimes the
notebooks started), how to open the notebooks (`make lab`) and how to stop everything.
"""

from __future__ import annotations

import sys

from edgekit.cli import main
from edgekit.local.endpoints import SCHEDULER, SERVERS, status
from edgekit.settings import resolve_local_home


def still_running() -> str:
    """What the run left running, and how to look at it and stop it (for the end of a run)."""
    rows = [row for row in status() if row.alive]
    servers = [row.name for row in rows if row.name in (*SERVERS, SCHEDULER)]
    devices = [row.name for row in rows if row.name not in (*SERVERS, SCHEDULER)]
    if not rows:
        return "Nothing of the local backend is running."
    running = ", ".join(servers) or "no endpoint"
    if devices:
        running += f" and {len(devices)} device runtime(s) ({', '.join(devices)})"
    return (
        f"Still running, in the background: {running}; state in {resolve_local_home()}.\n"
        "  make lab                          open the notebooks in JupyterLab "
        "(.venv/bin/edgekit lab)\n"
        "  .venv/bin/edgekit local down      stop the endpoints and devices"
    )


def run() -> int:
    code = main(["pipeline", "run", "--backend", "local", "--runs-root", "runs"])
    print()
    print(still_running())
    return code


if __name__ == "__main__":
    sys.exit(run())
