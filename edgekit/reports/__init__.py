"""Reports people can judge: a pipeline run's ``report.html`` and a rollout's report as HTML.

Each page is self-contained (inline stylesheet, figures as ``data:`` URIs, no
JavaScript, no external assets) and starts with the verdict (SUCCESS/FAILED,
PROMOTED/ROLLED_BACK), then the model (name, version, package sha256), each device's
proof of inspection, each gate with its numbers and verdict, the notebooks with their
status and duration, and the figures. Text that comes from devices is escaped.

Owns: turning run folders and report dicts into HTML (`markup`: escaped elements and
the page shell; `devices`: proof rows; `gates`: gates and stages; `pipeline_report`,
`rollout_report`). Layer 10 beside `pipeline`, `workflow` and `rollout`, which call it;
it reads their outputs as files and plain data, so it must not import `edgekit.pipeline`,
`edgekit.rollout`, `edgekit.workflow`, `edgekit.cli` or anything that talks to AWS or
devices.
"""

from __future__ import annotations

from edgekit.reports.pipeline_report import ROLLOUT, render_pipeline_report
from edgekit.reports.rollout_report import render_rollout_report

__all__ = ["ROLLOUT", "render_pipeline_report", "render_rollout_report"]
