"""The openvino-fp32 / -bf16 / -int8 compile targets on a tiny model: parity on OpenVINO,
the runtime in the compile record and the package manifest, predict through the registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.compile import CompileCache, compile_model, known_targets, read_compile_info
from edgekit.compile.testing import build_tiny_model
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.errors import CompileError
from edgekit.model.predict import Predictor
from edgekit.package import build_package, generate_keypair, load_predictor
from edgekit.runtimes.openvino_runtime import OpenVinoRuntime, OpenVinoSession

HINT = 'pip install "edgekit-inspection[openvino]"'


@pytest.fixture(scope="module")
def ov() -> object:
    return pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openvino")


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    return build_tiny_model(work / "source" / "tiny.onnx", seed=0)


@pytest.fixture(scope="module")
def opened(ov: object) -> list[str]:
    """Every model OpenVINO opens while the module's compiles run (parity must run there)."""
    calls: list[str] = []
    original = OpenVinoRuntime.open

    def spy(self: OpenVinoRuntime, model: bytes | Path, **kwargs: object) -> OpenVinoSession:
        calls.append(str(model))
        return original(self, model, **kwargs)  # type: ignore[arg-type]

    patch = pytest.MonkeyPatch()
    patch.setattr(OpenVinoRuntime, "open", spy)
    yield calls
    patch.undo()


@pytest.fixture(scope="module")
def fp32(opened: list[str], work: Path, tiny: Path):
    return compile_model(tiny, "openvino-fp32", work / "fp32", golden_count=20)


@pytest.fixture(scope="module")
def int8(opened: list[str], work: Path, tiny: Path):
    return compile_model(
        tiny, "openvino-int8", work / "int8", calibration_count=16, golden_count=20
    )


def test_the_targets_are_registered() -> None:
    assert {"openvino-fp32", "openvino-bf16", "openvino-int8"} <= set(known_targets())


@pytest.mark.parametrize(
    ("report", "runtime", "precision", "inference_precision"),
    [("fp32", "openvino", "fp32", "f32"), ("int8", "openvino-int8", "int8", "f32")],
)
def test_both_targets_compile_pass_parity_on_openvino_and_record_the_runtime(
    request: pytest.FixtureRequest,
    opened: list[str],
    report: str,
    runtime: str,
    precision: str,
    inference_precision: str,
) -> None:
    result = request.getfixturevalue(report)
    assert result.status == "passed" and result.runtime == runtime
    assert str(result.model_path) in opened  # the compiled side of parity ran on OpenVINO
    info = read_compile_info(result.model_path)
    assert info is not None
    assert (info["target"], info["runtime"]) == (f"openvino-{report}", runtime)
    assert (info["precision"], info["inference_precision"]) == (precision, inference_precision)
    assert info["openvino_version"]
    saved = json.loads(result.path.read_text())
    assert saved["runtime"] == runtime and saved["compile"]["openvino_version"]


def test_int8_is_the_onnxruntime_int8_qdq_model(int8, work: Path, tiny: Path) -> None:
    info = read_compile_info(int8.model_path)
    assert info is not None
    assert (info["quantizer"], info["quant_format"]) == ("onnxruntime-int8", "QDQ")
    assert info["calibration_images"] == 16


def test_a_package_runs_on_openvino_through_the_registry(int8, fp32, work: Path) -> None:
    keys = generate_keypair(work / "keys")
    image = SyntheticTagScratches(1, seed=4)[0][0]
    for report in (int8, fp32):
        built = build_package(
            report.out_dir,
            name="det",
            version="1.0.0",
            key=keys.private_key,
            out=work / f"{report.target}.tar.gz",
        )
        assert built.manifest.runtime == report.runtime
        predictor = load_predictor(built.path, threads=1)
        assert isinstance(predictor.session, OpenVinoSession)
        got = predictor.predict(image, score_threshold=0.05)
        want = Predictor(report.model_path, threads=1).predict(image, score_threshold=0.05)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(
            [d.score for d in got], [d.score for d in want], atol=0.02 if report is int8 else 1e-4
        )


def test_bf16_records_its_precision_and_the_session_uses_it(
    opened: list[str], work: Path, tiny: Path
) -> None:
    report = compile_model(tiny, "openvino-bf16", work / "bf16", golden_count=10)
    assert report.status == "passed" and report.runtime == "openvino-bf16"
    assert read_compile_info(report.model_path)["inference_precision"] == "bf16"
    assert OpenVinoRuntime().open(report.model_path).precision == "bf16"


def test_the_cache_key_holds_the_openvino_version(ov, work: Path, tiny: Path) -> None:
    cache = CompileCache(work / "cache")
    first = compile_model(tiny, "openvino-fp32", work / "c1", golden_count=5, cache=cache)
    again = compile_model(tiny, "openvino-fp32", work / "c2", golden_count=5, cache=cache)
    assert not first.from_cache and again.from_cache
    entry = json.loads((Path(first.cache["entry"]) / "entry.json").read_text())
    assert entry["inputs"]["openvino_version"] == ov.__version__


def test_the_cli_compiles_for_openvino(ov, work: Path, tiny: Path, capsys) -> None:
    out = work / "cli"
    args = ["compile", "--model", str(tiny), "--target", "openvino-fp32", "--out", str(out)]
    assert main([*args, "--golden-count", "5"]) == 0
    assert "openvino-fp32 (runtime openvino)" in capsys.readouterr().out


def test_missing_openvino_fails_the_compile_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tiny: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    for target in ("openvino-fp32", "openvino-int8"):
        with pytest.raises(CompileError, match=r"the openvino-\w+ compile target needs OpenVINO"):
            compile_model(tiny, target, tmp_path / target, golden_count=5)
        with pytest.raises(CompileError) as caught:
            compile_model(tiny, target, tmp_path / target, golden_count=5)
        assert HINT in str(caught.value)
