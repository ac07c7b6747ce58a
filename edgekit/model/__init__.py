"""The scratch detector: train (PyTorch), export to ONNX, predict, evaluate.

Importing this package never imports torch or onnxruntime: training lives in
:mod:`edgekit.model.train` (needs the ``[train]`` extra) and inference in
:mod:`edgekit.model.predict` (ONNX Runtime, loaded when a Predictor is made).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ModelError
from edgekit.model.evaluate import (
    EvalResult,
    average_precision,
    evaluate,
    iou,
    synthetic_validation,
)
from edgekit.model.metadata import ModelInfo, Preprocessing, read_model_info, write_model_info
from edgekit.model.postprocess import decode, preprocess

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.model.predict import Predictor, predict_folder, resolve_model_path

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def default_model_path() -> Path:
    """The model shipped with edgekit (trained on synthetic images; see shipped/TRAINING.md)."""
    path = SHIPPED_DIR / "model.onnx"
    if not path.is_file():
        raise ModelError(
            f"{path}: the shipped model is missing from this installation; reinstall edgekit "
            "or pass a model path"
        )
    return path


_LAZY = {"Predictor", "predict_folder", "resolve_model_path"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from edgekit.model import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'edgekit.model' has no attribute {name!r}")


__all__ = [
    "EvalResult",
    "ModelInfo",
    "Predictor",
    "Preprocessing",
    "average_precision",
    "decode",
    "default_model_path",
    "evaluate",
    "iou",
    "predict_folder",
    "preprocess",
    "read_model_info",
    "resolve_model_path",
    "synthetic_validation",
    "write_model_info",
]
