"""Where a device runtime records the process groups of its components, and ending them.

Every lifecycle script runs in its own session; the runtime records each such
group (leader pid and start time) in ``<root>/config/process-groups.json`` and
forgets it once the group has ended. A runtime killed with SIGKILL leaves the
file behind: the next runtime of the root ends those groups before it starts
anything (`end_leftovers`), and so does ``edgekit local down`` (the manager
hands this file to `edgekit.local.process.start_process`). Processes are found
by their group, not by their environment, so a script that runs ``exec env -i``
is ended all the same; one that leaves its session (``setsid``, a daemon) is not.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edgekit.local.process import GroupLedger

LEDGER_NAME = "process-groups.json"


def ledger_file(root: str | os.PathLike[str]) -> Path:
    """``<root>/config/process-groups.json``, beside the runtime's ``state.json``."""
    return Path(root).expanduser().absolute() / "config" / LEDGER_NAME


def ledger(root: str | os.PathLike[str]) -> GroupLedger:
    return GroupLedger(ledger_file(root))


def end_leftovers(root: str | os.PathLike[str], grace: float, log: logging.Logger) -> int:
    """End the groups a previous runtime of ``root`` recorded and left running; how many."""
    ended = ledger(root).end_all(grace)
    for record in ended:
        log.warning(
            "ended process group %d (%s) left running by a previous runtime of %s",
            record.pgid,
            record.label or "?",
            root,
        )
    return len(ended)
