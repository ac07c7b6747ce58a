"""``onnxruntime-fp32``: ONNX Runtime's graph optimizations, done once, offline.

Level choice: ``ORT_ENABLE_EXTENDED``. Basic rewrites (constant folding,
redundant node removal, Conv+BatchNorm/Add/Mul folding) are plain ONNX and
run anywhere; extended ones add fusions such as Conv+Relu -> ``FusedConv``
(an ONNX Runtime contrib op that every CPU build has, x86 and ARM alike).
``ORT_ENABLE_ALL`` would add layout transforms (NCHWc) sized for the SIMD
width of *this* machine; ONNX Runtime itself warns that a model saved with
them may only be used on the hardware it was optimized on, so a file built on
a laptop could be wrong for an ARM device. The device's own session still
applies its layout optimizations online, on its own hardware.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, register_compiler
from edgekit.errors import CompileError

OUTPUT_NAME = "model.onnx"


def optimize_offline(source: Path, out: Path, level: str = "extended") -> None:
    """Save ONNX Runtime's optimized graph of ``source`` to ``out`` (CPU provider)."""
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }
    if level not in levels:
        raise CompileError(
            f"optimization level {level!r} is not supported for saved models; use "
            f"{' or '.join(levels)}"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's exception types are not importable
        raise CompileError(f"{source}: ONNX Runtime could not optimize the model ({exc})") from exc
    if not out.is_file():
        raise CompileError(f"{out}: ONNX Runtime did not write the optimized model")


@register_compiler
class OnnxRuntimeFp32Compiler(Compiler):
    target = "onnxruntime-fp32"
    runtime = "onnxruntime"
    description = "ONNX Runtime graph optimization (extended level), float32"
    cacheable = True

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        level = str(options.extra.get("optimization_level", "extended"))
        out = out_dir / OUTPUT_NAME
        optimize_offline(source, out, level)
        return CompiledModel(
            target=self.target,
            runtime=self.runtime,
            model_path=out,
            files=(out,),
            details={"precision": "fp32", "optimization_level": level},
        )
