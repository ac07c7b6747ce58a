"""The live browser: when it is interactive, its static fallback, and the widget following a
real LiveCollector fed through a loopback broker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from matplotlib.figure import Figure
from PIL import Image

from edgekit.results import LiveCollector
from edgekit.results.local import PahoSubscriber, parse_endpoint
from edgekit.results.subscriber import OnMessage
from edgekit.settings import Settings
from edgekit.viz import LiveView, is_interactive, live_view

TOPIC = "qualityinspection/scratch-detection"


def result(seq: int) -> dict[str, Any]:
    return {
        "timestamp": f"2026-11-23T10:00:{seq:02d}.000Z",
        "thing_name": "dev-live",
        "image_name": f"img-{seq}.png",
        "model": {"name": "m", "version": "1"},
        "detections": [{"class_id": 0, "label": "scratch", "score": 0.8, "box": [5, 5, 20, 10]}],
        "defect": True,
        "latency_ms": {"preprocess": 1, "inference": 2, "total": 3.5},
        "message_id": f"live-{seq}",
    }


def test_is_interactive_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKIT_INTERACTIVE", raising=False)
    monkeypatch.delenv("EDGEKIT_QUIET", raising=False)
    assert is_interactive(True) is True
    assert is_interactive(False) is False
    assert is_interactive() is False  # pytest is not an IPython kernel
    monkeypatch.setenv("EDGEKIT_INTERACTIVE", "1")
    assert is_interactive() is True
    monkeypatch.setenv("EDGEKIT_QUIET", "1")
    assert is_interactive() is True  # the explicit variable wins over quiet
    monkeypatch.setenv("EDGEKIT_INTERACTIVE", "0")
    assert is_interactive() is False
    monkeypatch.delenv("EDGEKIT_INTERACTIVE")
    assert is_interactive() is False  # scheduled runs are quiet
    assert is_interactive(True) is True


@pytest.fixture(autouse=True)
def agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    folder = tmp_path / "camera"
    folder.mkdir()
    for seq in range(1, 6):
        Image.fromarray(np.full((60, 80, 3), 40 * seq, np.uint8)).save(folder / f"img-{seq}.png")
    return folder


class SignallingSubscriber(PahoSubscriber):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.subscribed = threading.Event()

    def subscribe(self, topic_filter: str, on_message: OnMessage, timeout: float = 10.0) -> None:
        super().subscribe(topic_filter, on_message, timeout)
        self.subscribed.set()


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    """Poll ``condition`` (the widget redraws on a timer thread; a busy machine is slow)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def publish(endpoint: str, payloads: list[dict[str, Any]]) -> None:
    host, port = parse_endpoint(endpoint)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"viz-pub-{time.time_ns()}")
    client.connect(host, port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(TOPIC, json.dumps(payload), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_static_fallback_and_live_widget(
    broker_endpoint: str, camera: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    sub = SignallingSubscriber(broker_endpoint)
    with sub, LiveCollector(Settings(), subscriber=sub, maxlen=10) as live:
        assert sub.subscribed.wait(10)
        waiting = live_view(live, camera, interactive=False)
        assert isinstance(waiting, Figure)
        assert any("waiting" in t.get_text() for t in waiting.axes[0].texts)

        view = live_view(live, camera, interactive=True, min_interval=0.05)
        assert isinstance(view, LiveView)
        try:
            publish(broker_endpoint, [result(1), result(2), result(3)])
            assert live.wait_for(3, timeout=10)
            wait_until(lambda: "2026-11-23T10:00:03.000Z" in view.caption.value)
            with view._lock:  # the throttled redraw has finished
                pass
            assert view.slider.max == 2 and view.slider.value == 2  # follows the latest
            assert "2026-11-23T10:00:03.000Z" in view.caption.value
            assert bytes(view.image.value).startswith(b"\x89PNG")
            assert "3 received" in view.stats.value
            latest_png = bytes(view.image.value)
            view.slider.value = 0  # browsing history stops following
            assert view.follow.value is False
            assert "2026-11-23T10:00:01.000Z" in view.caption.value
            assert bytes(view.image.value) != latest_png
            publish(broker_endpoint, [result(4)])
            assert live.wait_for(4, timeout=10)
            wait_until(lambda: view.slider.max == 3)
            with view._lock:
                pass
            assert view.slider.max == 3 and view.slider.value == 0  # still where the user was
            view.follow.value = True
            assert view.slider.value == 3
            bundle = view._repr_mimebundle_()
            assert "application/vnd.jupyter.widget-view+json" in bundle
        finally:
            view.close()
        static = live_view(live, camera, interactive=False)
        assert isinstance(static, Figure)
        assert static.axes[0].get_title(loc="left").startswith("DEFECT")
        static.savefig(tmp_path / "static.png")
        assert (tmp_path / "static.png").stat().st_size > 1000
