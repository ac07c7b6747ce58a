"""Turn images into input tensors and raw outputs into boxes, with numpy only.

This module runs on the device too (the model agent returns raw output
tensors and the inference component decodes them), so it needs nothing but
numpy and Pillow. Pillow is imported by the functions that take or resize an image
(:func:`as_rgb_array`, :func:`resize`), not with the module: the model agent imports
this package to load models and never touches an image, and Pillow would be some
2.5 MB of its resident memory for nothing. Everything it needs to know about a model
comes from :class:`~edgekit.model.metadata.ModelInfo`.

Decoding supports the ``centernet`` layout written by
:mod:`edgekit.model.detector`. ``info.postprocess`` holds:

``heatmap``
    output name of a ``(1, C, h, w)`` map of per-class centre scores in [0, 1]
    (``heatmap_activation`` ``"sigmoid"`` if the graph outputs logits instead);
``size``
    output name of ``(1, 2, h, w)``: ``log(width / stride)``, ``log(height / stride)``
    of the box centred in that cell, in input pixels;
``offset``
    output name of ``(1, 2, h, w)``: sub-cell x and y of the centre in [0, 1);
``stride``
    input pixels per output cell; ``peak_kernel`` (odd) the max-filter window
    that keeps only local maxima; ``max_detections``; ``nms_iou`` a last greedy
    box suppression between peaks (0 disables it).

and the ``yolo`` layout of detectors exported by ultralytics (YOLOv8, YOLO11):

``output``
    output name of a ``(1, 4 + C, N)`` tensor: per anchor the box centre x, y,
    width and height in input pixels, then C class scores (already sigmoid; set
    ``score_activation`` ``"sigmoid"`` for logits); ``box_format`` ``"cxcywh"``;
``nms_iou``
    per-class greedy suppression; ``max_detections`` kept after it;
    ``max_candidates`` best-scoring anchors considered before it.

:func:`decode` picks the decoder from ``postprocess.type``. Both map boxes back
through :func:`placement`, the inverse of :func:`resize` (a stretch, or a
letterbox with grey padding when ``preprocessing.fit`` is ``"letterbox"``), so
boxes are in the original image's pixels whatever the fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.data.types import Box, Detection
from edgekit.errors import ModelError
from edgekit.model.metadata import ModelInfo, Preprocessing

_RESAMPLE = {"bilinear": "BILINEAR", "nearest": "NEAREST", "bicubic": "BICUBIC"}
"""``Preprocessing.resize`` -> the name of Pillow's ``Image.Resampling`` filter."""


