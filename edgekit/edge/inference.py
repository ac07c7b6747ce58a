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
from edgekit.model.postprocess import decode, input_shape, preprocess

log = logging.getLogger(__name__)


class SkipImage(Exception):
    """This image cannot be inspected (unreadable, truncated...); skip and count it."""


@dataclass
class Frame:
    """One image as read from the camera folder: decoded RGB plus when it was read."""

    image_name: str
    rgb: np.ndarray = field(repr=False)
    read_time: float
    """Wall-clock time (time.time()) when the image was read: the result's timestamp."""
    read_ms: float = 0.0
    """Milliseconds spent reading and decoding the file."""
    image_bytes: bytes = field(default=b"", repr=False)


def read_frame(path: Path, *, keep_bytes: bool = False) -> Frame:
    """Read and decode ``path``; SkipImage (with the reason) if it cannot be read."""
    read_time = time.time()
    start = time.perf_counter()
    try:
        data = path.read_bytes() if keep_bytes else b""
        rgb = load_image(path)
    except (DataError, OSError) as exc:
        raise SkipImage(str(exc).removeprefix(f"{path}: ")) from exc
    return Frame(
        image_name=path.name,
        rgb=rgb,
        read_time=read_time,
        read_ms=(time.perf_counter() - start) * 1000.0,
        image_bytes=data,
    )


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
    frame: Frame | None = field(default=None, repr=False)
    """The decoded image, so a shadow model can run on the very same frame."""


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
        self._input: np.ndarray | None = None
        """The input tensor in the agent client's shared memory, preprocessed into in place
        for every image (see :meth:`_input_buffer`)."""
        self.model: LoadedModel | None = None
        self.identity: dict[str, str | None] = {}
        """What the agent verified at load: version, package_sha256(_source), key_fingerprint."""

    def load(self, name: str, package: Path) -> LoadedModel:
        """Load ``package`` into the agent as ``name``, replacing a model of that name.

        A model already loaded under ``name`` is always unloaded first, even from
        the same path: the model component replaces the package folder in place
        on a new deployment, and the agent must verify and run what is on disk
        now, not what it loaded before. :attr:`identity` then holds what the
        agent reports it verified (version, package sha256, key fingerprint).
        """
        manifest = read_manifest(package)
        where = str(package / "manifest.json")
        info = model_info(manifest, where=where)
        version = str(manifest.get("version") or "unknown")
        url = str(package)
        loaded = {m.name: m for m in self.agent.list_models()}
        current = loaded.get(name)
        if current is not None:
            log.info("model %s is loaded from %s; reloading it from %s", name, current.url, url)
            self.agent.unload_model(name)
        reply = self.agent.load_model(name, url)
        self.identity = {
            "version": getattr(reply, "version", None),
            "package_sha256": getattr(reply, "package_sha256", None),
            "package_sha256_source": getattr(reply, "package_sha256_source", None),
            "key_fingerprint": getattr(reply, "key_fingerprint", None),
        }
        agent_version = self.identity["version"]
        if agent_version and agent_version != version:
            raise ModelError(
                f"{where}: says version {version}, but the agent verified version "
                f"{agent_version} at {url}; the package changed while loading, retry"
            )
        self._input = None  # the new model's input may differ
        self.model = LoadedModel(
            name=name,
            version=version,
            package=package,
            source=url,
            runtime=str(manifest.get("runtime") or ""),
            info=info,
        )
        log.info(
            "model %s %s ready (package %s, sha256 %s, verified with key %s)",
            name,
            version,
            package,
            self.identity["package_sha256"],
            self.identity["key_fingerprint"],
        )
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

    def _input_buffer(self, height: int, width: int) -> np.ndarray | None:
        """Where to preprocess an image into: one array in the agent client's shared memory
        (``AgentClient.shared_array``), reused for every image, so the tensor is written
        once, where the agent reads it, and no image allocates one. None without shared
        memory (or with an agent client that cannot lend one)."""
        make = getattr(self.agent, "shared_array", None)
        if not self.use_shared_memory or make is None:
            return None
        pre = self._info().preprocessing
        shape = input_shape(pre, height, width)
        dtype = np.dtype(pre.dtype)
        if self._input is None or self._input.shape != shape or self._input.dtype != dtype:
            try:
                self._input = make(shape, dtype)
            except OSError as exc:  # no shared memory on this device
                log.warning("shared memory is not available (%s); sending tensors inline", exc)
                self.use_shared_memory = False
                return None
        return self._input

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
        self.require()
        frame = read_frame(path, keep_bytes=keep_bytes)
        return self.inspect_frame(
            frame, score_threshold=score_threshold, band_low=band_low, read_ms=frame.read_ms
        )

    def inspect_frame(
        self,
        frame: Frame,
        *,
        score_threshold: float | None = None,
        band_low: float | None = None,
        read_ms: float = 0.0,
    ) -> Inspection:
        """Inspect an image already read (the shadow model sees the current model's frame).

        ``read_ms`` is added to the preprocess latency (reading and decoding the file).
        """
        model = self.require()
        info = self._info()
        start = time.perf_counter()
        pre = info.preprocessing
        tensor = preprocess(frame.rgb, pre, out=self._input_buffer(pre.height, pre.width))
        t_pre = time.perf_counter()
        outputs = self._predict(model.name, tensor)
        t_inf = time.perf_counter()
        threshold = info.score_threshold if score_threshold is None else score_threshold
        floor = threshold if band_low is None else min(threshold, band_low)
        height, width = frame.rgb.shape[:2]
        found = decode(outputs, info, (width, height), floor)
        t_dec = time.perf_counter()
        detections = [d for d in found if d.score >= threshold]
        return Inspection(
            image_name=frame.image_name,
            width=width,
            height=height,
            detections=detections,
            best_score=max((d.score for d in found), default=0.0),
            read_time=frame.read_time,
            latency_ms={
                "preprocess": round(read_ms + (t_pre - start) * 1000.0, 3),
                "inference": round((t_inf - t_pre) * 1000.0, 3),
                "postprocess": round((t_dec - t_inf) * 1000.0, 3),
            },
            image_bytes=frame.image_bytes,
            frame=frame,
        )
