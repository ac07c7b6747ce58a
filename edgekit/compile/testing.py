"""A tiny random-weight edgekit detector, built with ``onnx.helper`` (no torch).

Tests of compile and package use it so they are fast and do not depend on the
trained model: it has the same interface (one NCHW float input; ``heatmap``,
``size`` and ``offset`` outputs at stride 4 decoded as ``centernet``; edgekit
metadata), a few Conv+Relu layers and seeded random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.model.metadata import ModelInfo, Preprocessing, write_model_info

INPUT_NAME = "image"


def build_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    height: int = 64,
    width: int = 96,
    channels: int = 8,
    heatmap_bias: float = 0.0,
    score_threshold: float = 0.3,
) -> Path:
    """Write a small random detector with edgekit metadata to ``path``.

    ``heatmap_bias`` shifts the heatmap logits: a large negative value gives a
    model that detects nothing (a "broken" model for parity tests).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(name: str, x: str, cin: int, cout: int, k: int, stride: int, bias: float = 0.0) -> str:
        scale = np.sqrt(2.0 / (cin * k * k))
        w = (rng.standard_normal((cout, cin, k, k)) * scale).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1 + bias).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.w"))
        inits.append(numpy_helper.from_array(b, f"{name}.b"))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [f"{name}.out"],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
                name=name,
            )
        )
        return f"{name}.out"

    def relu(x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{x}.relu"], name=f"{x}.relu"))
        return f"{x}.relu"

    x = relu(conv("stem", INPUT_NAME, 3, channels, 3, 2))
    x = relu(conv("down", x, channels, channels * 2, 3, 2))
    x = relu(conv("mid", x, channels * 2, channels * 2, 3, 1))
    heat = conv("heat", x, channels * 2, 1, 1, 1, bias=heatmap_bias)
    nodes.append(helper.make_node("Sigmoid", [heat], ["heatmap"], name="heat.sigmoid"))
    size = conv("size_head", x, channels * 2, 2, 1, 1, bias=1.5)
    nodes.append(helper.make_node("Identity", [size], ["size"], name="size.out"))
    offset = conv("offset_head", x, channels * 2, 2, 1, 1)
    nodes.append(helper.make_node("Sigmoid", [offset], ["offset"], name="offset.sigmoid"))

    h4, w4 = height // 4, width // 4
    graph = helper.make_graph(
        nodes,
        "edgekit-tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, height, width])],
        [
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 1, h4, w4]),
            helper.make_tensor_value_info("size", TensorProto.FLOAT, [1, 2, h4, w4]),
            helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 2, h4, w4]),
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tests"
    )
    model.ir_version = 8
    info = ModelInfo(
        preprocessing=Preprocessing(input_name=INPUT_NAME, height=height, width=width),
        labels={0: "scratch"},
        score_threshold=score_threshold,
        postprocess={
            "type": "centernet",
            "heatmap": "heatmap",
            "heatmap_activation": "none",
            "size": "size",
            "offset": "offset",
            "stride": 4,
            "peak_kernel": 3,
            "max_detections": 20,
            "nms_iou": 0.6,
        },
        extra={"tiny_model_seed": seed},
    )
    write_model_info(model, info)
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
