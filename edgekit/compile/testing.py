"""A tiny random-weight edgekit detector, built with ``onnx.helper`` (no torch).

Tests of compile and package use it so they are fast and do not depend on the
trained model: it has the same interface (one NCHW float input; ``heatmap``,
``size`` and ``offset`` outputs at stride 4 decoded as ``centernet``; edgekit
metadata), a few Conv+Relu layers and seeded random weights.

:func:`build_yolo_model` writes a detector in the ultralytics YOLO export format
(for the tests of :mod:`edgekit.compile.yolo`); it needs torch.
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


YOLO_INPUT_NAME = "images"
YOLO_OUTPUT_NAME = "output0"
_YOLO_CACHE: dict[tuple[int, int, int], bytes] = {}


def build_yolo_model(
    path: str | Path, *, height: int = 384, width: int = 384, reg_max: int = 16
) -> Path:
    """Write a YOLO-format detector (as ultralytics exports one) that finds scratches.

    Same contract as a YOLOv8/YOLO11 ``yolo export format=onnx`` detection model:
    input ``images`` ``[1, 3, H, W]`` (0-1 RGB, letterboxed with grey 114), output
    ``output0`` ``[1, 5, anchors]`` (cx, cy, w, h in input pixels, then the sigmoid
    score of class 0 ``scratch``), ultralytics' metadata_props (``names``, ``imgsz``,
    ``task``, ``stride``, ... as Python literals) and an ultralytics-like head: the
    box-distribution and class branches concatenated then split, softmax over
    ``reg_max`` distance bins and the DFL 1x1 convolution with weights 0..reg_max-1,
    anchor/stride decoding, class sigmoid, final Concat.

    The learned convolutions are the shipped (trained) scratch detector's; its
    centre offset and log box size become the distance bins' logits. So the model
    scores a real AP50 on the synthetic validation set without training, and no
    ultralytics is needed. Needs torch (the ``[train]`` extra). Built once per
    process and size, then copied.
    """
    key = (height, width, reg_max)
    data = _YOLO_CACHE.get(key)
    if data is None:
        data = _YOLO_CACHE.setdefault(key, _export_yolo(height, width, reg_max))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def _export_yolo(height: int, width: int, reg_max: int, sharpness: float = 2.0) -> bytes:
    import io
    import warnings

    import onnx
    import torch
    from torch import nn

    from edgekit.model import default_model_path
    from edgekit.model.torch_weights import load_detector

    detector, _ = load_detector(default_model_path())
    stride = detector.config.stride
    if height % stride or width % stride:
        raise ValueError(f"input {width}x{height} must be a multiple of the stride {stride}")

    class DFL(nn.Module):
        """ultralytics' Distribution Focal Loss integral: softmax over bins, then 0..n-1."""

        def __init__(self, bins: int) -> None:
            super().__init__()
            self.bins = bins
            self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
            self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float32).view(1, bins, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, _, a = x.shape
            return self.conv(x.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)

    class YoloLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detector = detector
            gh, gw = height // stride, width // stride
            ys, xs = torch.meshgrid(torch.arange(gh) + 0.5, torch.arange(gw) + 0.5, indexing="ij")
            self.register_buffer("anchors", torch.stack([xs.reshape(-1), ys.reshape(-1)])[None])
            self.register_buffer("strides", torch.full((1, 1, gh * gw), float(stride)))
            self.register_buffer(
                "bins", torch.arange(reg_max, dtype=torch.float32)[None, None, :, None]
            )
            self.dfl = DFL(reg_max)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            heat, size, offset = self.detector((images - 0.5) / 0.25)
            b, c, gh, gw = heat.shape
            n = gh * gw
            half = torch.exp(size.clamp(-10.0, 10.0)).view(b, 2, n) / 2  # in strides
            off = offset.view(b, 2, n) - 0.5  # box centre minus anchor point, in strides
            ltrb = torch.cat([half - off, half + off], 1).clamp(0.0, reg_max - 1.01)
            logits = (-sharpness * (self.bins - ltrb[:, :, None, :]) ** 2).view(b, 4 * reg_max, n)
            x = torch.cat([logits, heat.view(b, c, n)], 1)
            box, cls = x.split((4 * reg_max, c), 1)
            lt, rb = self.dfl(box).chunk(2, 1)
            x1y1, x2y2 = self.anchors - lt, self.anchors + rb
            dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
            return torch.cat((dbox, cls.sigmoid()), 1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            YoloLike().eval(),
            (torch.zeros(1, 3, height, width),),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=[YOLO_INPUT_NAME],
            output_names=[YOLO_OUTPUT_NAME],
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    metadata = {  # the keys and str() values ultralytics' exporter writes
        "description": "edgekit test model in the ultralytics YOLO detection format",
        "author": "edgekit tests",
        "date": "2026-01-01T00:00:00",  # fixed: the same bytes every build
        "version": "8.3.0",
        "license": "Apache-2.0",
        "docs": "edgekit.compile.testing.build_yolo_model",
        "stride": 32,
        "task": "detect",
        "batch": 1,
        "imgsz": [height, width],
        "names": {0: "scratch"},
        "args": {"batch": 1, "half": False, "nms": False},
        "channels": 3,
    }
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
