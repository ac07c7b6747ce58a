"""Compile an edgekit ONNX model for a target runtime, with a parity gate.

Targets are registered :class:`Compiler` classes (``onnxruntime-fp32``,
``onnxruntime-int8``, ``openvino-fp32``, ``openvino-bf16``, ``openvino-int8``,
``sagemaker-neo``; ``auto`` measures the local ones on this machine and keeps
the fastest that passes parity; more by registering another class).
:func:`compile_model` runs one, stamps the outputs with the source's
metadata, compares source and compiled model on a golden set and writes
``compile_report.json``. Results of local targets are kept in a per-user
compile cache (:mod:`edgekit.compile.cache`) and reused for identical inputs.
Importing this package does not import onnxruntime.

Owns: compile targets and their registry (adding a target is one module
registered in :data:`edgekit.compile.base.BUILTIN_MODULES`), the compile
record in a model's metadata, the parity gate, the compile cache, the
compile report, and reading ultralytics YOLO exports as sources
(:mod:`edgekit.compile.yolo`: detection, edgekit metadata, the head int8
leaves in float).

Must not import: edgekit.package, edgekit.agent, edgekit.edge, the
AWS/workflow modules (clients, settings, studio, components, ...) or the CLI.
The sagemaker-neo target takes its AWS account from its caller
(:class:`~edgekit.compile.sagemaker_neo.NeoAccount`; :mod:`edgekit.neo` wires one).
"""

from __future__ import annotations

from edgekit.compile.base import (
    CompiledModel,
    CompileOptions,
    Compiler,
    get_compiler,
    known_targets,
    register_compiler,
)
from edgekit.compile.cache import CompileCache, CompileCacheWarning
from edgekit.compile.metadata import read_compile_info
from edgekit.compile.parity import ParityResult, check_parity
from edgekit.compile.pipeline import ParityWarning, compile_model
from edgekit.compile.report import CompileReport

__all__ = [
    "CompileCache",
    "CompileCacheWarning",
    "CompileOptions",
    "CompileReport",
    "CompiledModel",
    "Compiler",
    "ParityResult",
    "ParityWarning",
    "check_parity",
    "compile_model",
    "get_compiler",
    "known_targets",
    "read_compile_info",
    "register_compiler",
]
