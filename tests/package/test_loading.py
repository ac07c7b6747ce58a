"""Loading a package into a runtime: verification first, then the manifest's runtime field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.compile.metadata import set_compile_info
from edgekit.errors import ModelError, VerificationError
from edgekit.model import default_model_path
from edgekit.package import (
    build_package,
    generate_keypair,
    load_model,
    load_predictor,
    resolve_model_path,
)


def _package(tmp_path: Path, runtime: str | None = None, name: str = "p") -> tuple[Path, object]:
    model = default_model_path()
    if runtime is not None:
        proto = onnx.load(str(model))
        set_compile_info(proto, {"runtime": runtime, "target": runtime})
        model = tmp_path / f"{name}.onnx"
        onnx.save(proto, str(model))
    keys = generate_keypair(tmp_path / f"{name}-keys")
    built = build_package(
        model, name="det", version="1.0.0", key=keys.private_key, out=tmp_path / f"{name}.tar.gz"
    )
    return built.path, keys


def test_load_model_runs_the_package_on_its_manifest_runtime(tmp_path: Path) -> None:
    path, keys = _package(tmp_path)
    model = load_model(path, name="det", public_key=keys.public_key, source="file://x")
    assert (model.name, model.version, model.runtime) == ("det", "1.0.0", "onnxruntime")
    assert model.source == "file://x" and model.package == path
    (image,) = model.session.inputs
    x = np.zeros([1 if d < 0 else d for d in image.shape], np.float32)
    outputs = model.run({image.name: x})
    assert [n for n, _ in outputs] == [o.name for o in model.session.outputs]


def test_load_model_verifies_before_it_loads(tmp_path: Path) -> None:
    path, _ = _package(tmp_path)
    other = generate_keypair(tmp_path / "other")
    with pytest.raises(VerificationError):
        load_model(path, name="det", public_key=other.public_key)


def test_a_runtime_this_edgekit_lacks_names_the_manifest_field(tmp_path: Path) -> None:
    path, keys = _package(tmp_path, runtime="dlr")
    with pytest.raises(ModelError) as caught:
        load_model(path, name="det", public_key=keys.public_key)
    message = str(caught.value)
    assert "manifest.json: field 'runtime' is 'dlr'" in message
    assert "known runtimes: onnxruntime" in message
    with pytest.raises(ModelError, match="field 'runtime' is 'dlr'"):
        load_predictor(path)


def test_variants_of_a_runtime_load_on_it(tmp_path: Path) -> None:
    path, keys = _package(tmp_path, runtime="onnxruntime-int8")
    assert load_model(path, name="det", public_key=keys.public_key).runtime == "onnxruntime-int8"
    assert load_predictor(path, threads=1).runtime == "onnxruntime-int8"


def test_files_and_none_go_straight_to_the_predictor(tmp_path: Path) -> None:
    assert load_predictor(None, threads=1).model_path == default_model_path()
    assert resolve_model_path(None) == default_model_path()
    assert resolve_model_path(default_model_path()) == default_model_path()
