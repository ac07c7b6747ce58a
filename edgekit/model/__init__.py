"""The scratch detector: train (PyTorch), export to ONNX, predict, evaluate.

Owns: the detector, its training and ONNX export, the edgekit metadata in a
model file, pre/post-processing, evaluation, :class:`~edgekit.model.predict.Predictor`
(a model *file* on a runtime from :mod:`edgekit.runtimes`) and
:class:`~edgekit.model.loaded.LoadedModel`, the one record of a loaded model.

Must not import: edgekit.compile, edgekit.package, edgekit.agent, edgekit.edge,
the AWS/workflow modules or the CLI (model packages are opened one layer up,
by :func:`edgekit.package.load_predictor`). Importing this package never
imports torch or onnxruntime: training lives in :mod:`edgekit.model.train`
(needs the ``[train]`` extra) and the runtime is loaded when a Predictor is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import ModelError
from edgekit.lazy import lazy_attributes
from edgekit.model.metadata import ModelInfo, Preprocessing, read_model_info, write_model_info
from edgekit.model.postprocess import decode, preprocess

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.model.evaluate import (
        EvalResult,
        average_precision,
        evaluate,
        iou,
        synthetic_validation,
    )
    from edgekit.model.loaded import LoadedModel
    from edgekit.model.predict import Predictor, model_file, predict_folder

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: The detector pretrained on synthetic renders only (shipped/TRAINING.md): where
#: ``edgekit train --data <folder>`` starts from by default.
PRETRAINED_SYNTHETIC = SHIPPED_DIR / "synthetic.onnx"


def default_model_path() -> Path:
    """The model shipped with edgekit (see shipped/TRAINING.md).

    Pretrained on synthetic images, then fine-tuned on real photos.
    """
    path = SHIPPED_DIR / "model.onnx"
    if not path.is_file():
        raise ModelError(
            f"{path}: the shipped model is missing from this installation; reinstall edgekit "
            "or pass a model path"
        )
    return path


# Loaded on first use: evaluation needs edgekit.data (Pillow, the synthetic generator),
# which the model agent, loading models through this package, never uses.
_LAZY = {
    "EvalResult": "edgekit.model.evaluate",
    "average_precision": "edgekit.model.evaluate",
    "evaluate": "edgekit.model.evaluate",
    "iou": "edgekit.model.evaluate",
    "synthetic_validation": "edgekit.model.evaluate",
    "LoadedModel": "edgekit.model.loaded",
    "Predictor": "edgekit.model.predict",
    "model_file": "edgekit.model.predict",
    "predict_folder": "edgekit.model.predict",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "EvalResult",
    "LoadedModel",
    "ModelInfo",
    "Predictor",
    "Preprocessing",
    "average_precision",
    "decode",
    "default_model_path",
    "evaluate",
    "iou",
    "model_file",
    "predict_folder",
    "preprocess",
    "read_model_info",
    "synthetic_validation",
    "write_model_info",
]
