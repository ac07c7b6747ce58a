"""Letterbox preprocessing and YOLO decoding (numpy only, no model file)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ModelError
from edgekit.model.metadata import ModelInfo, Preprocessing
from edgekit.model.postprocess import Placement, decode, placement, preprocess, resize

LETTERBOX = Preprocessing(
    input_name="images",
    height=384,
    width=384,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    fit="letterbox",
    pad_value=114,
)
SCALE = 384 / 450  # a 450x300 photo fills the width; 64 grey rows above and below


def _info(**postprocess: object) -> ModelInfo:
    spec = {
        "type": "yolo",
        "output": "output0",
        "box_format": "cxcywh",
        "score_activation": "none",
        "nms_iou": 0.7,
        "max_detections": 300,
        **postprocess,
    }
    return ModelInfo(
        preprocessing=LETTERBOX,
        labels={0: "scratch", 1: "dent"},
        score_threshold=0.25,
        postprocess=spec,
    )


def _output(*anchors: tuple[float, ...], count: int = 32) -> dict[str, np.ndarray]:
    """``output0`` (1, 6, count): each given anchor is (cx, cy, w, h, score0, score1)."""
    out = np.zeros((1, 6, count), dtype=np.float32)
    for i, values in enumerate(anchors):
        out[0, :, i] = values
    return {"output0": out}


def _input_box(left: float, top: float, width: float, height: float) -> tuple[float, ...]:
    """An original-pixel box of a 450x300 image as (cx, cy, w, h) in input pixels."""
    return (
        (left + width / 2) * SCALE,
        (top + height / 2) * SCALE + 64,
        width * SCALE,
        height * SCALE,
    )


def test_letterbox_keeps_aspect_ratio_and_pads_with_grey() -> None:
    image = np.full((300, 450, 3), 200, dtype=np.uint8)
    assert placement((450, 300), LETTERBOX) == Placement(384, 256, 0, 64, 1 / SCALE, 1 / SCALE)
    fitted = resize(image, LETTERBOX)
    assert fitted.shape == (384, 384, 3)
    assert (fitted[:64] == 114).all() and (fitted[320:] == 114).all()
    assert (fitted[64:320] == 200).all()
    tensor = preprocess(image, LETTERBOX)
    assert tensor.shape == (1, 3, 384, 384) and tensor.dtype == np.float32
    assert tensor[0, :, 0, 0] == pytest.approx([114 / 255] * 3)
    assert tensor[0, :, 200, 200] == pytest.approx([200 / 255] * 3)


def test_letterbox_padding_rounds_like_ultralytics() -> None:
    # 100x51 into 64x64: gain 0.64 -> 64x33; 31 spare rows: round(15.5 - 0.1) = 15 above.
    small = Preprocessing(input_name="x", height=64, width=64, fit="letterbox")
    where = placement((100, 51), small)
    assert (where.width, where.height, where.left, where.top) == (64, 33, 0, 15)
    fitted = resize(np.full((51, 100, 3), 9, dtype=np.uint8), small)
    assert (fitted[:15] == 114).all() and (fitted[15:48] == 9).all() and (fitted[48:] == 114).all()


def test_stretch_stays_the_default_and_its_json_unchanged() -> None:
    stretch = Preprocessing(input_name="x", height=4, width=6)
    assert stretch.fit == "stretch"
    assert "fit" not in stretch.to_json() and "pad_value" not in stretch.to_json()
    data = LETTERBOX.to_json()
    assert data["fit"] == "letterbox" and data["pad_value"] == 114
    assert Preprocessing.from_json(data) == LETTERBOX
    assert placement((12, 4), stretch) == Placement(6, 4, 0, 0, 2.0, 1.0)
    with pytest.raises(ModelError, match="fit='crop'"):
        Preprocessing(input_name="x", height=4, width=4, fit="crop")
    with pytest.raises(ModelError, match="pad_value=300"):
        Preprocessing(input_name="x", height=4, width=4, fit="letterbox", pad_value=300)


def test_boxes_come_back_in_original_pixels_with_class_names() -> None:
    outputs = _output(
        (*_input_box(100, 50, 90, 60), 0.9, 0.1), (*_input_box(300, 200, 40, 30), 0.05, 0.6)
    )
    found = decode(outputs, _info(), (450, 300))
    assert [(d.label, d.box.class_id, round(d.score, 3)) for d in found] == [
        ("scratch", 0, 0.9),
        ("dent", 1, 0.6),
    ]
    box = found[0].box
    assert (box.left, box.top, box.width, box.height) == pytest.approx((100, 50, 90, 60), abs=1e-3)
    box = found[1].box
    assert (box.left, box.top, box.width, box.height) == pytest.approx((300, 200, 40, 30), abs=1e-3)


def test_boxes_reaching_into_the_padding_are_clipped_to_the_image() -> None:
    # Centre at original y = 5 with height 40: it starts 15 px above the photo, in the grey band.
    found = decode(_output((*_input_box(10, -15, 50, 40), 0.8, 0.0)), _info(), (450, 300))
    assert len(found) == 1
    assert found[0].box.top == pytest.approx(0.0) and found[0].box.height == pytest.approx(25.0)


def test_nms_is_per_class_and_threshold_and_limit_apply() -> None:
    a = _input_box(100, 50, 90, 60)
    shifted = _input_box(102, 51, 90, 60)  # IoU ~0.93 with a
    outputs = _output(
        (*a, 0.9, 0.0),
        (*shifted, 0.8, 0.0),  # suppressed by the first (same class)
        (*shifted, 0.0, 0.7),  # another class at the same place: kept
        (*_input_box(300, 100, 40, 40), 0.2, 0.0),  # below the model's 0.25
    )
    assert [round(d.score, 2) for d in decode(outputs, _info(), (450, 300))] == [0.9, 0.7]
    low = decode(outputs, _info(), (450, 300), score_threshold=0.1)
    assert [round(d.score, 2) for d in low] == [0.9, 0.7, 0.2]
    assert len(decode(outputs, _info(max_detections=1), (450, 300), 0.1)) == 1
    no_nms = decode(outputs, _info(nms_iou=0.0), (450, 300))
    assert [round(d.score, 2) for d in no_nms] == [0.9, 0.8, 0.7]


def test_logit_scores_with_sigmoid_activation() -> None:
    outputs = _output((*_input_box(100, 50, 90, 60), 2.0, -3.0))
    found = decode(outputs, _info(score_activation="sigmoid"), (450, 300))
    assert [round(d.score, 4) for d in found] == [round(1 / (1 + np.exp(-2.0)), 4)]


def test_malformed_outputs_are_named() -> None:
    with pytest.raises(ModelError, match="raw outputs lack 'output0'.*got boxes"):
        decode({"boxes": np.zeros((1, 6, 4), np.float32)}, _info(), (450, 300))
    with pytest.raises(ModelError, match=r"expected \(1, 4 \+ classes, anchors\)"):
        decode({"output0": np.zeros((1, 4, 8), np.float32)}, _info(), (450, 300))
    with pytest.raises(ModelError, match="box_format='xyxy'"):
        decode(_output(), _info(box_format="xyxy"), (450, 300))
    with pytest.raises(ModelError, match="'ssd' is not supported.*'centernet' or 'yolo'"):
        decode(_output(), _info(type="ssd"), (450, 300))
