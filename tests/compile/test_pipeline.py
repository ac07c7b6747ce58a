"""Compile targets, metadata stamping, the parity gate and the compile CLI, on a tiny model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from edgekit.cli import main
from edgekit.compile import (
    CompiledModel,
    CompileOptions,
    Compiler,
    ParityWarning,
    check_parity,
    compile_model,
    get_compiler,
    known_targets,
    read_compile_info,
    register_compiler,
)
from edgekit.compile import base as compile_base
from edgekit.compile.testing import build_tiny_model
from edgekit.data.synthetic import SyntheticTagScratches, write_dataset
from edgekit.errors import CompileError, ModelError, PackageError, ParityError
from edgekit.model.metadata import read_model_info
from edgekit.model.postprocess import preprocess
from edgekit.model.predict import Predictor


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compile")


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    return build_tiny_model(work / "source" / "tiny.onnx", seed=0)


@pytest.fixture(scope="module")
def image_folder(work: Path) -> Path:
    """A plain folder of unlabeled images (parity then compares against the source model)."""
    folder = work / "images"
    folder.mkdir()
    for i, (image, _) in enumerate(SyntheticTagScratches(6, seed=77)):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def gt_dataset(work: Path) -> Path:
    return write_dataset(work / "gt", 6, seed=5, image_format="png").parent


@pytest.fixture(scope="module")
def fp32(work: Path, tiny: Path):
    return compile_model(tiny, "onnxruntime-fp32", work / "fp32", golden_count=20)


@pytest.fixture(scope="module")
def int8(work: Path, tiny: Path):
    return compile_model(
        tiny, "onnxruntime-int8", work / "int8", calibration_count=16, golden_count=20
    )


def _raw_outputs(model: Path, count: int = 4) -> list[dict[str, np.ndarray]]:
    predictor = Predictor(model)
    images = SyntheticTagScratches(count, seed=3)
    return [predictor.run(preprocess(image, predictor.info.preprocessing)) for image, _ in images]


# --- registry ---------------------------------------------------------------------------------


def test_builtin_targets_are_registered() -> None:
    assert {"onnxruntime-fp32", "onnxruntime-int8"} <= set(known_targets())
    assert get_compiler("ONNXRuntime_INT8").target == "onnxruntime-int8"


def test_unknown_target_lists_known_targets(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(CompileError) as err:
        get_compiler("tensorrt")
    assert "'tensorrt'" in str(err.value)
    assert "onnxruntime-fp32, onnxruntime-int8" in str(err.value)
    with pytest.raises(CompileError, match="known targets: .*onnxruntime-int8"):
        compile_model(tiny, "tensorrt", tmp_path)


def test_two_classes_cannot_claim_one_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_base, "_REGISTRY", dict(compile_base._REGISTRY))

    class Other(Compiler):
        target = "onnxruntime-fp32"

        def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
            raise AssertionError("not called")

    with pytest.raises(CompileError, match="already registered"):
        register_compiler(Other)


# --- fp32 -------------------------------------------------------------------------------------


def test_fp32_outputs_match_source(fp32, tiny: Path) -> None:
    for ours, theirs in zip(_raw_outputs(fp32.model_path), _raw_outputs(tiny), strict=True):
        for name in ("heatmap", "size", "offset"):
            np.testing.assert_allclose(ours[name], theirs[name], atol=1e-4, rtol=1e-4)


def test_fp32_graph_is_optimized_and_portable(fp32) -> None:
    graph = onnx.load(str(fp32.model_path)).graph
    ops = {(n.domain, n.op_type) for n in graph.node}
    assert ("com.microsoft", "FusedConv") in ops  # extended level: Conv+activation fusion
    assert not any(domain == "com.microsoft.nchwc" for domain, _ in ops)  # no layout ops


def test_compiled_file_is_self_describing(fp32, int8, tiny: Path) -> None:
    source_info = read_model_info(tiny)
    source_sha = fp32.source_sha256
    for report in (fp32, int8):
        info = read_model_info(report.model_path)
        assert info.preprocessing == source_info.preprocessing
        assert info.labels == source_info.labels
        assert info.score_threshold == source_info.score_threshold
        assert info.postprocess == source_info.postprocess
        assert info.extra == source_info.extra
        assert info.source_sha256 == source_sha
        record = read_compile_info(report.model_path)
        assert record is not None
        assert record["target"] == report.target
        assert record["source_sha256"] == source_sha
        assert record["onnxruntime_version"]
        assert "calibration" in record
    assert read_compile_info(tiny) is None
    assert read_compile_info(int8.model_path)["calibration"].startswith("synthetic tag scratches")
    assert read_compile_info(int8.model_path)["runtime"] == "onnxruntime-int8"


def test_compile_report_json(fp32) -> None:
    data = json.loads((fp32.out_dir / "compile_report.json").read_text())
    assert data["target"] == "onnxruntime-fp32"
    assert data["status"] == "passed"
    assert data["size_bytes"]["compiled"] == fp32.model_path.stat().st_size
    assert data["size_bytes"]["source"] > 0
    parity = data["parity"]
    assert parity["images"] == 20
    assert parity["reference"] == "ground truth"
    assert parity["ap50_drop"] == pytest.approx(0.0, abs=1e-6)
    assert parity["max_abs_score_diff"] < 1e-4
    assert parity["images_with_count_diff"] == 0
    assert set(data["times_s"]) == {"compile", "parity", "total"}
    assert "AP50" in fp32.table()


# --- int8 -------------------------------------------------------------------------------------


def test_int8_is_qdq_and_close_to_source(int8, tiny: Path) -> None:
    graph = onnx.load(str(int8.model_path)).graph
    ops = [n.op_type for n in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights  # weights are stored as int8
    for ours, theirs in zip(_raw_outputs(int8.model_path), _raw_outputs(tiny), strict=True):
        np.testing.assert_allclose(ours["heatmap"], theirs["heatmap"], atol=0.05)
        np.testing.assert_allclose(ours["offset"], theirs["offset"], atol=0.05)
        scale = float(np.abs(theirs["size"]).max())
        np.testing.assert_allclose(ours["size"], theirs["size"], atol=0.05 * scale)
    assert int8.parity is not None and int8.parity.passed
    assert int8.parity.max_abs_score_diff < 0.1  # matched peaks may sit one cell apart


@pytest.mark.parametrize("kind", ["image folder", "Ground Truth data set"])
def test_int8_calibration_from_folder_or_dataset(
    tiny: Path, tmp_path: Path, image_folder: Path, gt_dataset: Path, kind: str
) -> None:
    source = image_folder if kind == "image folder" else gt_dataset
    report = compile_model(
        tiny,
        "onnxruntime-int8",
        tmp_path,
        calibration=source,
        calibration_count=4,
        golden=gt_dataset,
    )
    record = read_compile_info(report.model_path)
    assert record["calibration"] == f"{kind} {source}"
    assert record["calibration_images"] == 4
    assert report.parity.reference == "ground truth"
    assert report.parity.images == 6


def test_empty_calibration_folder_is_an_error(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompileError, match="empty: no readable images"):
        compile_model(tiny, "onnxruntime-int8", tmp_path / "out", calibration=tmp_path / "empty")


def test_non_edgekit_model_is_refused(tmp_path: Path, tiny: Path) -> None:
    bare = onnx.load(str(tiny))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelError, match="bare.onnx: metadata key"):
        compile_model(tmp_path / "bare.onnx", "onnxruntime-fp32", tmp_path / "out")
    with pytest.raises(CompileError, match="missing.onnx: source model not found"):
        compile_model(tmp_path / "missing.onnx", "onnxruntime-fp32", tmp_path / "out")


# --- parity gate ------------------------------------------------------------------------------


class BrokenCompiler(Compiler):
    """Writes a model with the same weights whose heatmap never fires."""

    target = "test-broken"

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        out = build_tiny_model(out_dir / "model.onnx", seed=0, heatmap_bias=-40.0)
        return CompiledModel(self.target, self.runtime, out, (out,))


class RemoteCompiler(Compiler):
    """Like a cloud compiler whose output this machine cannot run (e.g. SageMaker Neo)."""

    target = "test-remote"
    runtime = "dlr"

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        out = out_dir / "model.onnx"
        out.write_bytes(source.read_bytes())
        return CompiledModel(self.target, self.runtime, out, (out,), runs_locally=False)


@pytest.fixture
def extra_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = dict(compile_base._REGISTRY)
    monkeypatch.setattr(compile_base, "_REGISTRY", registry)
    register_compiler(BrokenCompiler)
    register_compiler(RemoteCompiler)


def test_parity_failure_raises_with_both_numbers(
    extra_targets: None, tiny: Path, tmp_path: Path, image_folder: Path
) -> None:
    with pytest.raises(ParityError) as err:
        compile_model(tiny, "test-broken", tmp_path, golden=image_folder)
    text = str(err.value)
    assert "from 1.0000" in text and "to 0.0000" in text
    assert "force=True keeps the model" in text and "--force" not in text  # a library call
    report = json.loads((tmp_path / "compile_report.json").read_text())
    assert report["status"] == "failed"
    assert report["parity"]["reference"] == "source model detections"
    assert report["parity"]["compiled_detections"] == 0
    # A model that failed parity cannot be packaged by accident.
    from edgekit.package import build_package, generate_keypair

    keys = generate_keypair(tmp_path / "keys")
    with pytest.raises(PackageError, match="failed its parity check"):
        build_package(
            tmp_path, name="m", version="1.0.0", key=keys.private_key, out=tmp_path / "p.tar.gz"
        )


def test_parity_failure_with_force_warns_and_keeps_model(
    extra_targets: None, tiny: Path, tmp_path: Path, image_folder: Path
) -> None:
    with pytest.warns(ParityWarning, match="Kept because force=True"):
        report = compile_model(tiny, "test-broken", tmp_path, golden=image_folder, force=True)
    assert report.status == "forced"
    assert report.parity.forced and not report.parity.passed
    assert report.parity.source_ap50 == pytest.approx(1.0)
    assert report.parity.compiled_ap50 == pytest.approx(0.0)
    assert json.loads(report.path.read_text())["parity"]["forced"] is True
    assert report.model_path.is_file()


def test_output_that_cannot_run_here_skips_parity(
    extra_targets: None, tiny: Path, tmp_path: Path
) -> None:
    report = compile_model(tiny, "test-remote", tmp_path)
    assert report.status == "skipped" and report.parity is None
    assert read_compile_info(report.model_path)["runtime"] == "dlr"
    assert "skipped" in report.table()


def test_check_parity_of_identical_models(tiny: Path, gt_dataset: Path) -> None:
    result = check_parity(tiny, tiny, golden=gt_dataset)
    assert result.passed and result.ap50_drop == 0.0
    assert result.max_abs_score_diff == 0.0 and result.images_with_count_diff == 0
    assert result.source_detections == result.compiled_detections == result.matched_detections


# --- CLI --------------------------------------------------------------------------------------


def test_cli_compile_prints_table(tiny: Path, tmp_path: Path, capsys) -> None:
    code = main([
        "compile", "--model", str(tiny), "--target", "onnxruntime-fp32",
        "--out", str(tmp_path), "--golden-count", "5",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "onnxruntime-fp32" in out and "AP50" in out and "compile_report.json" in out


def test_cli_compile_errors(
    extra_targets: None, tiny: Path, tmp_path: Path, image_folder: Path, capsys
) -> None:
    args = ["compile", "--model", str(tiny), "--out", str(tmp_path)]
    assert main([*args, "--target", "nope"]) == 1
    assert "known targets: auto, onnxruntime-fp32, onnxruntime-int8" in capsys.readouterr().err
    broken = [*args, "--target", "test-broken", "--golden", str(image_folder)]
    assert main(broken) == 1
    err = capsys.readouterr().err
    assert "--force keeps the model" in err and "force=True" not in err  # the flag typed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI reports through its table, not a warning
        assert main([*broken, "--force"]) == 0
    assert "FAILED (forced)" in capsys.readouterr().out


def test_output_folder_holding_the_source_is_refused(tiny: Path) -> None:
    with pytest.raises(CompileError, match="holds the source model tiny.onnx"):
        compile_model(tiny, "onnxruntime-fp32", tiny.parent)


def test_worst_images_are_reported(int8) -> None:
    worst = json.loads(int8.path.read_text())["parity"]["worst_images"]
    assert 0 < len(worst) <= 5
    first = worst[0]
    assert first["image"].startswith("validation-")
    assert {"source_detections", "compiled_detections", "max_abs_score_diff"} <= set(first)


@pytest.mark.slow
def test_int8_with_real_photos_as_calibration_and_golden(
    tiny: Path, tmp_path: Path, tag_scratches: Path
) -> None:
    report = compile_model(
        tiny,
        "onnxruntime-int8",
        tmp_path,
        calibration=tag_scratches,
        calibration_count=8,
        golden=tag_scratches,
    )
    assert read_compile_info(report.model_path)["calibration"].startswith("Ground Truth data set")
    assert report.parity.reference == "ground truth"
    assert report.parity.images >= 100
