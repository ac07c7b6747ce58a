"""The models an agent serves: load verified packages by name, describe their tensors.

A model is loaded only from a package whose signature and file hashes check
out against one of the keys the agent trusts: its public key, then any
additional keys (a rollout's shadow stage adds the candidate's key for a while),
tried in that order (:func:`edgekit.package.load_model`, which
also picks the runtime from the manifest's ``runtime`` field and hashes the
model bytes again before the runtime sees them). Each model gets one runtime
session, created at load; sessions are thread-safe, so concurrent Predicts
run in parallel. With each model the registry keeps its
:class:`~edgekit.agent.identity.PackageIdentity` (archive sha256, key
fingerprint of the key that verified it), which the agent reports in
ListModels/DescribeModel.

One exception, for the SageMaker Edge Manager stand-in only (``unsigned_onnx``): a
plain ONNX model folder loads unverified, logged as such (see :class:`ModelRegistry`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from edgekit.agent.identity import PackageIdentity, identify
from edgekit.agent.model_folder import ONNX, locate
from edgekit.agent.status import (
    AgentStatusError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
)
from edgekit.agent.tensors import DATA_TYPES, dtype_name, format_shape, shape_matches
from edgekit.errors import AgentError, ModelError, PackageError, VerificationError
from edgekit.model.loaded import LoadedModel
from edgekit.package import load_model
from edgekit.package.keys import fingerprint
from edgekit.runtimes import TensorInfo, get_runtime

log = logging.getLogger(__name__)

ONNX_FILE = "onnx-file"
"""``package_sha256_source`` of a plain ONNX model: the sha256 is the .onnx file's."""

MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
"""Model names, as the original API defines them."""

_DATA_TYPE_OF = {dtype: value for value, dtype in DATA_TYPES.items()}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: int
    shape: list[int]

    def describe(self) -> str:
        return f"{dtype_name(self.data_type)} {format_shape(self.shape)}"


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


def _specs(values: list[TensorInfo], model: str, kind: str) -> list[TensorSpec]:
    specs = []
    for value in values:
        data_type = _DATA_TYPE_OF.get(value.dtype) if value.dtype is not None else None
        if data_type is None:
            raise failed_precondition(
                f"model {model!r}: {kind} {value.name!r} has type "
                f"{value.type_name or value.dtype}, which the agent API cannot describe "
                "(UINT8, INT16, INT32, INT64, FLOAT16, FLOAT32, FLOAT64)"
            )
        specs.append(TensorSpec(value.name, data_type, list(value.shape)))
    return specs


def input_specs(model: LoadedModel) -> list[TensorSpec]:
    """The model's inputs as the agent API describes them."""
    assert model.session is not None  # the agent only holds models it runs
    return _specs(list(model.session.inputs), model.name, "input")


def output_specs(model: LoadedModel) -> list[TensorSpec]:
    """The model's outputs as the agent API describes them."""
    assert model.session is not None
    return _specs(list(model.session.outputs), model.name, "output")


