"""A :class:`~edgekit.model.predict.Predictor` for an .onnx file or a model package.

The manifest's ``runtime`` field picks the runtime, as for the agent's verified load
(:mod:`edgekit.package.loading`); this module is apart from that one because a
Predictor reads images (Pillow), which the model agent never does.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.model.predict import Predictor, model_file
from edgekit.package.loading import PathLike, is_package
from edgekit.package.verify import open_package


def resolve_model_path(path: PathLike | None) -> Path:
    """The model file behind ``path``: an .onnx file, or a model package (folder or .tar.gz).

    ``None`` means the shipped default model. A .tar.gz package is unpacked to
    a temporary folder that outlives this call; :func:`load_predictor` instead
    unpacks it only while its session loads.
    """
    if path is not None and is_package(Path(path).expanduser()):
        return Path(open_package(Path(path).expanduser()).model_path)
    return model_file(path)


def load_predictor(path: PathLike | None = None, threads: int | None = None) -> Predictor:
    """A Predictor for an .onnx file or a model package, on the runtime its manifest names.

    A .tar.gz package is unpacked to a temporary folder only while the session
    loads; the predictor's ``model_path`` is the package itself.
    """
    if path is None or not is_package(Path(path).expanduser()):
        return Predictor(path, threads)
    package = Path(path).expanduser()
    with open_package(package) as opened:
        predictor = Predictor(opened.model_path, threads, runtime=opened.manifest.runtime)
    predictor.model_path = package
    return predictor
