"""Loaded models: verify a package, create its ONNX Runtime session, run it.

A model is loaded only from a package whose signature and file hashes check
out against the agent's public key. The model bytes are read once and
hashed again before ONNX Runtime sees them, so a folder package cannot be
swapped between the check and the load. Each model gets one
``InferenceSession``, created at load; ``InferenceSession.run`` is
thread-safe, so concurrent Predicts run in parallel.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from edgekit.agent.status import (
    AgentStatusError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
)
from edgekit.agent.tensors import ORT_TYPES, dtype_name, format_shape, ort_shape, shape_matches
from edgekit.errors import PackageError, VerificationError

MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
"""Model names, as the original API defines them."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: int
    shape: list[int]

    def describe(self) -> str:
        return f"{dtype_name(self.data_type)} {format_shape(self.shape)}"


@dataclass
class LoadedModel:
    name: str
    url: str
    package_root: Path  # where the package was loaded from (a temporary copy is removed)
    version: str
    session: Any  # onnxruntime.InferenceSession
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    manifest: Any = field(repr=False, default=None)

    def run(self, feeds: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        names = [o.name for o in self.outputs]
        results = self.session.run(names, feeds)
        return list(zip(names, results, strict=True))


def package_path(url: str) -> Path:
    """A local path from a LoadModel url (a path or a file:// URL)."""
    if not url:
        raise invalid_argument("url is empty; give the path of a model package")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise invalid_argument(f"url {url!r}: file URLs must name a local path")
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise invalid_argument(
            f"url {url!r}: only local paths and file:// URLs are supported; download the "
            "package to the device first"
        )
    return Path(url)


def _specs(values: list[Any], model: str, kind: str) -> list[TensorSpec]:
    specs = []
    for value in values:
        data_type = ORT_TYPES.get(value.type)
        if data_type is None:
            raise failed_precondition(
                f"model {model!r}: {kind} {value.name!r} has type {value.type}, which the agent "
                "API cannot describe (UINT8, INT16, INT32, INT64, FLOAT16, FLOAT32, FLOAT64)"
            )
        specs.append(TensorSpec(value.name, data_type, ort_shape(value.shape)))
    return specs


class ModelRegistry:
    """The models an agent serves, by name."""

    def __init__(self, public_key: Any, *, intra_op_threads: int = 0) -> None:
        self._public_key = public_key
        self._intra_op_threads = intra_op_threads
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._loading: set[str] = set()

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise not_found(f"model {name!r} is not loaded; load it with LoadModel first")
        return model

    def list(self) -> list[LoadedModel]:
        with self._lock:
            return [self._models[n] for n in sorted(self._models)]

    def unload(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.pop(name, None)
        if model is None:
            raise not_found(f"model {name!r} is not loaded")
        return model

    def load(self, name: str, url: str) -> LoadedModel:
        """Verify and load; the name is reserved while loading so duplicates fail fast."""
        if not MODEL_NAME.match(name or ""):
            raise invalid_argument(
                f"model name {name!r} is not valid; it must match ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
            )
        path = package_path(url)
        with self._lock:
            if name in self._models or name in self._loading:
                raise already_exists(
                    f"a model named {name!r} is already loaded; unload it first or choose "
                    "another name"
                )
            self._loading.add(name)
        try:
            model = self._open(name, url, path)
            with self._lock:
                self._models[name] = model
            return model
        finally:
            with self._lock:
                self._loading.discard(name)

    def _open(self, name: str, url: str, path: Path) -> LoadedModel:
        from edgekit.package import open_package

        if not path.exists():
            raise not_found(f"no model package at {path}")
        try:
            opened = open_package(path, public_key=self._public_key)
        except VerificationError as exc:
            raise failed_precondition(f"package {path} failed verification: {exc}") from None
        except PackageError as exc:
            raise failed_precondition(f"package {path} cannot be opened: {exc}") from None
        try:
            manifest = opened.manifest
            runtime = str(manifest.runtime)
            if not runtime.startswith("onnxruntime"):
                raise failed_precondition(
                    f"package {path} is compiled for runtime {runtime!r}; this agent runs "
                    "ONNX Runtime models (compile with an onnxruntime target)"
                )
            data = opened.model_path.read_bytes()
            expected = manifest.files[manifest.model_file].sha256
            if hashlib.sha256(data).hexdigest() != expected:
                raise failed_precondition(
                    f"{opened.model_path}: changed after verification; refusing to load it"
                )
            session = self._session(data, name, path)
            return LoadedModel(
                name=name,
                url=url,
                package_root=path,
                version=str(manifest.version),
                session=session,
                inputs=_specs(session.get_inputs(), name, "input"),
                outputs=_specs(session.get_outputs(), name, "output"),
                manifest=manifest,
            )
        finally:
            opened.close()  # the session holds the model in memory; drop any temporary copy

    def _session(self, data: bytes, name: str, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self._intra_op_threads:
            options.intra_op_num_threads = self._intra_op_threads
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's exception types are not importable
            raise failed_precondition(
                f"package {path}: ONNX Runtime cannot load model {name!r}: {exc}"
            ) from None


def check_input(spec: TensorSpec, data_type: int, shape: list[int], *, model: str) -> None:
    """INVALID_ARGUMENT naming the tensor and both types/shapes if they do not match."""
    if data_type != spec.data_type or not shape_matches(spec.shape, shape):
        raise AgentStatusError(
            "INVALID_ARGUMENT",
            f"model {model!r} input {spec.name!r}: got {dtype_name(data_type)} "
            f"{format_shape(shape)}, the model expects {spec.describe()}",
        )
