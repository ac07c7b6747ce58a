"""One inspection: read an image, preprocess it as the package says, predict through the agent.

The model package's ``manifest.json`` holds the preprocessing, labels,
threshold and output decoding; the agent verifies the package's signature when
it loads it and runs the model; this module turns an image into the tensor the
model wants and the raw outputs into boxes in pixels of the original image.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.images import load_image
from edgekit.data.types import Detection
from edgekit.errors import AgentError, DataError, ModelError
from edgekit.model.loaded import LoadedModel
from edgekit.model.metadata import ModelInfo
from edgekit.model.postprocess import decode, preprocess

log = logging.getLogger(__name__)


class SkipImage(Exception):
    """This image cannot be inspected (unreadable, truncated...); skip and count it."""


@dataclass
class Inspection:
    image_name: str
    width: int
    height: int
    detections: list[Detection]
    best_score: float
    read_time: float
    """Wall-clock time (time.time()) when the image was read: the result's timestamp."""
    latency_ms: dict[str, float]
    image_bytes: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


def read_manifest(package: Path) -> dict[str, Any]:
    path = package / "manifest.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{path}: no model package manifest; is the model component installed?"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the package manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: the manifest is not a JSON object")
    return data


def model_info(manifest: dict[str, Any], *, where: str) -> ModelInfo:
    """The decoding facts of a package manifest as a ModelInfo."""
    data = {
        "preprocessing": manifest.get("preprocessing"),
        "labels": manifest.get("labels") or {"0": "scratch"},
        "postprocess": manifest.get("postprocess"),
    }
    if manifest.get("score_threshold") is not None:
        data["score_threshold"] = manifest["score_threshold"]
    if data["preprocessing"] is None or data["postprocess"] is None:
        raise ModelError(f"{where}: the manifest lacks preprocessing or postprocess")
    return ModelInfo.from_json(data, where=where)


class Inspector:
    """Loads the model into the agent and inspects images with it."""

    def __init__(self, agent: Any, *, use_shared_memory: bool = True) -> None:
        self.agent = agent
        self.use_shared_memory = use_shared_memory
        self.model: LoadedModel | None = None

    def load(self, name: str, package: Path) -> LoadedModel:
        """Load ``package`` into the agent as ``name`` (replacing another package of that name)."""
        manifest = read_manifest(package)
        where = str(package / "manifest.json")
        info = model_info(manifest, where=where)
        version = str(manifest.get("version") or "unknown")
        url = str(package)
        loaded = {m.name: m for m in self.agent.list_models()}
        current = loaded.get(name)
        if current is not None and current.url != url:
            log.info("model %s is loaded from %s; replacing it with %s", name, current.url, url)
            self.agent.unload_model(name)
            current = None
        if current is None:
            self.agent.load_model(name, url)
        self.model = LoadedModel(
            name=name,
            version=version,
            package=package,
            source=url,
            runtime=str(manifest.get("runtime") or ""),
            info=info,
        )
        log.info("model %s %s ready (package %s)", name, version, package)
        return self.model

    def _predict(self, name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        inputs = {self._info().preprocessing.input_name: tensor}
        if self.use_shared_memory:
            try:
                return self.agent.predict(name, inputs, shared_memory=True)
            except AgentError as exc:
                if getattr(exc, "code", "") == "UNAVAILABLE":
                    raise
                log.warning("shared-memory predict failed (%s); sending tensors inline", exc)
                self.use_shared_memory = False
            except OSError as exc:  # no /dev/shm on this device
                log.warning("shared memory is not available (%s); sending tensors inline", exc)
                self.use_shared_memory = False
        return self.agent.predict(name, inputs)

    def require(self) -> LoadedModel:
        if self.model is None or self.model.info is None:
            raise ModelError("no model loaded; call Inspector.load first")
        return self.model

    def _info(self) -> ModelInfo:
        info = self.require().info
        assert info is not None  # require() checked it
        return info

    def inspect(
        self,
        path: Path,
        *,
        score_threshold: float | None = None,
        band_low: float | None = None,
        keep_bytes: bool = False,
    ) -> Inspection:
        """Inspect one image; SkipImage if it cannot be read. Agent errors propagate."""
        model = self.require()
        info = self._info()
        read_time = time.time()
        start = time.perf_counter()
        try:
            data = path.read_bytes() if keep_bytes else b""
            rgb = load_image(path)
        except (DataError, OSError) as exc:
            raise SkipImage(str(exc).removeprefix(f"{path}: ")) from exc
        tensor = preprocess(rgb, info.preprocessing)
        t_pre = time.perf_counter()
        outputs = self._predict(model.name, tensor)
        t_inf = time.perf_counter()
        threshold = info.score_threshold if score_threshold is None else score_threshold
        floor = threshold if band_low is None else min(threshold, band_low)
        height, width = rgb.shape[:2]
        found = decode(outputs, info, (width, height), floor)
        t_dec = time.perf_counter()
        detections = [d for d in found if d.score >= threshold]
        return Inspection(
            image_name=path.name,
            width=width,
            height=height,
            detections=detections,
            best_score=max((d.score for d in found), default=0.0),
            read_time=read_time,
            latency_ms={
                "preprocess": round((t_pre - start) * 1000.0, 3),
                "inference": round((t_inf - t_pre) * 1000.0, 3),
                "postprocess": round((t_dec - t_inf) * 1000.0, 3),
            },
            image_bytes=data,
        )