def as_rgb_array(image: Any) -> np.ndarray:
    """An HxWx3 uint8 RGB array from an array (gray, RGB, RGBA) or a PIL image."""
    from PIL import Image  # with the first image, not the module (see the module docstring)

    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ModelError(f"expected an HxWx3 RGB image, got an array of shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


@dataclass(frozen=True)
class Placement:
    """Where an image lands in the input tensor, and how to map input pixels back.

    The resized image is ``width`` x ``height`` input pixels with its top-left corner at
    (``left``, ``top``); an input pixel x is original pixel ``(x - left) * sx``.
    """

    width: int
    height: int
    left: int
    top: int
    sx: float
    sy: float


def placement(original_size: tuple[int, int], preprocessing: Preprocessing) -> Placement:
    """The :class:`Placement` of an image of ``original_size`` (width, height).

    ``letterbox`` follows ultralytics' LetterBox (centred, ``round(pad / 2 -/+ 0.1)``
    on either side), so a YOLO model sees the input it was validated on.
    """
    in_w, in_h = int(preprocessing.width), int(preprocessing.height)
    orig_w, orig_h = float(original_size[0]), float(original_size[1])
    if preprocessing.fit != "letterbox":
        return Placement(in_w, in_h, 0, 0, orig_w / float(in_w), orig_h / float(in_h))
    gain = min(in_w / orig_w, in_h / orig_h)
    width, height = int(round(orig_w * gain)), int(round(orig_h * gain))
    left = int(round((in_w - width) / 2 - 0.1))
    top = int(round((in_h - height) / 2 - 0.1))
    return Placement(width, height, left, top, 1.0 / gain, 1.0 / gain)


def resize(image: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Fit an RGB uint8 image to the model's input size (Pillow, as in training).

    ``preprocessing.fit`` ``"letterbox"`` keeps the aspect ratio and pads with
    ``pad_value`` grey (see :func:`placement`); ``"stretch"`` resizes to the input size.
    """
    size = (int(preprocessing.width), int(preprocessing.height))
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    where = placement((image.shape[1], image.shape[0]), preprocessing)
    inner = (where.width, where.height)
    if inner != (image.shape[1], image.shape[0]):
        from PIL import Image  # with the first image, not the module (see the module docstring)

        resample = getattr(Image.Resampling, _RESAMPLE[preprocessing.resize])
        image = np.asarray(Image.fromarray(image).resize(inner, resample))
    if inner == size:
        return image
    out = np.full((size[1], size[0], 3), preprocessing.pad_value, dtype=np.uint8)
    out[where.top : where.top + where.height, where.left : where.left + where.width] = image
    return out


def _channel_tables(preprocessing: Preprocessing) -> np.ndarray:
    """(3, 256) float32: the normalized value of every uint8 level, per input channel.

    The same float32 operations as a direct computation, done once per model
    instead of once per pixel.
    """
    key = (float(preprocessing.scale), tuple(preprocessing.mean), tuple(preprocessing.std))
    table = _TABLES.get(key)
    if table is None:
        levels = np.arange(256, dtype=np.float32)[None, :].repeat(3, axis=0)
        levels *= np.float32(preprocessing.scale)
        levels -= np.asarray(preprocessing.mean, dtype=np.float32)[:, None]
        levels /= np.asarray(preprocessing.std, dtype=np.float32)[:, None]
        table = _TABLES.setdefault(key, levels)
    return table


_TABLES: dict[tuple[Any, ...], np.ndarray] = {}


def input_shape(preprocessing: Preprocessing, height: int, width: int) -> tuple[int, ...]:
    """The input tensor's shape for an image of ``height`` x ``width`` at input size."""
    if preprocessing.layout == "NCHW":
        return (1, 3, height, width)
    return (1, height, width, 3)


def normalize(
    resized: np.ndarray, preprocessing: Preprocessing, *, out: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 at input size -> the (1, 3, H, W) (or NHWC) input tensor; written
    into ``out`` when given (of that shape and ``preprocessing.dtype``, e.g. a shared
    memory buffer the model agent reads)."""
    x = resized[:, :, ::-1] if preprocessing.channel_order == "BGR" else resized
    table = _channel_tables(preprocessing)
    dtype = np.dtype(preprocessing.dtype)
    shape = input_shape(preprocessing, *x.shape[:2])
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape or out.dtype != dtype:
        raise ModelError(
            f"normalize: out is {out.dtype} {list(out.shape)}, the input tensor is "
            f"{dtype} {list(shape)}"
        )
    if preprocessing.layout == "NCHW":
        planes = np.ascontiguousarray(x.transpose(2, 0, 1))  # uint8: cheap to copy
        for c in range(3):
            np.take(table[c], planes[c], out=out[0, c])
    else:
        for c in range(3):
            np.take(table[c], x[:, :, c], out=out[0, :, :, c])
    return out


def preprocess(
    image: Any, preprocessing: Preprocessing, *, out: np.ndarray | None = None
) -> np.ndarray:
    """An RGB image of any size -> the model input tensor, e.g. (1, 3, H, W) float32
    (written into ``out`` when given, see :func:`normalize`)."""
    return normalize(resize(as_rgb_array(image), preprocessing), preprocessing, out=out)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _local_maxima(heat: np.ndarray, kernel: int) -> np.ndarray:
    """Boolean mask of cells equal to the max of their ``kernel`` x ``kernel`` window."""
    if kernel <= 1:
        return np.ones_like(heat, dtype=bool)
    pad = kernel // 2
    padded = np.pad(heat, ((0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    pooled = np.full_like(heat, -np.inf)
    for dy in range(kernel):
        for dx in range(kernel):
            np.maximum(pooled, padded[:, dy : dy + h, dx : dx + w], out=pooled)
    return heat >= pooled


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every row of ``a`` and of ``b``, both (N, 4) as (x1, y1, x2, y2)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int | None = None
) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first (at most ``limit``).

    Each kept box is compared with the boxes still in the running only, so
    thousands of low-score candidates (a YOLO output ranked for AP) stay cheap.
    """
    order = np.argsort(-scores, kind="stable")
    if iou_threshold <= 0 or len(order) < 2:
        return order[:limit]
    # The arithmetic of box_iou_matrix, one row at a time on the boxes still in the running.
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    remaining = order
    while len(remaining) and (limit is None or len(keep) < limit):
        i, remaining = remaining[0], remaining[1:]
        keep.append(int(i))
        if not len(remaining):
            break
        iw = np.clip(np.minimum(x2[i], x2[remaining]) - np.maximum(x1[i], x1[remaining]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[remaining]) - np.maximum(y1[i], y1[remaining]), 0, None)
        inter = iw * ih
        union = area[i] + area[remaining] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        remaining = remaining[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _named_output(
    outputs: Mapping[str, np.ndarray], spec: dict[str, Any], key: str
) -> tuple[str, np.ndarray]:
    """The output that ``postprocess[key]`` names, as float32, with its name."""
    name = spec.get(key)
    if name is None:
        raise ModelError(
            f"model info postprocess lacks the {key!r} output name (type {spec.get('type')!r})"
        )
    if name not in outputs:
        raise ModelError(
            f"raw outputs lack {name!r} (postprocess.{key}); got {', '.join(sorted(outputs))}"
        )
    return name, np.asarray(outputs[name], dtype=np.float32)


def _output(outputs: Mapping[str, np.ndarray], spec: dict[str, Any], key: str) -> np.ndarray:
    name, array = _named_output(outputs, spec, key)
    if array.ndim != 4 or array.shape[0] != 1:
        raise ModelError(f"output {name!r} has shape {array.shape}; expected (1, C, h, w)")
    return array[0]


def _per_class_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    valid: np.ndarray,
    info: ModelInfo,
    nms_iou: float,
    limit: int | None = None,
) -> list[Detection]:
    """Detections (original pixels, x1 y1 x2 y2 ``boxes``) kept by per-class NMS, best first."""
    detections: list[Detection] = []
    for c in np.unique(classes[valid]):
        idx = np.nonzero(valid & (classes == c))[0]
        for k in idx[nms(boxes[idx], scores[idx], nms_iou, limit)]:
            x1k, y1k, x2k, y2k = (float(v) for v in boxes[k])
            detections.append(
                Detection(
                    box=Box(x1k, y1k, x2k - x1k, y2k - y1k, class_id=int(c)),
                    score=float(scores[k]),
                    label=info.label(int(c)),
                )
            )
    detections.sort(key=lambda d: -d.score)
    return detections[:limit]


def _original_boxes(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    info: ModelInfo,
    original_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Input-pixel corners -> (N, 4) original-pixel corners clipped to the image, and validity."""
    where = placement(original_size, info.preprocessing)
    orig_w, orig_h = float(original_size[0]), float(original_size[1])
    x1 = np.clip((x1 - where.left) * where.sx, 0.0, orig_w)
    y1 = np.clip((y1 - where.top) * where.sy, 0.0, orig_h)
    x2 = np.clip((x2 - where.left) * where.sx, 0.0, orig_w)
    y2 = np.clip((y2 - where.top) * where.sy, 0.0, orig_h)
    return np.stack([x1, y1, x2, y2], axis=1), ((x2 - x1) > 0) & ((y2 - y1) > 0)


def _decode_centernet(
    outputs: Mapping[str, np.ndarray],
    info: ModelInfo,
    original_size: tuple[int, int],
    threshold: float,
) -> list[Detection]:
    spec = info.postprocess
    heat = _output(outputs, spec, "heatmap")
    size = _output(outputs, spec, "size")
    offset = _output(outputs, spec, "offset")
    if spec.get("heatmap_activation", "none") == "sigmoid":
        heat = _sigmoid(heat)
    stride = float(spec.get("stride", 4))

    peaks = _local_maxima(heat, int(spec.get("peak_kernel", 3))) & (heat >= threshold)
    cls, ys, xs = np.nonzero(peaks)
    if len(cls) == 0:
        return []
    scores = heat[cls, ys, xs]
    top = np.argsort(-scores, kind="stable")[: int(spec.get("max_detections", 100))]
    cls, ys, xs, scores = cls[top], ys[top], xs[top], scores[top]

    cx = (xs + offset[0, ys, xs]) * stride
    cy = (ys + offset[1, ys, xs]) * stride
    bw = np.exp(np.clip(size[0, ys, xs], -10.0, 10.0)) * stride
    bh = np.exp(np.clip(size[1, ys, xs], -10.0, 10.0)) * stride
    boxes, valid = _original_boxes(
        cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, info, original_size
    )
    return _per_class_nms(boxes, scores, cls, valid, info, float(spec.get("nms_iou", 0.0)))


def _yolo_output(outputs: Mapping[str, np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    name, array = _named_output(outputs, spec, "output")
    if array.ndim != 3 or array.shape[0] != 1 or array.shape[1] < 5:
        raise ModelError(
            f"output {name!r} has shape {array.shape}; expected (1, 4 + classes, anchors)"
        )
    box_format = spec.get("box_format", "cxcywh")
    if box_format != "cxcywh":
        raise ModelError(f"postprocess.box_format={box_format!r} is not supported (use 'cxcywh')")
    return array[0]


def _decode_yolo(
    outputs: Mapping[str, np.ndarray],
    info: ModelInfo,
    original_size: tuple[int, int],
    threshold: float,
) -> list[Detection]:
    spec = info.postprocess
    pred = _yolo_output(outputs, spec)
    class_scores = pred[4:]
    if spec.get("score_activation", "none") == "sigmoid":
        class_scores = _sigmoid(class_scores)
    cls = np.argmax(class_scores, axis=0)
    scores = np.take_along_axis(class_scores, cls[None, :], axis=0)[0]
    keep = np.nonzero(scores >= threshold)[0]
    if len(keep) == 0:
        return []
    cap = int(spec.get("max_candidates", 30000))
    if len(keep) > cap:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:cap]]
    cx, cy, w, h = (pred[row, keep] for row in range(4))
    boxes, valid = _original_boxes(
        cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, info, original_size
    )
    return _per_class_nms(
        boxes,
        scores[keep],
        cls[keep],
        valid,
        info,
        float(spec.get("nms_iou", 0.7)),
        int(spec.get("max_detections", 300)),
    )


Decoder = Callable[[Mapping[str, np.ndarray], ModelInfo, tuple[int, int], float], list[Detection]]

#: ``postprocess.type`` -> the function that decodes that output layout.
DECODERS: dict[str, Decoder] = {"centernet": _decode_centernet, "yolo": _decode_yolo}


def decode(
    outputs: Mapping[str, np.ndarray],
    info: ModelInfo,
    original_size: tuple[int, int],
    score_threshold: float | None = None,
) -> list[Detection]:
    """Raw outputs -> detections in original-image pixels (left, top, width, height).

    ``original_size`` is (width, height) of the image before preprocessing;
    ``score_threshold`` defaults to ``info.score_threshold``. Detections are
    sorted by descending score and clipped to the image. The decoder is
    chosen by ``info.postprocess["type"]`` (:data:`DECODERS`).
    """
    kind = info.postprocess.get("type")
    decoder = DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        known = " or ".join(repr(k) for k in sorted(DECODERS))
        raise ModelError(f"postprocess type {kind!r} is not supported (expected {known})")
    threshold = info.score_threshold if score_threshold is None else float(score_threshold)
    return decoder(outputs, info, original_size, threshold)
