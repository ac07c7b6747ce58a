"""``openvino-int8``: the ``onnxruntime-int8`` QDQ model, run by OpenVINO.

The quantized file is exactly what the ``onnxruntime-int8`` target writes
(its compiler runs here, same settings and calibration; one quantizer in
edgekit): OpenVINO reads the QuantizeLinear/DequantizeLinear pairs of a QDQ
ONNX model and runs the quantized convolutions in int8 (VNNI/AMX where the
CPU has them). Operations left in float run at strict fp32
(``INFERENCE_PRECISION_HINT`` ``f32``), recorded in the compile record.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgekit.compile.base import CompiledModel, CompileOptions, register_compiler
from edgekit.compile.onnxruntime_int8 import OnnxRuntimeInt8Compiler
from edgekit.compile.openvino_fp32 import check_runs, openvino_module
from edgekit.runtimes.openvino_runtime import DEVICE, PRECISION_FIELD

INFERENCE_PRECISION = "f32"


@register_compiler
class OpenVinoInt8Compiler(OnnxRuntimeInt8Compiler):
    target = "openvino-int8"
    runtime = "openvino-int8"
    description = "OpenVINO (CPU) running the onnxruntime-int8 QDQ model; float parts at fp32"
    cacheable = True

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {"openvino_version": str(openvino_module(cls.target).__version__)}

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        openvino_module(self.target)  # before quantizing: the install hint if it is missing
        quantized = super().compile(source=source, out_dir=out_dir, options=options)
        version = check_runs(quantized.model_path, INFERENCE_PRECISION, self.target)
        return replace(
            quantized,
            target=self.target,
            runtime=self.runtime,
            details={
                **quantized.details,
                "quantizer": OnnxRuntimeInt8Compiler.target,
                PRECISION_FIELD: INFERENCE_PRECISION,
                "openvino_version": version,
                "openvino_device": DEVICE,
            },
        )
