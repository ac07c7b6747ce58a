"""Rebuild a PyTorch detector from an exported edgekit ONNX file, weight for weight.

Why: the latency benchmark compares PyTorch eager with ONNX Runtime on *the
same* model, and only the ONNX file ships. Export folds every batch norm into
its convolution (:meth:`ScratchDetector.fuse`) and keeps PyTorch's parameter
names under the ``model.`` prefix of :class:`~edgekit.model.detector.ExportWrapper`
(``model.stem.conv.weight``, ``model.stem.conv.bias``, ...). So a fresh
detector with the same :class:`DetectorConfig`, fused, has exactly the
state-dict keys of the ONNX initializers minus that prefix, and loading them
gives the inference-time network. Needs torch (the ``[train]`` extra) and onnx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.data.types import Detection
from edgekit.errors import ModelError
from edgekit.model.detector import DetectorConfig, ExportWrapper, ScratchDetector
from edgekit.model.metadata import ModelInfo, read_model_info
from edgekit.model.postprocess import as_rgb_array, decode, preprocess

PREFIX = "model."


def config_from_onnx(weights: dict[str, np.ndarray], info: ModelInfo, where: str) -> DetectorConfig:
    """The architecture: from ``extra.training.detector`` if recorded, else from weight shapes."""
    recorded = (info.extra.get("training") or {}).get("detector")
    if recorded:
        return DetectorConfig.from_json(recorded)
    try:
        stem = weights["model.stem.conv.weight"]
        stages = sorted({int(k.split(".")[2]) for k in weights if k.startswith("model.stages.")})
        widths = [stem.shape[0]] + [
            weights[f"model.stages.{i}.0.conv.weight"].shape[0] for i in stages
        ]
        laterals = sum(
            1 for k in weights if k.startswith("model.lateral.") and k.endswith("weight")
        )
        return DetectorConfig(
            input_height=info.preprocessing.height,
            input_width=info.preprocessing.width,
            num_classes=int(weights["model.head_heat.1.weight"].shape[0]),
            widths=tuple(int(w) for w in widths),
            neck_channels=int(weights["model.lateral.0.conv.weight"].shape[0]),
            head_channels=int(weights["model.head_heat.0.conv.weight"].shape[0]),
            stride=32 // 2 ** (laterals - 1),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelError(
            f"{where}: cannot infer the detector architecture from the ONNX weights ({exc}); "
            "give a model exported by edgekit train (not a compiled one)"
        ) from exc


def onnx_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Every initializer of the ONNX graph as a numpy array, by name."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def load_detector(path: str | Path) -> tuple[ScratchDetector, ModelInfo]:
    """A fused, eval-mode :class:`ScratchDetector` holding the weights of ``path``.

    ``path`` must be an ONNX file written by :func:`edgekit.model.export.export_onnx`
    (e.g. the shipped model); compiled files rename or quantize the weights and
    are refused with a ModelError naming the missing tensors.
    """
    path = Path(path)
    info = read_model_info(path)
    weights = onnx_weights(path)
    config = config_from_onnx(weights, info, str(path))
    model = ScratchDetector(config).eval().fuse()
    expected = model.state_dict()
    missing = [PREFIX + k for k in expected if PREFIX + k not in weights]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ModelError(
            f"{path}: {len(missing)} detector weight(s) not found in the ONNX initializers "
            f"({shown}); give a model exported by edgekit train, not a compiled one"
        )
    state: dict[str, torch.Tensor] = {}
    for key, tensor in expected.items():
        array = weights[PREFIX + key]
        if tuple(array.shape) != tuple(tensor.shape):
            raise ModelError(
                f"{path}: initializer {PREFIX + key} has shape {tuple(array.shape)}, the "
                f"detector described by the metadata expects {tuple(tensor.shape)}"
            )
        state[key] = torch.from_numpy(np.array(array, dtype=np.float32))
    model.load_state_dict(state, strict=True)
    return model, info


class TorchPredictor:
    """PyTorch eager counterpart of :class:`edgekit.model.predict.Predictor`.

    Same preprocessing and decoding (numpy, from the model metadata); only the
    network runs in PyTorch, so the two can be timed and scored side by side.
    ``threads`` is applied with ``torch.set_num_threads`` when given; it is
    process-wide in PyTorch, so set it again before timing if it changed.
    """

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        model, self.info = load_detector(self.model_path)
        self.network = ExportWrapper(model).eval()
        self.output_names = list(ExportWrapper.output_names)
        if threads is not None:
            torch.set_num_threads(int(threads))

    def __repr__(self) -> str:
        return f"TorchPredictor({str(self.model_path)!r})"

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs (sigmoid heatmap, size, offset) for one preprocessed input tensor."""
        with torch.inference_mode():
            values = self.network(torch.from_numpy(tensor))
        return {name: v.numpy() for name, v in zip(self.output_names, values, strict=True)}

    def predict(self, image: Any, score_threshold: float | None = None) -> list[Detection]:
        """Detections in original-image pixels, exactly as ``Predictor.predict`` computes them."""
        array = as_rgb_array(image)
        outputs = self.run(preprocess(array, self.info.preprocessing))
        height, width = array.shape[:2]
        return decode(outputs, self.info, (width, height), score_threshold)

    __call__ = predict
