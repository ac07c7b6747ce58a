"""ONNX metadata: a round trip, and clear errors for files edgekit did not write."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.errors import ModelError
from edgekit.model.metadata import (
    ModelInfo,
    Preprocessing,
    read_model_info,
    write_model_info,
)


def tiny_model() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["image"], ["heatmap"])
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 6])],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 3, 4, 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="author", value="someone")
    return model


INFO = ModelInfo(
    preprocessing=Preprocessing(input_name="image", height=4, width=6, mean=(0.1, 0.2, 0.3)),
    labels={0: "scratch", 3: "dent"},
    score_threshold=0.42,
    postprocess={"type": "centernet", "heatmap": "heatmap", "stride": 4},
    source_sha256="ab" * 32,
    extra={"training": {"seed": 0}},
)


def test_round_trip_in_memory_and_on_disk(tmp_path: Path) -> None:
    model = write_model_info(tiny_model(), INFO)
    assert read_model_info(model) == INFO
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    info = read_model_info(path)
    assert info == INFO
    assert info.labels[3] == "dent" and isinstance(next(iter(info.labels)), int)
    assert info.preprocessing.mean == (0.1, 0.2, 0.3)
    keys = {p.key for p in model.metadata_props}
    assert "author" in keys  # foreign metadata is kept
    assert {k for k in keys if k.startswith("edgekit.")} >= {
        "edgekit.preprocessing",
        "edgekit.labels",
        "edgekit.score_threshold",
        "edgekit.postprocess",
    }


def test_rewriting_replaces_instead_of_duplicating() -> None:
    model = write_model_info(tiny_model(), INFO)
    write_model_info(model, INFO.replace(score_threshold=0.5, source_sha256=None))
    keys = [p.key for p in model.metadata_props]
    assert len(keys) == len(set(keys))
    info = read_model_info(model)
    assert info.score_threshold == 0.5 and info.source_sha256 is None


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    model = write_model_info(tiny_model(), INFO)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "edgekit.postprocess"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "bare.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match=r"bare\.onnx.*'edgekit\.postprocess'"):
        read_model_info(path)


def test_bare_onnx_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    onnx.save(tiny_model(), path)
    with pytest.raises(ModelError, match="plain.onnx.*edgekit.format_version"):
        read_model_info(path)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        read_model_info(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(ModelError, match="junk.onnx"):
        read_model_info(junk)


def test_invalid_json_value() -> None:
    model = write_model_info(tiny_model(), INFO)
    for prop in model.metadata_props:
        if prop.key == "edgekit.labels":
            prop.value = "{not json"
    with pytest.raises(ModelError, match="edgekit.labels.*JSON"):
        read_model_info(model)


def test_preprocessing_validates_fields() -> None:
    with pytest.raises(ModelError, match="layout"):
        Preprocessing(input_name="x", height=2, width=2, layout="CHW")
    with pytest.raises(ModelError, match="unknown"):
        Preprocessing.from_json({"input_name": "x", "height": 2, "width": 2, "colour": "red"})
