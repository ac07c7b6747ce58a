"""What a model runtime is to edgekit: a name, the package it needs, and sessions.

A :class:`ModelRuntime` opens a model file (bytes or a path) into a
:class:`RuntimeSession`: the graph's inputs and outputs, described
runtime-neutrally as :class:`TensorInfo` (numpy dtypes, ``-1`` for a dynamic
dimension), and ``run``. The agent, ``Predictor`` and the compile parity check
see only these types, never a runtime's own classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: its name, element type (None if numpy has none) and shape."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...]
    """Dimensions; -1 where the model leaves a dimension dynamic."""
    type_name: str = ""
    """The runtime's own name for the element type, for error messages."""


@runtime_checkable
class RuntimeSession(Protocol):
    """A loaded model. ``run`` must be safe to call from several threads at once."""

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def outputs(self) -> Sequence[TensorInfo]: ...

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """The requested outputs (all, in graph order, when ``outputs`` is None)."""
        ...


class ModelRuntime(Protocol):
    """A runtime edgekit can run models with (see :mod:`edgekit.runtimes`).

    ``requires`` names the importable module the runtime needs and
    ``install`` the pip requirement that provides it; the registry checks the
    module is importable before it hands the runtime out, so a missing package
    is one clear error with an install hint.
    """

    name: str
    description: str
    requires: str
    install: str

    def open(
        self, model: bytes | Path, *, threads: int | None = None, where: str = ""
    ) -> RuntimeSession:
        """Load ``model``; ModelError naming ``where`` (or the path) if the runtime refuses it."""
        ...
