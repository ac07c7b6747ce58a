"""The openvino runtime: the shipped model on OpenVINO matches ONNX Runtime at strict fp32.

Tests that run OpenVINO skip cleanly when the ``openvino`` package is absent;
the missing-package errors are simulated and always run.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.compile.metadata import COMPILE_KEY, set_compile_info
from edgekit.errors import ModelError
from edgekit.model import default_model_path
from edgekit.runtimes import get_runtime
from edgekit.runtimes.openvino_runtime import (
    COMPILE_RECORD_KEY,
    INSTALL_HINT,
    OpenVinoRuntime,
    OpenVinoSession,
)

HINT = 'pip install "edgekit-inspection[openvino]"'


@pytest.fixture(scope="module")
def ov() -> object:
    return pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return default_model_path().read_bytes()


@pytest.fixture(scope="module")
def session(ov: object, model_bytes: bytes) -> OpenVinoSession:
    return get_runtime("openvino").open(model_bytes, threads=1, where="shipped")


@pytest.fixture(scope="module")
def feed(model_bytes: bytes) -> dict[str, np.ndarray]:
    (image,) = onnx.load_from_string(model_bytes).graph.input
    shape = [d.dim_value or 1 for d in image.type.tensor_type.shape.dim]  # the model's input
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return {image.name: x}


def _with_record(tmp_path: Path, record: dict[str, object]) -> Path:
    proto = onnx.load(str(default_model_path()))
    set_compile_info(proto, record)
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    return path


def test_the_runtime_repeats_the_compile_record_key_of_the_layer_above() -> None:
    assert COMPILE_RECORD_KEY == COMPILE_KEY
    assert INSTALL_HINT == HINT


def test_the_shipped_model_matches_onnx_runtime_at_fp32(
    session: OpenVinoSession, model_bytes: bytes, feed: dict[str, np.ndarray]
) -> None:
    reference = get_runtime("onnxruntime").open(model_bytes, threads=1)
    assert [i.name for i in session.inputs] == [i.name for i in reference.inputs]
    assert [(o.name, o.dtype, o.shape) for o in session.outputs] == [
        (o.name, o.dtype, o.shape) for o in reference.outputs
    ]
    assert session.precision == "f32"
    assert str(session.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    got, want = session.run(feed), reference.run(feed)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    (size,) = session.run(feed, ["size"])  # a subset, by name
    np.testing.assert_array_equal(size, got[1])
    with pytest.raises(ModelError, match="not outputs of this model"):
        session.run(feed, ["nope"])
    with pytest.raises(ModelError, match="OpenVINO could not run the model"):
        session.run({"image": np.zeros((1, 3, 8, 8), np.float32)})


def test_threads_are_honoured_and_one_stream_is_used(
    session: OpenVinoSession, ov: object, model_bytes: bytes
) -> None:
    assert session.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert session.compiled.get_property("NUM_STREAMS") == 1
    two = OpenVinoRuntime().open(model_bytes, threads=2)
    assert two.compiled.get_property("INFERENCE_NUM_THREADS") == 2


def test_run_is_safe_from_several_threads(
    session: OpenVinoSession, feed: dict[str, np.ndarray]
) -> None:
    want = session.run(feed)
    results: list[list[np.ndarray]] = []
    workers = [threading.Thread(target=lambda: results.append(session.run(feed))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == 3
    for got in results:
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_compile_record_chooses_bf16_and_bad_values_are_refused(
    ov: object, tmp_path: Path
) -> None:
    bf16 = _with_record(tmp_path, {"runtime": "openvino-bf16", "inference_precision": "bf16"})
    assert OpenVinoRuntime().open(bf16, threads=1).precision == "bf16"
    bad = _with_record(tmp_path, {"runtime": "openvino", "inference_precision": "f8"})
    with pytest.raises(ModelError, match="'inference_precision' is 'f8'.*edgekit compile"):
        OpenVinoRuntime().open(bad, where="pkg/model.onnx")


def test_a_file_openvino_cannot_read_names_it(ov: object, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="junk.onnx: OpenVINO cannot read it"):
        OpenVinoRuntime().open(junk)


def test_missing_openvino_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(ModelError) as caught:
        get_runtime("openvino-int8", where="pkg/manifest.json")
    message = str(caught.value)
    assert "pkg/manifest.json: field 'runtime' is 'openvino-int8'" in message
    assert HINT in message
    with pytest.raises(ModelError, match=r"pkg: the openvino runtime needs OpenVINO.*\[openvino\]"):
        OpenVinoRuntime().open(b"", where="pkg")
