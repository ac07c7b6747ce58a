"""Run an edgekit model file: image in, boxes out.

Needs a model runtime (ONNX Runtime by default, see :mod:`edgekit.runtimes`),
numpy and Pillow only, never torch, so it runs wherever the model is deployed.
Model *packages* are opened one layer up, by
:func:`edgekit.package.load_predictor`, which reads the runtime from the
package manifest and hands the model file to :class:`Predictor`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.images import iter_images, load_image
from edgekit.data.types import Detection
from edgekit.errors import ModelError
from edgekit.model import default_model_path
from edgekit.model.metadata import ModelInfo, read_model_info
from edgekit.model.postprocess import as_rgb_array, decode, preprocess
from edgekit.runtimes import get_runtime

DEFAULT_RUNTIME = "onnxruntime"
"""The runtime for a bare .onnx file (a package names its own in its manifest)."""

PACKAGE_HINT = (
    "is a model package; load it with edgekit.package.load_predictor(path) "
    "(`edgekit predict --model` accepts packages)"
)


def model_file(path: str | Path | None) -> Path:
    """The .onnx file ``path`` names; None means the shipped default model.

    ModelError naming the path if it is missing, a package, or not an .onnx file.
    """
    if path is None:
        return default_model_path()
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: model not found (give an .onnx file or a model package)")
    if path.is_file() and path.suffix.lower() == ".onnx":
        return path
    if path.is_dir() or path.name.lower().endswith((".tar.gz", ".tgz")):
        raise ModelError(f"{path} {PACKAGE_HINT}")
    raise ModelError(f"{path}: not an .onnx file, a package folder or a .tar.gz package")


class Predictor:
    """One runtime session, created once, plus the model's own pre/post-processing.

    ``model_path`` is an .onnx file, or None for the shipped model; ``runtime``
    is the runtime (or a package manifest's ``runtime`` value) to run it with.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        threads: int | None = None,
        *,
        runtime: str = DEFAULT_RUNTIME,
    ) -> None:
        self.threads = threads
        self.model_path = model_file(model_path)
        self.runtime = runtime
        self._load(self.model_path)

    def _load(self, onnx_path: Path) -> None:
        self.info: ModelInfo = read_model_info(onnx_path)
        engine = get_runtime(self.runtime, where=str(onnx_path))
        self.session = engine.open(onnx_path, threads=self.threads, where=str(onnx_path))
        inputs = [i.name for i in self.session.inputs]
        if self.info.preprocessing.input_name not in inputs:
            raise ModelError(
                f"{onnx_path}: metadata input_name "
                f"{self.info.preprocessing.input_name!r} is not a graph input ({inputs})"
            )
        self.output_names = [o.name for o in self.session.outputs]

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_path)!r})"

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs for one preprocessed input tensor."""
        values = self.session.run({self.info.preprocessing.input_name: tensor})
        return dict(zip(self.output_names, values, strict=True))

    def predict(self, image: Any, score_threshold: float | None = None) -> list[Detection]:
        """Detections in original-image pixels for an RGB array, a PIL image or a file path."""
        if isinstance(image, (str, Path)):
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
    images = iter_images(folder)

    def records() -> Iterator[dict[str, Any]]:
        for path, image in images:
            detections = predictor.predict(image, score_threshold)
            yield {
                "image_name": Path(path).name,
                "detections": [d.to_json() for d in detections],
            }

    return records(), images.skipped
