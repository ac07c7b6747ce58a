"""``make demo``: the main job on the local backend, into ``runs/<timestamp>/``."""

from __future__ import annotations

import sys

from edgekit.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", "run", "--backend", "local", "--runs-root", "runs"]))