class ModelRegistry:
    """The models an agent serves, by name.

    ``unsigned_onnx``: also load plain ONNX models (a .onnx file or a folder holding one,
    :mod:`edgekit.agent.model_folder`) without verification, and refuse Neo artifacts
    naming the folder. Only the SageMaker Edge Manager stand-in sets it, because Edge
    Manager code loads such folders; each such load is logged as a warning. With no
    ``public_key`` (allowed only then) signed packages are refused.
    """

    def __init__(
        self,
        public_key: Any | None,
        *,
        additional_keys: Iterable[Any] = (),
        intra_op_threads: int = 0,
        unsigned_onnx: bool = False,
    ) -> None:
        trusted: dict[str, Any] = {}
        for key in (public_key, *additional_keys):
            if key is not None:
                trusted.setdefault(fingerprint(key), key)  # the same key twice is trusted once
        if not trusted and not unsigned_onnx:
            raise AgentError("the agent needs a public key: it loads only signed packages")
        self._trusted = list(trusted.items())
        self.key_fingerprint = self._trusted[0][0] if self._trusted else ""
        """Fingerprint of the agent's own public key (the first one tried); "" if none."""
        self._intra_op_threads = intra_op_threads
        self._unsigned_onnx = unsigned_onnx
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._identities: dict[str, PackageIdentity] = {}
        self._loading: set[str] = set()

    @property
    def key_fingerprints(self) -> list[str]:
        """Fingerprints of every trusted key: the agent's own first, then the additional ones."""
        return [fp for fp, _key in self._trusted]

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise not_found(f"model {name!r} is not loaded; load it with LoadModel first")
        return model

    def identity(self, name: str) -> PackageIdentity | None:
        """What the agent verified about model ``name``'s package; None if it is not loaded."""
        with self._lock:
            return self._identities.get(name)

    def list(self) -> list[LoadedModel]:
        with self._lock:
            return [self._models[n] for n in sorted(self._models)]

    def unload(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.pop(name, None)
            self._identities.pop(name, None)
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
            model, identity = self._open(name, url, path)
            with self._lock:
                self._models[name] = model
                self._identities[name] = identity
            return model
        finally:
            with self._lock:
                self._loading.discard(name)

    def _open_onnx(self, name: str, url: str, path: Path) -> tuple[LoadedModel, PackageIdentity]:
        """A plain ONNX model, unverified (the Edge Manager stand-in only)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise failed_precondition(f"model {path} cannot be read: {exc}") from None
        sha = hashlib.sha256(data).hexdigest()  # the bytes loaded are the bytes reported
        try:
            session = get_runtime("onnxruntime").open(
                data, threads=self._intra_op_threads or None, where=f"{path}: model {name!r}"
            )
        except ModelError as exc:
            raise failed_precondition(f"model {path} cannot be run by this agent: {exc}") from None
        model = LoadedModel(
            name=name, version="", package=path, source=url, runtime="onnxruntime", session=session
        )
        input_specs(model)
        output_specs(model)
        log.warning(
            "model %s: %s is a plain ONNX model, loaded WITHOUT signature verification "
            "(sha256 %s), as SageMaker Edge Manager loads a model folder; deploy a signed "
            "edgekit package and configure PublicKey to have it verified",
            name,
            path,
            sha,
        )
        return model, PackageIdentity(sha, ONNX_FILE, "")

    def _open(self, name: str, url: str, path: Path) -> tuple[LoadedModel, PackageIdentity]:
        if self._unsigned_onnx:
            source = locate(path)
            if source.kind == ONNX:
                return self._open_onnx(name, url, source.path)
            path = source.path
            if not self._trusted:
                raise failed_precondition(
                    f"{path} is an edgekit model package, which is loaded only when its "
                    "signature verifies, and this agent trusts no public key: configure "
                    "PublicKey (the PEM of the key the package was signed with), or load a "
                    "plain .onnx model instead"
                )
        if not path.exists():
            raise not_found(f"no model package at {path}")
        try:
            # Hashed before verification and load: the bytes loaded are the bytes reported.
            identity = identify(path, "")
        except OSError as exc:
            raise failed_precondition(f"package {path} cannot be read: {exc}") from None
        refusals: list[str] = []
        for key_fp, key in self._trusted:
            try:
                model = load_model(
                    path,
                    name=name,
                    public_key=key,
                    source=url,
                    threads=self._intra_op_threads or None,
                )
            except VerificationError as exc:
                refusals.append(f"key {key_fp}: {exc}")
                continue
            except PackageError as exc:
                raise failed_precondition(f"package {path} cannot be opened: {exc}") from None
            except ModelError as exc:
                raise failed_precondition(
                    f"package {path} cannot be run by this agent: {exc}"
                ) from None
            input_specs(model)  # refuse, at load, tensors the API cannot describe
            output_specs(model)
            return model, dataclasses.replace(identity, key_fingerprint=key_fp)
        trusted = ", ".join(self.key_fingerprints)
        raise failed_precondition(
            f"package {path} failed verification against every key this agent trusts "
            f"({trusted}): " + "; ".join(refusals) + ". Sign it with a trusted key, or "
            "deploy the agent with its public key (PublicKey, or AdditionalPublicKeys)"
        )


def check_input(spec: TensorSpec, data_type: int, shape: list[int], *, model: str) -> None:
    """INVALID_ARGUMENT naming the tensor and both types/shapes if they do not match."""
    if data_type != spec.data_type or not shape_matches(spec.shape, shape):
        raise AgentStatusError(
            "INVALID_ARGUMENT",
            f"model {model!r} input {spec.name!r}: got {dtype_name(data_type)} "
            f"{format_shape(shape)}, the model expects {spec.describe()}",
        )
