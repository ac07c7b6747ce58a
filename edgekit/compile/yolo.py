"""Ultralytics YOLO detectors (YOLOv8, YOLO11) as compile sources.

A detector exported by ``yolo export format=onnx`` has one input ``images``
``[1, 3, H, W]`` (RGB, 0-1, letterboxed with grey 114), one output
``[1, 4 + classes, anchors]`` (box centre, width and height in input pixels,
then per-class scores after the sigmoid; no NMS in the graph) and ultralytics'
``metadata_props``: Python literals as text, e.g. ``names`` ``"{0: 'scratch'}"``,
``imgsz`` ``"[448, 448]"``, ``task`` ``"detect"``, ``stride``, ``author``.

This module recognises such a model (:func:`source_format`), writes the edgekit
metadata that lets ``predict``, ``evaluate``, the agent and the device run it
unchanged (:func:`yolo_model_info`, :func:`adopt_yolo`: letterbox preprocessing,
class names, ``yolo`` decoding with NMS) and names the nodes int8 quantization
must leave in float (:func:`head_nodes`).

ultralytics itself is never imported (AGPL-3.0; not an edgekit dependency).
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.compile.metadata import _load as load_onnx
from edgekit.errors import ModelError
from edgekit.files import write_bytes_atomic
from edgekit.model.metadata import (
    PREFIX,
    REQUIRED_KEYS,
    ModelInfo,
    Preprocessing,
    read_model_info,
    write_model_info,
)

if TYPE_CHECKING:  # pragma: no cover
    import onnx

FORMATS: tuple[str, ...] = ("auto", "edgekit", "yolo")
"""What ``compile_model(source_format=...)`` and ``edgekit compile --format`` accept."""

#: ultralytics' defaults for prediction: ``conf=0.25``, ``iou=0.7``, ``max_det=300``.
YOLO_SCORE_THRESHOLD = 0.25
YOLO_NMS_IOU = 0.7
YOLO_MAX_DETECTIONS = 300
YOLO_PAD_VALUE = 114

#: ultralytics metadata copied into ``ModelInfo.extra["ultralytics"]`` (as written).
ULTRALYTICS_KEYS = ("description", "author", "version", "date", "license", "task", "stride")

#: Layers with learned weights: the walk back from the output stops at them.
LEARNED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})

HEAD_REASON = (
    "the YOLO head after its last learned convolutions (box-distribution softmax, DFL, "
    "anchor/stride decoding, class sigmoid, final Concat) stays float: the final Concat "
    "puts box pixels (0 to the input size) and 0-1 scores under one int8 scale, which "
    "rounds every score to 0 or one coarse step"
)

EXPECTED = (
    "an edgekit model (edgekit.* metadata) or an ultralytics YOLO detection export (one "
    "input [1, 3, H, W], one output [1, 4 + classes, anchors], metadata task='detect' and "
    "names)"
)

_ELEM_DTYPES = {1: "float32", 10: "float16"}  # onnx.TensorProto.FLOAT, FLOAT16


@dataclass(frozen=True)
class YoloGraph:
    """The graph facts a YOLO detection export must have."""

    input_name: str
    height: int | None
    width: int | None
    dtype: str
    output_name: str
    num_classes: int


def _dims(value: Any) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def yolo_graph(proto: onnx.ModelProto) -> tuple[YoloGraph | None, str]:
    """The graph as a YOLO detection export, or None and why it is not one."""
    graph = proto.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        return None, (
            f"it has {len(inputs)} input(s) and {len(graph.output)} output(s), "
            "a YOLO detection export has one of each"
        )
    image, output = inputs[0], graph.output[0]
    in_dims, out_dims = _dims(image), _dims(output)
    if len(in_dims) != 4 or in_dims[1] != 3 or in_dims[0] not in (1, None):
        return None, f"input {image.name!r} has shape {in_dims}, expected [1, 3, H, W]"
    dtype = _ELEM_DTYPES.get(image.type.tensor_type.elem_type)
    if dtype is None:
        return None, f"input {image.name!r} is not float32 or float16"
    if len(out_dims) != 3 or out_dims[1] is None or out_dims[1] < 5:
        return None, (
            f"output {output.name!r} has shape {out_dims}, expected [1, 4 + classes, anchors]"
        )
    return YoloGraph(
        input_name=image.name,
        height=in_dims[2],
        width=in_dims[3],
        dtype=dtype,
        output_name=output.name,
        num_classes=int(out_dims[1]) - 4,
    ), ""


def ultralytics_metadata(proto: onnx.ModelProto, where: str) -> dict[str, Any]:
    """ultralytics' metadata_props, parsed (``names``, ``imgsz``, ``stride`` are literals)."""
    props = {p.key: p.value for p in proto.metadata_props if not p.key.startswith(PREFIX)}
    parsed: dict[str, Any] = dict(props)
    for key in ("names", "imgsz", "stride", "batch"):
        if key not in props:
            continue
        try:
            parsed[key] = ast.literal_eval(props[key])
        except (ValueError, SyntaxError) as exc:
            raise ModelError(
                f"{where}: metadata {key!r} = {props[key]!r} is not a Python literal as "
                f"ultralytics writes it ({exc}); fix or remove it"
            ) from None
    return parsed


