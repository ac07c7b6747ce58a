"""Load a model package into a runtime: the step between a verified package and a running model.

The package manifest's ``runtime`` field chooses the runtime, through
:func:`edgekit.runtimes.get_runtime`. :func:`load_model` is the agent's
verified load: the model bytes are read once and hashed again before the
runtime sees them, so a folder package cannot be swapped between the check
and the load. :func:`edgekit.package.predictor.load_predictor` is the same choice
for :class:`~edgekit.model.predict.Predictor` (an .onnx file or a package); it lives
apart because the Predictor reads images (Pillow), which the model agent, importing
this module, never does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgekit.errors import VerificationError
from edgekit.model.loaded import LoadedModel
from edgekit.package.keys import PublicKeyLike
from edgekit.package.manifest import MANIFEST_NAME
from edgekit.package.verify import open_package
from edgekit.runtimes import get_runtime

PathLike = str | os.PathLike[str]


def is_package(path: Path) -> bool:
    """True for a package folder or a .tar.gz/.tgz package (by its shape, not its contents)."""
    return path.is_dir() or (path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz")))


def load_model(
    path: PathLike,
    *,
    name: str,
    public_key: PublicKeyLike,
    source: str = "",
    threads: int | None = None,
) -> LoadedModel:
    """Verify ``path`` against ``public_key`` and start its model on the manifest's runtime.

    VerificationError/PackageError if the package fails its checks, ModelError
    if no installed runtime can run it. A temporary unpacked copy is removed
    before returning: the session holds the model in memory.
    """
    package = Path(path)
    with open_package(package, public_key=public_key) as opened:
        manifest = opened.manifest
        runtime = get_runtime(manifest.runtime, where=str(package / MANIFEST_NAME))
        data = opened.model_path.read_bytes()
        expected = manifest.files[manifest.model_file].sha256
        if hashlib.sha256(data).hexdigest() != expected:
            raise VerificationError(
                f"{opened.model_path}: changed after verification; refusing to load it"
            )
        session = runtime.open(data, threads=threads, where=f"{package}: model {name!r}")
    return LoadedModel(
        name=name,
        version=str(manifest.version),
        package=package,
        source=source,
        runtime=manifest.runtime,
        session=session,
        manifest=manifest,
    )
