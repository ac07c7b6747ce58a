"""``onnxruntime-int8``: static int8 quantization in QDQ format.

Steps: ``quant_pre_process`` (shape inference and basic optimization, which
ONNX Runtime recommends before quantizing), then ``quantize_static`` with
activation ranges calibrated on preprocessed images. Settings and why:

- QDQ format: plain ONNX QuantizeLinear/DequantizeLinear pairs that ONNX
  Runtime fuses into int8 kernels on any CPU, and other runtimes can read;
- uint8 activations, int8 weights (U8S8), the pairing ONNX Runtime's CPU
  kernels are tuned for; weights per output channel, since convolution
  channels differ widely in range after batch-norm folding;
- MinMax calibration (fast; ranges are what the images produce), strided so
  memory stays bounded whatever the number of calibration images.

``reduce_range`` (7-bit weights) helps older x86 CPUs without VNNI whose
U8S8 kernels can saturate; it is off by default and an option.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, register_compiler
from edgekit.compile.images import CalibrationImages
from edgekit.errors import CompileError
from edgekit.model.metadata import read_model_info

OUTPUT_NAME = "model.onnx"
MAX_STRIDE = 8


def _stride(count: int) -> int:
    """Largest divisor of ``count`` up to MAX_STRIDE (ONNX Runtime needs an exact split)."""
    return max(d for d in range(1, MAX_STRIDE + 1) if count % d == 0)


@register_compiler
class OnnxRuntimeInt8Compiler(Compiler):
    target = "onnxruntime-int8"
    runtime = "onnxruntime-int8"
    description = "ONNX Runtime static int8 quantization (QDQ, per-channel weights)"
    cacheable = True

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        methods = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }
        method = options.calibrate_method.lower()
        if method not in methods:
            raise CompileError(
                f"calibrate_method={options.calibrate_method!r} is not known; use one of "
                f"{', '.join(methods)}"
            )
        info = read_model_info(source)
        reader = CalibrationImages(
            options.calibration,
            preprocessing=info.preprocessing,
            count=options.calibration_count,
            seed=options.calibration_seed,
        )
        extra: dict[str, object] = {}
        if method == "minmax":
            extra["CalibStridedMinMax"] = _stride(len(reader))
        out = out_dir / OUTPUT_NAME
        with tempfile.TemporaryDirectory(prefix="edgekit-int8-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            try:
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
            except Exception as exc:  # shape inference raises assorted exception types
                raise CompileError(
                    f"{source}: pre-processing for quantization failed ({exc})"
                ) from exc
            try:
                quantize_static(
                    str(prepared),
                    str(out),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=options.per_channel,
                    reduce_range=options.reduce_range,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[method],
                    extra_options=extra,
                )
            except Exception as exc:
                raise CompileError(f"{source}: int8 quantization failed ({exc})") from exc
        if not out.is_file():
            raise CompileError(f"{out}: quantization did not write the model")
        return CompiledModel(
            target=self.target,
            runtime=self.runtime,
            model_path=out,
            files=(out,),
            details={
                "precision": "int8",
                "quant_format": "QDQ",
                "activation_type": "uint8",
                "weight_type": "int8",
                "per_channel": options.per_channel,
                "reduce_range": options.reduce_range,
                "calibrate_method": method,
                "calibration": reader.description,
                "calibration_images": len(reader),
            },
        )
