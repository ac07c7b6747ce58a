"""Run an edgekit ONNX model with ONNX Runtime: image in, boxes out.

Needs onnxruntime, numpy and Pillow only, never torch, so it runs wherever
the model is deployed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.types import Detection
from edgekit.errors import ModelError
from edgekit.model.metadata import ModelInfo, read_model_info
from edgekit.model.postprocess import as_rgb_array, decode, preprocess


def resolve_model_path(path: str | Path | None) -> Path:
    """The ONNX file behind ``path``: an .onnx file, or a model package (folder or .tar.gz).

    ``None`` means the shipped default model. A .tar.gz package is unpacked to
    a temporary folder that outlives this call; :class:`Predictor` instead
    unpacks it only while its session loads.
    """
    if path is None:
        from edgekit.model import default_model_path

        return default_model_path()
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: model not found (give an .onnx file or a model package)")
    if path.is_file() and path.suffix.lower() == ".onnx":
        return path
    if path.is_dir() or path.name.lower().endswith((".tar.gz", ".tgz")):
        try:
            package = importlib.import_module("edgekit.package")
            open_package = package.open_package
        except (ModuleNotFoundError, AttributeError) as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name not in (
                "edgekit.package",
                None,
            ):
                raise
            raise ModelError(
                f"{path}: model packages are not supported yet by this edgekit build; "
                "pass the .onnx file instead"
            ) from exc
        return Path(open_package(path).model_path)
    raise ModelError(f"{path}: not an .onnx file, a package folder or a .tar.gz package")


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz"))


class Predictor:
    """One ONNX Runtime session, created once, plus the model's own pre/post-processing.

    ``model_path`` is an .onnx file, a model package folder or a package
    .tar.gz (unpacked to a temporary folder only while the session loads), or
    None for the shipped model.
    """

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None) -> None:
        self.threads = threads
        path = None if model_path is None else Path(model_path).expanduser()
        if path is not None and _is_archive(path):
            from edgekit.package import open_package

            with open_package(path) as opened:
                self._load(Path(opened.model_path))
            self.model_path = path
        else:
            self.model_path = resolve_model_path(path)
            self._load(self.model_path)

    def _load(self, onnx_path: Path) -> None:
        import onnxruntime as ort

        self.info: ModelInfo = read_model_info(onnx_path)
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = int(self.threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own non-exported exception types
            raise ModelError(f"{onnx_path}: ONNX Runtime cannot load it ({exc})") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        if self.info.preprocessing.input_name not in inputs:
            raise ModelError(
                f"{onnx_path}: metadata input_name "
                f"{self.info.preprocessing.input_name!r} is not a graph input ({inputs})"
            )
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_path)!r})"

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs for one preprocessed input tensor."""
        values = self.session.run(None, {self.info.preprocessing.input_name: tensor})
        return dict(zip(self.output_names, values, strict=True))

    def predict(self, image: Any, score_threshold: float | None = None) -> list[Detection]:
        """Detections in original-image pixels for an RGB array, a PIL image or a file path."""
        if isinstance(image, (str, Path)):
            from edgekit.data.images import load_image

            image = load_image(image)
        array = as_rgb_array(image)
        outputs = self.run(preprocess(array, self.info.preprocessing))
        height, width = array.shape[:2]
        return decode(outputs, self.info, (width, height), score_threshold)

    __call__ = predict


def predict_folder(
    predictor: Predictor, folder: str | Path, score_threshold: float | None = None
) -> tuple[Iterator[dict[str, Any]], list[tuple[Path, str]]]:
    """Predict every readable image in ``folder``.

    Returns a lazy iterator of ``{"image_name", "detections"}`` records and the
    list of skipped ``(path, reason)`` pairs, which fills as the iterator runs.
    """
    from edgekit.data.images import iter_images

    images = iter_images(folder)

    def records() -> Iterator[dict[str, Any]]:
        for path, image in images:
            detections = predictor.predict(image, score_threshold)
            yield {
                "image_name": Path(path).name,
                "detections": [d.to_json() for d in detections],
            }

    return records(), images.skipped
