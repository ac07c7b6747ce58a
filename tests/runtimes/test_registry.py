"""The model runtime registry: manifest ``runtime`` values -> runtimes, and its errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit import runtimes
from edgekit.errors import ModelError
from edgekit.model import default_model_path
from edgekit.runtimes import TensorInfo, get_runtime, known_runtimes, register_runtime
from edgekit.runtimes.onnx_runtime import OnnxRuntime, ort_shape


class EchoSession:
    """A session that returns its one input doubled: enough to prove the seam is used."""

    inputs = [TensorInfo("x", np.dtype(np.float32), (1, 3))]
    outputs = [TensorInfo("y", np.dtype(np.float32), (1, 3))]

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        return [feeds["x"] * 2]


class FakeRuntime:
    name = "fakert"
    description = "a test runtime"
    requires = "numpy"
    install = "numpy"

    def open(self, model: bytes | Path, *, threads: int | None = None, where: str = "") -> Any:
        return EchoSession()


class MissingRuntime(FakeRuntime):
    name = "missingrt"
    requires = "edgekit_no_such_runtime_module"
    install = "edgekit-no-such-runtime"


@pytest.fixture()
def fake() -> Iterator[FakeRuntime]:
    runtime = register_runtime(FakeRuntime())
    yield runtime
    runtimes.unregister_runtime(runtime.name)


# (manifest runtime value, runtime name it resolves to)
RESOLUTION = [
    ("onnxruntime", "onnxruntime"),
    ("onnxruntime-int8", "onnxruntime"),  # a compile target's variant of one runtime
]


@pytest.mark.parametrize(("value", "name"), RESOLUTION)
def test_manifest_values_resolve_to_registered_runtimes(value: str, name: str) -> None:
    assert get_runtime(value).name == name


def test_the_builtin_runtimes_are_onnxruntime_and_openvino() -> None:
    assert known_runtimes() == ["onnxruntime", "openvino"]
    assert isinstance(get_runtime("onnxruntime"), OnnxRuntime)


def test_an_unknown_runtime_names_the_field_and_the_known_runtimes() -> None:
    with pytest.raises(ModelError) as caught:
        get_runtime("dlr", where="pkg/manifest.json")
    message = str(caught.value)
    assert message.startswith("pkg/manifest.json: field 'runtime' is 'dlr'")
    assert "known runtimes: onnxruntime, openvino" in message


def test_a_registered_runtime_is_found_and_listed(fake: FakeRuntime) -> None:
    assert get_runtime("fakert") is fake
    assert get_runtime("fakert-variant") is fake
    assert known_runtimes() == ["fakert", "onnxruntime", "openvino"]
    session = get_runtime("fakert").open(b"")
    np.testing.assert_array_equal(session.run({"x": np.ones((1, 3))})[0], np.full((1, 3), 2.0))


def test_a_runtime_whose_package_is_missing_says_how_to_install_it() -> None:
    register_runtime(MissingRuntime())
    try:
        with pytest.raises(ModelError, match="pip install edgekit-no-such-runtime"):
            get_runtime("missingrt", where="m.json")
    finally:
        runtimes.unregister_runtime("missingrt")


def test_registration_rules(fake: FakeRuntime) -> None:
    with pytest.raises(ModelError, match="already registered"):
        register_runtime(FakeRuntime())
    assert register_runtime(FakeRuntime(), replace=True).name == "fakert"
    bad = FakeRuntime()
    bad.name = "a-b"
    with pytest.raises(ModelError, match="without '-'"):
        register_runtime(bad)


def test_onnx_runtime_describes_tensors_neutrally() -> None:
    assert ort_shape([1, "batch", None, 4]) == (1, -1, -1, 4)
    session = get_runtime("onnxruntime").open(default_model_path(), threads=1)
    (image,) = session.inputs
    assert image.dtype == np.dtype(np.float32) and image.type_name == "tensor(float)"
    with pytest.raises(ModelError, match="bad.onnx: ONNX Runtime cannot load it"):
        get_runtime("onnxruntime").open(b"not a model", where="bad.onnx")


def test_the_agent_and_predict_use_the_registry(fake: FakeRuntime, tmp_path: Path) -> None:
    """A package whose manifest names the fake runtime runs on it (the seam, end to end)."""
    import onnx

    from edgekit.compile.metadata import set_compile_info
    from edgekit.package import build_package, generate_keypair, load_model, load_predictor

    proto = onnx.load(str(default_model_path()))
    set_compile_info(proto, {"runtime": "fakert", "target": "fake"})
    onnx.save(proto, str(tmp_path / "model.onnx"))
    keys = generate_keypair(tmp_path / "keys")
    built = build_package(
        tmp_path / "model.onnx",
        name="m",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "p.tar.gz",
    )
    model = load_model(built.path, name="m", public_key=keys.public_key)
    assert model.runtime == "fakert" and isinstance(model.session, EchoSession)
    ((name, y),) = model.run({"x": np.ones((1, 3), np.float32)})
    assert name == "y" and float(y.sum()) == 6.0
    with pytest.raises(ModelError, match="is not a graph input"):  # the fake has input "x"
        load_predictor(built.path)
