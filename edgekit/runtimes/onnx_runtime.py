"""The ``onnxruntime`` runtime: ONNX models on ONNX Runtime's CPU execution provider.

Serves the manifest runtimes ``onnxruntime`` and ``onnxruntime-<variant>``
(``onnxruntime-int8``): a quantized model is still an ONNX model. onnxruntime
is imported when a session is opened, never at import.

Sessions are set up for a device that runs other things and serves images one
at a time, which is how the model agent uses them:

- ONNX Runtime's worker threads do not spin-wait for the next run
  (``session.intra_op.allow_spinning`` / ``inter_op`` = 0). A spinning pool keeps
  its threads busy for a while after every run: at 10 images/s on 2 cores it
  burned 52 ms of CPU per image instead of 13 ms and made the run itself slower
  (p50 49 ms against 28 ms on a loaded machine), because the spinners take the
  cores the next request's threads need.
- No memory pattern (``enable_mem_pattern``): the pattern keeps one block for
  all intermediate tensors besides the arena; without it a session of the
  shipped model holds some 5 MB less, at the same latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelError
from edgekit.runtimes.base import TensorInfo

# ONNX Runtime's element type names -> numpy dtypes.
ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
}


SESSION_CONFIG: dict[str, str] = {
    "session.intra_op.allow_spinning": "0",
    "session.inter_op.allow_spinning": "0",
}
"""Session configuration entries every session gets (see the module docstring)."""


def ort_shape(shape: Sequence[Any]) -> tuple[int, ...]:
    """ONNX Runtime shapes hold ints, symbolic names or None; dynamic dims become -1."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


def _info(value: Any) -> TensorInfo:
    return TensorInfo(value.name, ORT_DTYPES.get(value.type), ort_shape(value.shape), value.type)


class OnnxSession:
    """One ``onnxruntime.InferenceSession`` (its ``run`` is thread-safe)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [_info(v) for v in session.get_inputs()]
        self.outputs = [_info(v) for v in session.get_outputs()]

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        return list(self.session.run(None if outputs is None else list(outputs), dict(feeds)))


class OnnxRuntime:
    name = "onnxruntime"
    description = "ONNX models on ONNX Runtime (CPU)"
    requires = "onnxruntime"
    install = "onnxruntime"

    def open(
        self, model: bytes | Path, *, threads: int | None = None, where: str = ""
    ) -> OnnxSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_mem_pattern = False
        for entry in SESSION_CONFIG.items():
            options.add_session_config_entry(*entry)
        source = model if isinstance(model, bytes) else str(model)
        try:
            session = ort.InferenceSession(
                source, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's exception types are not importable
            label = where or (str(model) if not isinstance(model, bytes) else "model")
            raise ModelError(f"{label}: ONNX Runtime cannot load it ({exc})") from exc
        return OnnxSession(session)