def _has_edgekit_metadata(proto: onnx.ModelProto) -> bool:
    keys = {p.key for p in proto.metadata_props}
    return all(key in keys for key in REQUIRED_KEYS)


def source_format(source: Path, requested: str = "auto") -> str:
    """``"edgekit"`` or ``"yolo"``: what ``source`` is, checked against ``requested``.

    ``auto`` detects: edgekit metadata first, then a YOLO detection graph with
    ultralytics metadata (``task`` ``detect`` and ``names``). A model that is
    neither is refused with a ModelError naming the file and what was expected.
    """
    if requested not in FORMATS:
        raise ModelError(f"source format {requested!r} is not known; use {', '.join(FORMATS)}")
    if requested == "edgekit":
        read_model_info(source)  # the ModelError names the file and the missing key
        return "edgekit"
    proto, where = load_onnx(source)
    graph, why_not = yolo_graph(proto)
    if requested == "yolo":
        if graph is None:
            raise ModelError(f"{where}: not a YOLO detection export: {why_not}")
        yolo_model_info(proto, where)  # labels, input size: refused here if inconsistent
        return "yolo"
    if _has_edgekit_metadata(proto):
        read_model_info(proto)  # valid JSON and version, or a ModelError
        return "edgekit"
    meta = ultralytics_metadata(proto, where)
    if graph is not None and meta.get("task") == "detect" and "names" in meta:
        yolo_model_info(proto, where)
        return "yolo"
    if graph is not None and meta.get("task", "detect") != "detect":
        why_not = f"metadata task={meta['task']!r}; edgekit runs detection models only"
    elif graph is not None:
        why_not = (
            "its graph looks like one but its metadata lacks ultralytics' task='detect' "
            "and names; pass --format yolo (source_format='yolo') to read it as YOLO anyway"
        )
    try:
        read_model_info(proto)
    except ModelError as exc:
        raise ModelError(
            f"{where}: {str(exc).removeprefix('<in-memory ONNX model>: ')}; nor is it an "
            f"ultralytics YOLO detection export: {why_not}. Expected {EXPECTED}"
        ) from None
    return "edgekit"  # pragma: no cover - _has_edgekit_metadata said otherwise


def _labels(names: Any, count: int, where: str) -> dict[int, str]:
    if names is None:
        return {i: str(i) for i in range(count)}
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    try:
        labels = {int(k): str(v) for k, v in dict(names).items()}
    except (TypeError, ValueError):
        raise ModelError(
            f"{where}: metadata 'names' = {names!r} must map class ids (0, 1, ...) to names"
        ) from None
    if sorted(labels) != list(range(count)):
        raise ModelError(
            f"{where}: metadata 'names' has {len(labels)} class(es), but the output has "
            f"{count} score rows (4 + {count}); export the model with nms=False (an export with "
            "nms=True, or an end-to-end model, outputs [1, max_det, 6]) and its own names"
        )
    return labels


def _input_size(graph: YoloGraph, imgsz: Any, where: str) -> tuple[int, int]:
    if graph.height and graph.width:
        return graph.height, graph.width
    if isinstance(imgsz, int):
        return imgsz, imgsz
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2:
        return int(imgsz[0]), int(imgsz[1])
    raise ModelError(
        f"{where}: input {graph.input_name!r} has a dynamic size and metadata 'imgsz' "
        f"({imgsz!r}) does not give it; export with a fixed imgsz"
    )


