"""Staged, gated rollouts of a model package: shadow, canary, fleet; rollback on a failing gate.

Owns: the gates and their evaluation on what devices report (``gates``), the fleet's
messages during a rollout (``observe``), the Greengrass side of a stage: groups,
memberships, stage deployments and rollbacks (``stages``), the shadow stage (``shadow``),
the persistent record under ``settings.home/"rollouts"`` (``record``), the registry
outcome (``outcome``), a candidate made of a package's model as a new version, without
training (``candidate``), and ``rollout()`` itself (``workflow``).

Sits with the workflows (layer 10): it may use ``components``, ``deploy`` (and its
proof of inspection), ``registry``, ``results``, ``package`` and ``reports``. Must not
import ``edgekit.cli``, ``edgekit.workflow``, ``edgekit.pipeline`` or the local emulators:
it talks to Greengrass and IoT through ``edgekit.clients`` only, on either backend.
"""

from __future__ import annotations

from edgekit.errors import RolloutError
from edgekit.rollout.gates import (
    GATE_NAMES,
    DeviceWindow,
    GateResult,
    Gates,
    device_window,
    evaluate,
)
from edgekit.rollout.record import (
    FINAL,
    PROMOTED,
    ROLLED_BACK,
    RolloutRecord,
    Stage,
    list_records,
    load_record,
    rollouts_dir,
    write_report,
)
from edgekit.rollout.workflow import DEFAULT_TIMEOUT, rollout

__all__ = [
    "DEFAULT_TIMEOUT",
    "FINAL",
    "GATE_NAMES",
    "PROMOTED",
    "ROLLED_BACK",
    "DeviceWindow",
    "GateResult",
    "Gates",
    "RolloutError",
    "RolloutRecord",
    "Stage",
    "device_window",
    "evaluate",
    "list_records",
    "load_record",
    "rollout",
    "rollouts_dir",
    "write_report",
]
