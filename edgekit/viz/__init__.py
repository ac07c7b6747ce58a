"""Figures for notebooks and reports (matplotlib; every function returns a Figure).

Functions build detached `matplotlib.figure.Figure` objects and never call
``plt.show``: a notebook displays the returned figure, a script saves it with
``fig.savefig(path)``, and everything works under the Agg backend.

Owns: drawing. Takes results tables, evaluation results and images; must not import
the AWS-facing layers (clients, provision, deploy, workflow) nor the local backend.
"""

from __future__ import annotations

from edgekit.viz.curves import plot_pr_curve
from edgekit.viz.detections import detection_grid, plot_detections
from edgekit.viz.latency import latency_bar_chart, latency_histogram
from edgekit.viz.live import LiveView, is_interactive, live_view
from edgekit.viz.timeline import defect_rate_over_time, model_versions_per_device

__all__ = [
    "LiveView",
    "defect_rate_over_time",
    "detection_grid",
    "is_interactive",
    "latency_bar_chart",
    "latency_histogram",
    "live_view",
    "model_versions_per_device",
    "plot_detections",
    "plot_pr_curve",
]
