"""Pre-processing and decoding (numpy only): boxes must land on original-image pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from edgekit.data.types import Box
from edgekit.errors import ModelError
from edgekit.model.metadata import ModelInfo, Preprocessing
from edgekit.model.postprocess import decode, nms, normalize, preprocess
from edgekit.model.targets import encode

PRE = Preprocessing(input_name="image", height=256, width=384)
SPEC = {
    "type": "centernet",
    "heatmap": "heatmap",
    "size": "size",
    "offset": "offset",
    "stride": 4,
    "peak_kernel": 3,
    "max_detections": 50,
    "nms_iou": 0.6,
}
INFO = ModelInfo(preprocessing=PRE, labels={0: "scratch"}, score_threshold=0.3, postprocess=SPEC)
H, W = 64, 96


def blank_outputs() -> dict[str, np.ndarray]:
    return {
        "heatmap": np.zeros((1, 1, H, W), np.float32),
        "size": np.zeros((1, 2, H, W), np.float32),
        "offset": np.zeros((1, 2, H, W), np.float32),
    }


def put(
    out: dict[str, np.ndarray],
    y: int,
    x: int,
    score: float,
    ox: float,
    oy: float,
    w_px: float,
    h_px: float,
) -> None:
    out["heatmap"][0, 0, y, x] = score
    out["offset"][0, :, y, x] = (ox, oy)
    out["size"][0, :, y, x] = (math.log(w_px / 4), math.log(h_px / 4))


def test_preprocess_resizes_and_normalizes() -> None:
    image = np.full((300, 450, 3), 128, np.uint8)
    image[:, :, 2] = 255
    x = preprocess(image, PRE)
    assert x.shape == (1, 3, 256, 384) and x.dtype == np.float32
    assert x[0, 0].mean() == pytest.approx((128 / 255 - 0.5) / 0.25, abs=1e-5)
    assert x[0, 2].mean() == pytest.approx((1.0 - 0.5) / 0.25, abs=1e-5)


def test_normalize_lookup_equals_the_direct_formula() -> None:
    """The per-level lookup table must give bit-identical inputs to the direct float math."""
    pre = Preprocessing(
        input_name="x", height=16, width=24, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4)
    )
    image = np.random.default_rng(3).integers(0, 256, (16, 24, 3)).astype(np.uint8)
    x = image.astype(np.float32)
    x *= np.float32(pre.scale)
    x -= np.asarray(pre.mean, dtype=np.float32)
    x /= np.asarray(pre.std, dtype=np.float32)
    expected = x.transpose(2, 0, 1)[None]
    assert np.array_equal(normalize(image, pre), expected)


def test_preprocess_accepts_gray_pil_and_rgba() -> None:
    gray = np.full((30, 45), 51, np.uint8)
    a = preprocess(gray, PRE)
    b = preprocess(Image.fromarray(gray), PRE)
    c = preprocess(np.dstack([gray, gray, gray, np.zeros_like(gray)]), PRE)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c)
    with pytest.raises(ModelError, match="shape"):
        preprocess(np.zeros((4, 4, 2), np.uint8), PRE)


def test_preprocess_bgr_nhwc() -> None:
    pre = Preprocessing(
        input_name="x",
        height=2,
        width=3,
        channel_order="BGR",
        layout="NHWC",
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # red
    x = preprocess(image, pre)
    assert x.shape == (1, 2, 3, 3)
    assert x[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_decode_maps_a_peak_back_to_original_pixels() -> None:
    out = blank_outputs()
    put(out, y=10, x=20, score=0.9, ox=0.5, oy=0.25, w_px=40, h_px=20)
    (d,) = decode(out, INFO, original_size=(900, 600))
    # Centre in input pixels (82, 41), box 40x20 -> (62, 31)-(102, 51), times 900/384 = 2.34375.
    s = 900 / 384
    assert d.box.left == pytest.approx(62 * s)
    assert d.box.top == pytest.approx(31 * s)
    assert d.box.width == pytest.approx(40 * s)
    assert d.box.height == pytest.approx(20 * s)
    assert d.score == pytest.approx(0.9) and d.label == "scratch" and d.box.class_id == 0


def test_decode_anisotropic_scaling() -> None:
    out = blank_outputs()
    put(out, y=32, x=48, score=0.8, ox=0.0, oy=0.0, w_px=64, h_px=64)
    (d,) = decode(out, INFO, original_size=(384, 512))  # x scale 1, y scale 2
    assert d.box.as_list() == pytest.approx([160, 96 * 2, 64, 64 * 2])


def test_decode_clips_to_the_image() -> None:
    out = blank_outputs()
    put(out, y=1, x=1, score=0.8, ox=0.0, oy=0.0, w_px=40, h_px=40)
    (d,) = decode(out, INFO, original_size=(384, 256))
    assert d.box.left == 0.0 and d.box.top == 0.0
    assert d.box.width == pytest.approx(24) and d.box.height == pytest.approx(24)


def test_decode_threshold_order_and_override() -> None:
    out = blank_outputs()
    put(out, 10, 10, 0.5, 0, 0, 20, 20)
    put(out, 40, 60, 0.95, 0, 0, 20, 20)
    put(out, 50, 20, 0.1, 0, 0, 20, 20)
    assert [round(d.score, 2) for d in decode(out, INFO, (384, 256))] == [0.95, 0.5]
    assert len(decode(out, INFO, (384, 256), score_threshold=0.05)) == 3
    assert decode(out, INFO, (384, 256), score_threshold=0.99) == []


def test_decode_keeps_only_local_maxima_and_suppresses_overlaps() -> None:
    out = blank_outputs()
    put(out, 20, 20, 0.9, 0, 0, 80, 40)
    put(out, 20, 21, 0.7, 0, 0, 80, 40)  # neighbour of a higher peak: not a local maximum
    put(out, 20, 23, 0.6, 0, 0, 80, 40)  # a separate peak whose box overlaps by IoU 0.85
    put(out, 50, 80, 0.5, 0, 0, 20, 20)
    dets = decode(out, INFO, (384, 256))
    assert [round(d.score, 2) for d in dets] == [0.9, 0.5]


def test_decode_rejects_missing_outputs_and_unknown_types() -> None:
    out = blank_outputs()
    del out["size"]
    with pytest.raises(ModelError, match="size"):
        decode(out, INFO, (384, 256))
    other = INFO.replace(postprocess={**SPEC, "type": "yolo"})
    with pytest.raises(ModelError, match="yolo"):
        decode(blank_outputs(), other, (384, 256))


def test_nms_greedy() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    keep = nms(boxes, np.array([0.5, 0.9, 0.4]), 0.5)
    assert keep.tolist() == [1, 2]


@pytest.mark.parametrize("original", [(384, 256), (450, 300)])
def test_targets_decode_back_to_the_boxes(original: tuple[int, int]) -> None:
    """encode (training targets) and decode (inference) are exact inverses."""
    boxes = [Box(30, 40, 60, 120), Box(200, 100, 35, 30), Box(300, 20, 8, 90)]
    sx, sy = 384 / original[0], 256 / original[1]
    xyxy = np.array(
        [
            [b.left * sx, b.top * sy, (b.left + b.width) * sx, (b.top + b.height) * sy]
            for b in boxes
        ],
        np.float32,
    )
    t = encode(xyxy, np.zeros(3, np.int64), 1, (H, W), 4)
    assert t.heatmap.max() == pytest.approx(1.0)
    outputs = {"heatmap": t.heatmap[None], "size": t.size[None], "offset": t.offset[None]}
    dets = decode(outputs, INFO, original, score_threshold=0.999)
    found = sorted((d.box.as_list() for d in dets), key=lambda b: b[0])
    for got, want in zip(found, boxes, strict=True):
        assert got == pytest.approx(want.as_list(), abs=1e-3)
