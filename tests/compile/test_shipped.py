"""int8 compile, package and open with the shipped (trained) model; skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.compile import compile_model, read_compile_info
from edgekit.errors import ModelError
from edgekit.model.metadata import read_model_info

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shipped() -> Path:
    from edgekit.model import default_model_path

    try:
        return default_model_path()
    except ModelError as exc:
        pytest.skip(f"shipped model not present yet: {exc}")


def test_int8_keeps_ap50_within_limit_and_packages(shipped: Path, tmp_path: Path) -> None:
    # Default calibration (synthetic) and golden set (synthetic validation, 200 images).
    report = compile_model(shipped, "onnxruntime-int8", tmp_path / "int8")
    parity = report.parity
    assert parity is not None and report.status == "passed"
    assert parity.images == 200 and parity.reference == "ground truth"
    assert parity.source_ap50 - parity.compiled_ap50 <= 0.02
    assert report.compiled_size < report.source_size
    assert read_model_info(report.model_path).preprocessing == (
        read_model_info(shipped).preprocessing
    )
    assert read_compile_info(report.model_path)["target"] == "onnxruntime-int8"

    from edgekit.package import build_package, generate_keypair, open_package

    keys = generate_keypair(tmp_path / "keys")
    built = build_package(
        report.out_dir,
        name="tag-scratch-detector",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "pkg.tar.gz",
    )
    assert built.manifest.runtime == "onnxruntime-int8"
    assert built.manifest.metrics["parity"]["compiled_ap50"] == pytest.approx(
        parity.compiled_ap50, abs=1e-5
    )
    with open_package(built.path, keys.public_key) as opened:
        from edgekit.model.predict import Predictor

        assert Predictor(opened.model_path).info.labels == read_model_info(shipped).labels


def test_fp32_matches_source_exactly_enough(shipped: Path, tmp_path: Path) -> None:
    report = compile_model(shipped, "onnxruntime-fp32", tmp_path, golden_count=50)
    assert report.parity is not None
    assert abs(report.parity.ap50_drop) < 1e-3
    assert report.parity.max_abs_score_diff < 1e-3
