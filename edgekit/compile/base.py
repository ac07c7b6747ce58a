"""The compiler interface and the registry of compile targets.

A compiler turns a source ONNX model into files for one target runtime. Like
papermill's engines, compilers are looked up by name, so a new target (for
example ``sagemaker-neo``, which runs a SageMaker Neo compilation job) is a
new :class:`Compiler` subclass decorated with :func:`register_compiler` (in a
module listed in ``BUILTIN_MODULES``, or in another package that declares it
under the ``edgekit.compilers`` entry-point group);
:func:`edgekit.compile.compile_model`, the CLI and the notebooks do not change.

What the pipeline does around ``Compiler.compile`` (so a compiler does not):
stamp ONNX outputs with the source's edgekit metadata and the
``edgekit.compile`` record, run the parity check, write
``compile_report.json``.
"""

from __future__ import annotations

import importlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from edgekit.errors import CompileError

# Modules that register the targets edgekit ships; imported on first lookup so
# ``import edgekit.compile`` stays cheap (no onnxruntime import).
BUILTIN_MODULES: tuple[str, ...] = (
    "edgekit.compile.onnxruntime_fp32",
    "edgekit.compile.onnxruntime_int8",
    "edgekit.compile.sagemaker_neo",
    "edgekit.compile.openvino_fp32",
    "edgekit.compile.openvino_int8",
    "edgekit.compile.auto",
)

# Other packages can add targets without changes here: an entry point in this group naming a
# Compiler subclass or a module that registers one.
ENTRY_POINT_GROUP = "edgekit.compilers"

_REGISTRY: dict[str, type[Compiler]] = {}
_builtins_loaded = False


@dataclass(frozen=True)
class CompileOptions:
    """Settings a compiler may use; each compiler ignores what does not apply to it.

    ``calibration`` is a folder of images or a Ground Truth data set; None means
    ``calibration_count`` synthetic images rendered with ``calibration_seed`` (a
    seed different from the golden validation set, so the parity check does not
    grade the model on the images it was calibrated on).
    """

    calibration: Path | None = None
    calibration_count: int = 64
    calibration_seed: int = 20_241_123
    calibrate_method: str = "minmax"
    per_channel: bool = True
    reduce_range: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledModel:
    """What a compiler produced.

    ``details`` is merged into the ``edgekit.compile`` record (settings,
    calibration description). ``runs_locally`` is False for outputs this
    machine cannot execute (e.g. a Neo artifact for another CPU), in which case
    the parity check is recorded as skipped instead of run.
    """

    target: str
    runtime: str
    model_path: Path
    files: tuple[Path, ...]
    details: dict[str, Any] = field(default_factory=dict)
    runs_locally: bool = True


class Compiler(ABC):
    """One compile target. Subclasses set ``target`` and implement :meth:`compile`."""

    target: ClassVar[str]
    runtime: ClassVar[str] = "onnxruntime"
    """What the device needs to run the output; becomes the package manifest's runtime."""
    description: ClassVar[str] = ""
    cacheable: ClassVar[bool] = False
    """True when the output depends only on the source file, the options and the library
    versions (so :mod:`edgekit.compile.cache` may reuse it); False for remote services."""
    uses_parity: ClassVar[bool] = False
    """True for a compiler that checks parity itself (``auto`` runs it on every candidate):
    the pipeline then passes its golden set and AP50 limit as ``options.extra["parity"]``."""

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Versions of libraries the output depends on besides onnx and onnxruntime (which
        every cache key holds), e.g. ``{"openvino_version": ...}``: part of the cache key."""
        return {}

    @abstractmethod
    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        """Compile ``source`` into ``out_dir`` (which exists); raise CompileError on failure."""


def normalize_target(target: str) -> str:
    """``onnxruntime_int8`` and ``ONNXRuntime-INT8`` both name ``onnxruntime-int8``."""
    return target.strip().lower().replace("_", "-")


def register_compiler(cls: type[Compiler]) -> type[Compiler]:
    """Class decorator adding a compiler to the registry under ``cls.target``."""
    target = getattr(cls, "target", None)
    if not isinstance(target, str) or not target:
        raise CompileError(f"{cls.__qualname__}: a compiler needs a non-empty 'target' string")
    name = normalize_target(target)
    existing = _REGISTRY.get(name)
    # Re-registering the same class (e.g. a re-imported module) is fine; another class is not.
    same = existing is not None and (existing.__module__, existing.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if existing is not None and not same:
        raise CompileError(
            f"compile target {name!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    """Import the shipped compilers and those other packages declare as entry points."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plug-in must not hide the built-in targets
            warnings.warn(
                f"compile target plug-in {entry.name!r} ({entry.value}) failed to load: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        if isinstance(loaded, type) and issubclass(loaded, Compiler):
            register_compiler(loaded)


def known_targets() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_compiler(target: str) -> Compiler:
    """A compiler instance for ``target``; CompileError listing the known targets otherwise."""
    _load_builtins()
    cls = _REGISTRY.get(normalize_target(target))
    if cls is None:
        raise CompileError(
            f"unknown compile target {target!r}; known targets: {', '.join(known_targets())}"
        )
    return cls()
