"""Export a trained detector to a self-describing ONNX file."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import onnx
import torch

from edgekit.errors import ModelError
from edgekit.files import write_bytes_atomic
from edgekit.model.detector import ExportWrapper, ScratchDetector
from edgekit.model.metadata import ModelInfo, write_model_info

OPSET = 17


def export_onnx(model: ScratchDetector, path: str | Path, info: ModelInfo) -> Path:
    """Write ``model`` (batch norms folded, sigmoid heatmap) with ``info`` as metadata.

    The batch dimension is fixed to 1, as on the device; the graph is checked
    with ``onnx.checker`` before it is written.
    """
    path = Path(path)
    pre = info.preprocessing
    net = copy.deepcopy(model).eval().fuse()
    wrapper = ExportWrapper(net).eval()
    dummy = torch.zeros(1, 3, pre.height, pre.width)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which
        # needs onnxscript; this graph uses only classic ops, so the old path is enough.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            wrapper,
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[pre.input_name],
            output_names=list(ExportWrapper.output_names),
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    _inline_shared_initializers(proto)
    proto.producer_name = "edgekit"
    write_model_info(proto, info)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: exported graph failed onnx.checker: {exc}") from exc
    return write_bytes_atomic(path, proto.SerializeToString())


def _inline_shared_initializers(proto: onnx.ModelProto) -> None:
    """Replace ``Identity(initializer)`` nodes with a copy of the initializer.

    The exporter de-duplicates equal weights (e.g. the zero biases of an
    untrained model) through Identity nodes; plain initializers keep the graph
    to the op set quantization tools expect.
    """
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(inits[node.input[0]])
            copy_.name = node.output[0]
            graph.initializer.append(copy_)
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