def yolo_model_info(
    proto: onnx.ModelProto,
    where: str,
    *,
    score_threshold: float = YOLO_SCORE_THRESHOLD,
    nms_iou: float = YOLO_NMS_IOU,
) -> ModelInfo:
    """The edgekit model info of a YOLO detection export (ModelError if it is not one)."""
    graph, why_not = yolo_graph(proto)
    if graph is None:
        raise ModelError(f"{where}: not a YOLO detection export: {why_not}")
    meta = ultralytics_metadata(proto, where)
    task = meta.get("task", "detect")
    if task != "detect":
        raise ModelError(
            f"{where}: metadata task={task!r}; edgekit runs YOLO detection models "
            "(task='detect') only"
        )
    height, width = _input_size(graph, meta.get("imgsz"), where)
    return ModelInfo(
        preprocessing=Preprocessing(
            input_name=graph.input_name,
            height=height,
            width=width,
            channel_order="RGB",
            layout="NCHW",
            scale=1.0 / 255.0,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            resize="bilinear",
            dtype=graph.dtype,
            fit="letterbox",
            pad_value=YOLO_PAD_VALUE,
        ),
        labels=_labels(meta.get("names"), graph.num_classes, where),
        score_threshold=score_threshold,
        postprocess={
            "type": "yolo",
            "output": graph.output_name,
            "box_format": "cxcywh",
            "score_activation": "none",
            "nms_iou": nms_iou,
            "max_detections": YOLO_MAX_DETECTIONS,
        },
        extra={
            "source_format": "yolo",
            "ultralytics": {k: str(meta[k]) for k in ULTRALYTICS_KEYS if k in meta},
        },
    )


def adopt_yolo(source: Path, out: Path) -> ModelInfo:
    """Write ``source`` (a YOLO export) to ``out`` with edgekit metadata; its model info.

    The graph and ultralytics' own metadata are kept as they are.
    """
    import onnx

    try:
        proto = onnx.load(str(source))
    except Exception as exc:  # onnx raises DecodeError and others without a common base
        raise ModelError(f"{source}: not a readable ONNX model ({exc})") from None
    info = yolo_model_info(proto, str(source))
    write_model_info(proto, info)
    write_bytes_atomic(out, proto.SerializeToString())
    return info


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _is_dfl(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """The DFL expectation: a 1x1 Conv to one channel whose weights are 0, 1, ..., n-1.

    It computes the expected box distance from the softmax over distance bins,
    so it belongs to the decoding, not to the learned layers.
    """
    if node.op_type != "Conv" or len(node.input) < 2:
        return False
    weight = constants.get(node.input[1])
    if weight is None or weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1):
        return False
    if len(node.input) > 2 and node.input[2]:
        bias = constants.get(node.input[2])
        if bias is None or np.any(bias != 0):
            return False
    return bool(np.array_equal(weight.reshape(-1), np.arange(weight.shape[1])))


def head_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes between the graph output and the last learned layers, in graph order.

    Walks back from every graph output through every node that is not a learned
    layer (:data:`LEARNED_OPS`; the DFL expectation Conv counts as decoding) and
    stops at the learned ones, which are not included. ModelError if a node on
    the way has no name (quantization can only exclude nodes by name) or if no
    learned layer bounds the walk.
    """
    graph = proto.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = _constants(graph)
    seen: set[int] = set()
    found: list[onnx.NodeProto] = []
    bounded = False
    stack = [producers[o.name] for o in graph.output if o.name in producers]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in LEARNED_OPS and not _is_dfl(node, constants):
            bounded = True
            continue
        found.append(node)
        stack.extend(producers[i] for i in node.input if i in producers)
    if not bounded:
        raise ModelError(
            "no convolution or matrix product before the output: cannot tell the YOLO head "
            "from the network; quantize it with explicit nodes_to_exclude"
        )
    unnamed = [n.op_type for n in found if not n.name]
    if unnamed:
        raise ModelError(
            f"{len(unnamed)} head node(s) have no name ({', '.join(unnamed[:5])}); name "
            "every node (as torch.onnx.export does) so quantization can exclude them"
        )
    order = {id(node): i for i, node in enumerate(graph.node)}
    return [n.name for n in sorted(found, key=lambda n: order[id(n)])]


@contextmanager
def edgekit_source(source: Path, fmt: str) -> Iterator[Path]:
    """``source`` itself for an edgekit model; for ``yolo``, a temporary adopted copy.

    The copy keeps the file name (the compile record names the source by it).
    """
    if fmt != "yolo":
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-yolo-") as tmp:
        adopted = Path(tmp) / source.name
        adopt_yolo(source, adopted)
        yield adopted
