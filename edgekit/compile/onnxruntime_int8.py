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

Nodes left in float (``nodes_to_exclude`` of ``quantize_static``): the
``nodes_to_exclude`` list in ``CompileOptions.extra`` when given (``[]``
quantizes every node); otherwise, for a model decoded as ``yolo``, the head
after its last convolutions, found by :func:`edgekit.compile.yolo.head_nodes`
(its final Concat mixes box pixels and 0-1 scores, which one int8 scale cannot
hold). The compile record lists them and says why.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, register_compiler
from edgekit.compile.images import CalibrationImages
from edgekit.compile.yolo import HEAD_REASON, head_nodes
from edgekit.errors import CompileError, ModelError
from edgekit.model.metadata import read_model_info

OUTPUT_NAME = "model.onnx"
MAX_STRIDE = 8


def _stride(count: int) -> int:
    """Largest divisor of ``count`` up to MAX_STRIDE (ONNX Runtime needs an exact split)."""
    return max(d for d in range(1, MAX_STRIDE + 1) if count % d == 0)


@dataclass(frozen=True)
class Exclusion:
    """Nodes quantization leaves in float, and why (for the compile record)."""

    names: list[str]
    reason: str

    def record(self) -> dict[str, Any]:
        return {"nodes_to_exclude": list(self.names), "nodes_excluded_because": self.reason}


def _name_nodes(path: Path) -> None:
    """Give every unnamed node a unique name: quantization excludes nodes by name."""
    import onnx

    proto = onnx.load(str(path))
    taken = {node.name for node in proto.graph.node if node.name}
    changed = False
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
            changed = True
    if changed:
        onnx.save(proto, str(path))


def _nodes_to_exclude(
    source: Path, prepared: Path, postprocess: dict[str, Any], options: CompileOptions
) -> Exclusion | None:
    """What stays float: ``options.extra["nodes_to_exclude"]``, else a YOLO model's head."""
    import onnx

    given = options.extra.get("nodes_to_exclude")
    if given is not None:
        if isinstance(given, str) or not all(isinstance(n, str) for n in given):
            raise CompileError(
                f"nodes_to_exclude={given!r}: give a list of node names ([] quantizes every node)"
            )
        known = {node.name for node in onnx.load(str(prepared)).graph.node}
        unknown = [name for name in given if name not in known]
        if unknown:
            raise CompileError(
                f"{source}: nodes_to_exclude names node(s) the graph does not have: "
                f"{', '.join(unknown[:5])}; use the node names of the model"
            )
        return Exclusion(list(given), "given in the compile options (nodes_to_exclude)")
    if postprocess.get("type") != "yolo":
        return None
    _name_nodes(prepared)
    try:
        names = head_nodes(onnx.load(str(prepared)))
    except ModelError as exc:
        raise CompileError(f"{source}: {exc}") from None
    return Exclusion(names, HEAD_REASON)


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
            excluded = _nodes_to_exclude(source, prepared, info.postprocess, options)
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
                    nodes_to_exclude=excluded.names if excluded is not None else None,
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
                **(excluded.record() if excluded is not None else {}),
            },
        )
