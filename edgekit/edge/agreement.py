"""How often a shadow (candidate) model agrees with the current model on the same frames.

Both models see the same decoded frame; each frame gives one
:class:`FrameComparison`, and :class:`AgreementStats` sums them since start
and over a sliding window. Definitions (detections are result-message
dicts: ``class_id`` and ``box`` = [left, top, width, height] in pixels):

- **IoU** of two boxes: area of their intersection / area of their union
  (0 when the union is empty).
- **Matched detections** of one frame: a one-to-one matching between the
  current model's detections C and the shadow's S. Candidate pairs have the
  same ``class_id`` and IoU >= 0.5 (:data:`IOU_THRESHOLD`); they are taken
  greedily by decreasing IoU (ties: lower current index, then lower shadow
  index), each detection at most once. ``matched`` = number of pairs taken.
- **Defect agreement** (image level) = frames where both models call the
  image defective or both call it clean (defective = at least one detection
  at or above its threshold, as the result's ``defect``) / frames compared.
- **Detection agreement** = matched-detection F1 between the two models,
  micro-averaged over frames: ``2 * sum(matched) / (sum(|C|) + sum(|S|))``.
  It is symmetric, 1.0 when every detection of either model has a partner,
  and 1.0 when frames were compared and neither model detected anything
  (they agree there is nothing).
- Both are None (JSON null) when no frame was compared.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IOU_THRESHOLD = 0.5
MAX_WINDOW_FRAMES = 200_000


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [left, top, width, height] boxes."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = max(0.0, aw) * max(0.0, ah) + max(0.0, bw) * max(0.0, bh) - inter
    return inter / union if union > 0 else 0.0


def match_detections(
    current: Sequence[Mapping[str, Any]],
    shadow: Sequence[Mapping[str, Any]],
    threshold: float = IOU_THRESHOLD,
) -> list[tuple[int, int]]:
    """The greedy one-to-one (current index, shadow index) pairs of the module docstring."""
    pairs = []
    for i, c in enumerate(current):
        for j, s in enumerate(shadow):
            if c.get("class_id", 0) != s.get("class_id", 0):
                continue
            overlap = iou(c["box"], s["box"])
            if overlap >= threshold:
                pairs.append((-overlap, i, j))
    pairs.sort()
    used_c: set[int] = set()
    used_s: set[int] = set()
    taken = []
    for _, i, j in pairs:
        if i not in used_c and j not in used_s:
            used_c.add(i)
            used_s.add(j)
            taken.append((i, j))
    return taken


@dataclass(frozen=True)
class FrameComparison:
    defect_agrees: bool
    matched: int
    current: int
    """Number of the current model's detections."""
    shadow: int
    """Number of the shadow model's detections."""


def compare_frame(
    current: Sequence[Mapping[str, Any]],
    shadow: Sequence[Mapping[str, Any]],
    *,
    current_defect: bool | None = None,
    shadow_defect: bool | None = None,
) -> FrameComparison:
    """Compare one frame; a model's defect verdict defaults to "it detected something"."""
    c_defect = bool(current) if current_defect is None else current_defect
    s_defect = bool(shadow) if shadow_defect is None else shadow_defect
    return FrameComparison(
        defect_agrees=c_defect == s_defect,
        matched=len(match_detections(current, shadow)),
        current=len(current),
        shadow=len(shadow),
    )


def summarize(frames: Sequence[FrameComparison]) -> dict[str, Any]:
    """``{"images_compared", "defect_agreement", "detection_agreement"}`` over ``frames``."""
    n = len(frames)
    if n == 0:
        return {"images_compared": 0, "defect_agreement": None, "detection_agreement": None}
    agree = sum(f.defect_agrees for f in frames)
    matched = sum(f.matched for f in frames)
    total = sum(f.current + f.shadow for f in frames)
    return {
        "images_compared": n,
        "defect_agreement": round(agree / n, 6),
        "detection_agreement": round(2 * matched / total, 6) if total else 1.0,
    }


class AgreementStats:
    """Frame comparisons since start (running sums) and over the last ``window_seconds``."""

    def __init__(
        self, window_seconds: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_seconds = float(window_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._frames = 0
        self._agree = 0
        self._matched = 0
        self._total = 0
        self._window: deque[tuple[float, FrameComparison]] = deque(maxlen=MAX_WINDOW_FRAMES)

    def record(self, frame: FrameComparison) -> None:
        with self._lock:
            self._frames += 1
            self._agree += frame.defect_agrees
            self._matched += frame.matched
            self._total += frame.current + frame.shadow
            self._window.append((self._clock(), frame))

    def set_window(self, seconds: float) -> None:
        with self._lock:
            self.window_seconds = float(seconds)

    def snapshot(self) -> dict[str, Any]:
        """``{"since_start": {...}, "window": {...}}`` as health.schema.json's agreement."""
        with self._lock:
            horizon = self._clock() - self.window_seconds
            while self._window and self._window[0][0] < horizon:
                self._window.popleft()
            window = summarize([f for _, f in self._window])
            n = self._frames
            since = {
                "images_compared": n,
                "defect_agreement": round(self._agree / n, 6) if n else None,
                "detection_agreement": (
                    (round(2 * self._matched / self._total, 6) if self._total else 1.0)
                    if n
                    else None
                ),
            }
        return {"since_start": since, "window": window}
