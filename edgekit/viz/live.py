"""A live results browser for JupyterLab: the latest image with its boxes, a slider through history.

It needs a running kernel with a widget frontend. A scheduled (papermill) run
has a kernel but nobody to look, and papermill offers no reliable way to be
detected from inside (its maintainers recommend a parameter). So the notebooks
carry a parameter ``interactive = True`` that the pipeline sets to False, and
pass it here; without it, `is_interactive` decides from the environment.
Non-interactive calls get a static figure of the latest result instead.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from edgekit.viz import style
from edgekit.viz.data import find_image, load_image
from edgekit.viz.detections import plot_detections

INTERACTIVE_ENV = "EDGEKIT_INTERACTIVE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def is_interactive(interactive: bool | None = None) -> bool:
    """Whether to build widgets: the explicit argument (a notebook parameter) wins;
    then ``EDGEKIT_INTERACTIVE``; scheduled runs (``EDGEKIT_QUIET=1``) are not
    interactive; otherwise only inside an IPython kernel with ipywidgets installed.
    """
    if interactive is not None:
        return bool(interactive)
    env = os.environ.get(INTERACTIVE_ENV, "").strip().lower()
    if env in _TRUE:
        return True
    if env in _FALSE:
        return False
    from edgekit.progress import quiet

    if quiet():
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def _context(collector: Any) -> str:
    """What the figure shows: how many results from how many devices."""
    history = collector.latest()
    devices = len({str(r.get("thing_name")) for r in history})
    received = getattr(collector, "received", len(history))
    if not history:
        return "Live view · waiting for the first result"
    return (
        f"Live view · latest of {received} result{'s' if received != 1 else ''} "
        f"from {devices} device{'s' if devices != 1 else ''}"
    )


def _render(
    result: dict[str, Any] | None,
    image_dir: Path,
    *,
    context: str | None = None,
    width: float = 6.4,
) -> Figure:
    """The latest result's image and boxes, titled with ``context`` and the result's details."""
    path = None if result is None else find_image(image_dir, str(result.get("image_name", "")))
    pixels = None if path is None else load_image(path)
    if pixels is None:
        figure = style.new_figure(width, width * 0.62)
    else:
        height, image_width = pixels.shape[:2]
        figure = style.new_figure(
            min(9.0, max(5.6, 2.4 + image_width / 80)), min(7.5, 2.1 + height / 80)
        )
    grid = figure.add_gridspec(2, 1, height_ratios=[0.001, 1.0])
    ax = figure.add_subplot(grid[1])
    if result is None:
        style.empty_message(ax, "waiting for results…")
    elif pixels is None:
        style.empty_message(ax, f"{result.get('image_name')}\nnot found in {image_dir}")
    else:
        plot_detections(pixels, result, ax=ax)
        ax.set_axis_on()
        style.style_axes(ax, grid=None)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("x (pixels)", fontsize=9)
        ax.set_ylabel("y (pixels)", fontsize=9)
    style.header(figure, grid[0], context or "Live view", _caption(result, "\n") or None)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _caption(result: dict[str, Any] | None, separator: str = " · ") -> str:
    """When, from which device and model, what was found: one line (or two, ``separator``)."""
    if result is None:
        return ""
    model = result.get("model") or {}
    scores = [d.get("score", 0.0) for d in result.get("detections", [])]
    best = f", best score {max(scores):.2f}" if scores else ""
    latency = (result.get("latency_ms") or {}).get("total")
    return (
        f"{result.get('timestamp')} · {result.get('thing_name')}{separator}"
        f"{model.get('name')} {model.get('version')} · {len(scores)} detection(s){best}"
        + (f" · {latency:.1f} ms" if isinstance(latency, int | float) else "")
    )


class LiveView:
    """The widget of `live_view`; shows itself in Jupyter. `close()` stops updating it."""

    def __init__(
        self, collector: Any, image_dir: str | os.PathLike[str], *, min_interval: float = 0.5
    ) -> None:
        import ipywidgets as widgets

        self.collector = collector
        self.image_dir = Path(image_dir)
        self.min_interval = min_interval
        self._lock = threading.RLock()  # the slider's observer runs inside refresh()
        self._updating = False
        self._timer: threading.Timer | None = None
        self._last_render = 0.0
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="720px"))
        self.slider = widgets.IntSlider(
            value=0,
            min=0,
            max=0,
            description="history",
            continuous_update=False,
            layout=widgets.Layout(width="60%"),
        )
        self.follow = widgets.ToggleButton(value=True, description="follow latest", icon="play")
        self.caption = widgets.HTML()
        self.stats = widgets.HTML()
        self.slider.observe(self._on_slider, names="value")
        self.follow.observe(self._on_follow, names="value")
        self.widget = widgets.VBox(
            [widgets.HBox([self.slider, self.follow]), self.image, self.caption, self.stats]
        )
        collector.add_listener(self._on_result)
        self.refresh()

    # --- drawing ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw from the collector's current history."""
        history = self.collector.latest()
        with self._lock:
            self._last_render = time.monotonic()
            self._updating = True
            try:
                self.slider.max = max(len(history) - 1, 0)
                if self.follow.value:
                    self.slider.value = self.slider.max
            finally:
                self._updating = False
            index = min(self.slider.value, len(history) - 1)
            self._show(history[index] if history else None)

    def _show(self, result: dict[str, Any] | None) -> None:
        # the texts first: rendering the PNG takes a while on a busy machine
        self.caption.value = f"<span style='font-size: 90%'>{_caption(result)}</span>"
        c = self.collector
        self.stats.value = (
            f"<span style='color: {style.MUTED}; font-size: 85%'>{c.received} received · "
            f"{c.invalid} invalid · {c.duplicates} duplicates</span>"
        )
        figure = _render(result, self.image_dir, context=_context(c))
        self.image.value = _png(figure)

    # --- events ------------------------------------------------------------------------------

    def _on_result(self, _result: dict[str, Any]) -> None:
        # Runs on the collector's thread. Rendering a PNG takes tens of ms: at most one
        # redraw per min_interval, the last one always happens.
        with self._lock:
            if self._timer is not None:
                return
            wait = max(0.0, self.min_interval - (time.monotonic() - self._last_render))
            self._timer = threading.Timer(wait, self._timer_fired)
            self._timer.daemon = True
            self._timer.start()

    def _timer_fired(self) -> None:
        with self._lock:
            self._timer = None
        self.refresh()

    def _on_slider(self, change: dict[str, Any]) -> None:
        with self._lock:
            history = self.collector.latest()
            if self._updating or not history:
                return
            index = min(change["new"], len(history) - 1)
            if index != len(history) - 1:
                self.follow.value = False
            if self.slider.value != index:
                # A redraw that held the lock while this waited moved the slider to the
                # latest result: the user's choice wins.
                self._updating = True
                try:
                    self.slider.value = index
                finally:
                    self._updating = False
            self._show(history[index])

    def _on_follow(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.refresh()

    def close(self) -> None:
        self.collector.remove_listener(self._on_result)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def live_view(
    collector: Any,
    image_dir: str | os.PathLike[str],
    *,
    interactive: bool | None = None,
    min_interval: float = 0.5,
) -> LiveView | Figure:
    """A live browser of ``collector``'s results (a `LiveCollector`), images from ``image_dir``.

    Interactive (see `is_interactive`): a `LiveView` widget that follows new
    results, with a slider through the kept history. Otherwise a static figure
    of the latest result, so a scheduled run still records what was seen.
    """
    if not is_interactive(interactive):
        history = collector.latest(1)
        latest = history[-1] if history else None
        return _render(latest, Path(image_dir), context=_context(collector))
    return LiveView(collector, image_dir, min_interval=min_interval)


__all__ = ["INTERACTIVE_ENV", "LiveView", "is_interactive", "live_view"]
