"""The ``openvino`` runtime: ONNX models on OpenVINO's CPU plugin.

Serves the manifest runtimes ``openvino`` and ``openvino-<variant>``
(``openvino-int8``, ``openvino-bf16``): OpenVINO reads the ONNX file directly
(``Core.read_model``), no IR conversion, and compiles it for ``CPU``. openvino
is imported when a session is opened, never at import.

Settings, and why:

- **Precision is explicit.** On CPUs with AVX-512 BF16 or AMX, OpenVINO's
  default ``INFERENCE_PRECISION_HINT`` is ``bf16``: faster, but not the fp32
  the ONNX graph describes. A session runs at ``f32`` unless the model's own
  compile record (the ``edgekit.compile`` metadata that ``edgekit compile``
  writes) says ``"inference_precision": "bf16"``, which only the
  ``openvino-bf16`` target writes, after its parity check. A QDQ int8 model
  runs its quantized operations in int8 either way; the hint covers the rest.
- **Threads mirror the ONNX Runtime session**: ``threads=N`` sets
  ``INFERENCE_NUM_THREADS`` (ONNX Runtime: ``intra_op_num_threads``);
  ``threads=None`` leaves the runtime's default (one thread per physical
  core). Always one stream (ONNX Runtime: one inter-op thread) with the
  ``LATENCY`` performance hint: the agent and ``Predictor`` run batch 1.
- ``run`` is thread-safe: each calling thread gets its own infer request of
  the one compiled model.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelError
from edgekit.runtimes.base import TensorInfo

INSTALL_HINT = 'pip install "edgekit-inspection[openvino]"'
DEVICE = "CPU"
COMPILE_RECORD_KEY = "edgekit.compile"
"""The ONNX metadata key of the compile record (``edgekit.compile.metadata.COMPILE_KEY``;
that module sits a layer above this one, so the name is repeated and a test checks both)."""
PRECISION_FIELD = "inference_precision"
"""The compile record field naming the precision OpenVINO runs float operations at."""
PRECISIONS = ("f32", "bf16")
DEFAULT_PRECISION = "f32"


def import_openvino(what: str) -> Any:
    """The ``openvino`` module; ModelError naming ``what`` and the install command if missing."""
    try:
        import openvino
    except ImportError as exc:
        raise ModelError(
            f"{what} needs OpenVINO (the Python package 'openvino'), which is not installed "
            f"({exc}); {INSTALL_HINT}"
        ) from exc
    return openvino


def config(precision: str = DEFAULT_PRECISION, threads: int | None = None) -> dict[str, Any]:
    """The CPU plugin properties a session compiles with (see the module docstring)."""
    if precision not in PRECISIONS:
        raise ModelError(
            f"{PRECISION_FIELD}={precision!r} is not one edgekit runs OpenVINO at; use one of "
            f"{', '.join(PRECISIONS)}"
        )
    properties: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    if threads:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    return properties


def model_precision(model: Any, where: str) -> str:
    """The precision an ``openvino.Model`` read from ONNX asks for in its compile record."""
    # The ONNX frontend keeps the file's metadata_props under rt_info["framework"].
    path = ["framework", COMPILE_RECORD_KEY]
    if not model.has_rt_info(path):
        return DEFAULT_PRECISION
    try:
        record = json.loads(model.get_rt_info(path).astype(str))
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{where}: metadata '{COMPILE_RECORD_KEY}' is not valid JSON ({exc}); recompile "
            "the model with 'edgekit compile'"
        ) from None
    value = record.get(PRECISION_FIELD, DEFAULT_PRECISION) if isinstance(record, dict) else None
    if value not in PRECISIONS:
        raise ModelError(
            f"{where}: compile record field '{PRECISION_FIELD}' is {value!r}; this edgekit runs "
            f"OpenVINO at {' or '.join(PRECISIONS)}. Recompile the model with 'edgekit compile'"
        )
    return str(value)


def _shape(port: Any) -> tuple[int, ...]:
    return tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())


def _info(port: Any) -> TensorInfo:
    element = port.get_element_type()
    try:
        dtype: np.dtype | None = np.dtype(element.to_dtype())
    except (RuntimeError, TypeError):  # e.g. bf16/u4: no numpy dtype
        dtype = None
    return TensorInfo(port.get_any_name(), dtype, _shape(port), element.get_type_name())


class OpenVinoSession:
    """One ``openvino.CompiledModel``; every calling thread gets its own infer request."""

    def __init__(self, compiled: Any, precision: str) -> None:
        self.compiled = compiled
        self.precision = precision
        self.inputs = [_info(p) for p in compiled.inputs]
        self.outputs = [_info(p) for p in compiled.outputs]
        ports = zip(self.outputs, compiled.outputs, strict=True)
        self._ports = {info.name: port for info, port in ports}
        self._local = threading.local()

    def _request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        names = [o.name for o in self.outputs] if outputs is None else list(outputs)
        unknown = [n for n in names if n not in self._ports]
        if unknown:
            raise ModelError(
                f"outputs {unknown} are not outputs of this model; it has "
                f"{[o.name for o in self.outputs]}"
            )
        try:
            # share_outputs=False: copies, so the next call on this thread cannot overwrite them
            results = self._request().infer(dict(feeds), share_outputs=False)
        except RuntimeError as exc:  # OpenVINO reports bad feeds as RuntimeError
            raise ModelError(f"OpenVINO could not run the model ({exc})") from exc
        return [np.asarray(results[self._ports[n]]) for n in names]


class OpenVinoRuntime:
    name = "openvino"
    description = "ONNX models on OpenVINO (CPU plugin; fp32 unless the model asks for bf16)"
    requires = "openvino"
    install = '"edgekit-inspection[openvino]"'

    def open(
        self, model: bytes | Path, *, threads: int | None = None, where: str = ""
    ) -> OpenVinoSession:
        label = where or (str(model) if not isinstance(model, bytes) else "model")
        ov = import_openvino(f"{label}: the openvino runtime")
        core = ov.Core()
        try:
            graph = core.read_model(io.BytesIO(model) if isinstance(model, bytes) else str(model))
        except RuntimeError as exc:  # OpenVINO's frontends raise RuntimeError subclasses
            raise ModelError(f"{label}: OpenVINO cannot read it as ONNX ({exc})") from exc
        precision = model_precision(graph, label)
        try:
            compiled = core.compile_model(graph, DEVICE, config(precision, threads))
        except RuntimeError as exc:
            raise ModelError(f"{label}: OpenVINO cannot compile it for {DEVICE} ({exc})") from exc
        return OpenVinoSession(compiled, precision)
