"""``openvino-fp32`` and ``openvino-bf16``: the float model, run by OpenVINO.

OpenVINO reads ONNX directly and optimizes the graph when the device loads
it (for the device's own CPU), so the compiled file is the source model
itself; what the target fixes is the runtime and the precision, recorded in
the compile record and read back by :mod:`edgekit.runtimes.openvino_runtime`:

- ``openvino-fp32`` (manifest runtime ``openvino``): strict fp32
  (``INFERENCE_PRECISION_HINT`` ``f32``). OpenVINO's own default on CPUs
  with AVX-512 BF16 or AMX would be bf16, which is not the fp32 the name
  promises.
- ``openvino-bf16`` (runtime ``openvino-bf16``): float operations in
  bfloat16 (8 bits of mantissa) where the CPU has it, several times faster
  with AMX; the parity gate decides whether the accuracy holds for a model.
  A CPU without bf16 support runs it at fp32.

Compiling loads the model into OpenVINO once, so a model OpenVINO cannot run
fails here, not on the device. openvino is imported only when compiling.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, register_compiler
from edgekit.errors import CompileError, ModelError
from edgekit.runtimes.openvino_runtime import DEVICE, PRECISION_FIELD, config, import_openvino

OUTPUT_NAME = "model.onnx"


def openvino_module(target: str) -> Any:
    """``openvino``; CompileError with the install command when it is not installed."""
    try:
        return import_openvino(f"the {target} compile target")
    except ModelError as exc:
        raise CompileError(str(exc)) from exc


def check_runs(model: Path, precision: str, target: str) -> str:
    """Load ``model`` into OpenVINO at ``precision`` once; its version, or CompileError."""
    ov = openvino_module(target)
    core = ov.Core()
    try:
        core.compile_model(core.read_model(str(model)), DEVICE, config(precision, threads=1))
    except RuntimeError as exc:  # OpenVINO's frontends and plugins raise RuntimeError
        raise CompileError(
            f"{model}: OpenVINO {ov.__version__} cannot run this model on {DEVICE} ({exc}); "
            "use an onnxruntime target"
        ) from exc
    return str(ov.__version__)


class _OpenVinoFloat(Compiler):
    precision: ClassVar[str]
    inference_precision: ClassVar[str]
    cacheable = True

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {"openvino_version": str(openvino_module(cls.target).__version__)}

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        openvino_module(self.target)  # before any work: the install hint if it is missing
        out = out_dir / OUTPUT_NAME
        shutil.copyfile(source, out)
        version = check_runs(out, self.inference_precision, self.target)
        return CompiledModel(
            target=self.target,
            runtime=self.runtime,
            model_path=out,
            files=(out,),
            details={
                "precision": self.precision,
                PRECISION_FIELD: self.inference_precision,
                "openvino_version": version,
                "openvino_device": DEVICE,
            },
        )


@register_compiler
class OpenVinoFp32Compiler(_OpenVinoFloat):
    target = "openvino-fp32"
    runtime = "openvino"
    description = "OpenVINO (CPU), float32 (strict: INFERENCE_PRECISION_HINT f32)"
    precision = "fp32"
    inference_precision = "f32"


@register_compiler
class OpenVinoBf16Compiler(_OpenVinoFloat):
    target = "openvino-bf16"
    runtime = "openvino-bf16"
    description = "OpenVINO (CPU), float operations in bfloat16 where the CPU has it"
    precision = "bf16"
    inference_precision = "bf16"
