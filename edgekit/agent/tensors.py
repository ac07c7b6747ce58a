"""Tensors on the wire: the API's DataType enum and numpy dtypes.

The original API knows seven element types; a model whose inputs or outputs
use any other type cannot be described to a client, so the agent refuses to
load it rather than fail at the first Predict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgekit.agent.protos import agent_pb2
from edgekit.agent.status import invalid_argument

# DataType enum value -> numpy dtype (values from the original agent.proto).
DATA_TYPES: dict[int, np.dtype] = {
    0: np.dtype(np.uint8),
    1: np.dtype(np.int16),
    2: np.dtype(np.int32),
    3: np.dtype(np.int64),
    4: np.dtype(np.float16),
    5: np.dtype(np.float32),
    6: np.dtype(np.float64),
}
DATA_TYPE_NAMES: dict[int, str] = {
    0: "UINT8",
    1: "INT16",
    2: "INT32",
    3: "INT64",
    4: "FLOAT16",
    5: "FLOAT32",
    6: "FLOAT64",
}
_BY_DTYPE: dict[np.dtype, int] = {dtype: value for value, dtype in DATA_TYPES.items()}


def data_type_of(dtype: np.dtype | type) -> int:
    """The DataType value for a numpy dtype, or INVALID_ARGUMENT naming the supported ones."""
    try:
        return _BY_DTYPE[np.dtype(dtype)]
    except (KeyError, TypeError):
        supported = ", ".join(str(d) for d in DATA_TYPES.values())
        raise invalid_argument(
            f"element type {dtype} has no DataType in the agent API; use one of {supported}"
        ) from None


def dtype_name(data_type: int) -> str:
    return DATA_TYPE_NAMES.get(data_type, f"DataType({data_type})")


def format_shape(shape: Sequence[int]) -> str:
    """``[1, 3, 224, 224]`` with ``-1`` shown for open dimensions."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def shape_matches(model_shape: Sequence[int], given: Sequence[int]) -> bool:
    """True if ``given`` fits ``model_shape`` (where -1 is any size)."""
    if len(model_shape) != len(given):
        return False
    return all(m < 0 or m == g for m, g in zip(model_shape, given, strict=True))


def set_metadata(tensor: agent_pb2.Tensor, array: np.ndarray, name: str) -> None:
    """The Tensor's metadata: ``name``, the array's DataType and shape."""
    meta = tensor.tensor_metadata
    meta.name = name
    meta.data_type = data_type_of(array.dtype)
    del meta.shape[:]
    meta.shape.extend(int(d) for d in array.shape)


def to_proto(
    array: np.ndarray, name: str, tensor: agent_pb2.Tensor | None = None
) -> agent_pb2.Tensor:
    """Fill (or create) a Tensor with metadata and the array's bytes in C order."""
    out = tensor if tensor is not None else agent_pb2.Tensor()
    array = np.ascontiguousarray(array)
    set_metadata(out, array, name)
    out.byte_data = array.tobytes()
    return out


def from_bytes(
    data: bytes | memoryview, data_type: int, shape: Sequence[int], *, name: str
) -> np.ndarray:
    """A read-only array over ``data``; INVALID_ARGUMENT if the byte count does not fit."""
    dtype = DATA_TYPES.get(data_type)
    if dtype is None:
        raise invalid_argument(f"tensor {name!r}: unknown data_type {data_type}")
    if any(d < 0 for d in shape):
        raise invalid_argument(
            f"tensor {name!r}: shape {format_shape(shape)} has a negative dimension; "
            "send the actual shape"
        )
    # Python integers: a product of int64 dimensions may overflow int64 (numpy wraps it).
    count = math.prod(int(d) for d in shape)
    expected = count * dtype.itemsize
    if len(data) != expected:
        raise invalid_argument(
            f"tensor {name!r}: {len(data)} bytes given, but {dtype_name(data_type)} "
            f"{format_shape(shape)} needs {expected}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(tuple(shape))
