"""The auto target: the fastest candidate that passes parity, a failing one never, and why.

:func:`choose` is tested on fake measurements; one compile runs the real
candidates on a tiny model with the timings replaced (so the broken candidate
is the fastest), and one with no timing fakes at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from edgekit.compile import (
    CompiledModel,
    CompileOptions,
    Compiler,
    auto,
    compile_model,
    known_targets,
    read_compile_info,
    register_compiler,
)
from edgekit.compile import base as compile_base
from edgekit.compile.auto import Candidate, choose
from edgekit.compile.testing import build_tiny_model
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.errors import CompileError

HINT = 'pip install "edgekit-inspection[openvino]"'


# --- the choice, on fake measurements ---------------------------------------------------------


def _c(target: str, status: str, p50: float | None) -> Candidate:
    return Candidate(target, target.split("-")[0], status, p50_ms=p50, p95_ms=p50)


def test_the_fastest_candidate_that_passes_is_chosen() -> None:
    candidates = [
        _c("onnxruntime-fp32", "passed", 10.0),
        _c("onnxruntime-int8", "passed", 4.4),
        _c("openvino-fp32", "passed", 9.8),
        _c("openvino-int8", "passed", 1.8),
    ]
    index, reason = choose(candidates)
    assert candidates[index].target == "openvino-int8"
    assert reason.startswith("openvino-int8 is the fastest candidate that passes parity")
    assert "next: onnxruntime-int8 4.40 ms (2.44x slower)" in reason


def test_a_candidate_that_fails_parity_is_never_chosen_however_fast() -> None:
    candidates = [
        _c("onnxruntime-fp32", "passed", 10.0),
        _c("openvino-bf16", "failed", 0.5),
        _c("openvino-int8", "error", 0.1),
        _c("openvino-fp32", "skipped", None),
    ]
    index, reason = choose(candidates)
    assert candidates[index].target == "onnxruntime-fp32"
    assert "never chosen: openvino-bf16 (failed, p50 0.50 ms), openvino-int8 (error" in reason
    assert reason.endswith("skipped: openvino-fp32")
    with pytest.raises(CompileError, match="auto: no candidate target passed parity"):
        choose([c for c in candidates if c.status != "passed"])


def test_a_near_tie_goes_to_the_earlier_candidate_and_is_deterministic() -> None:
    candidates = [_c("onnxruntime-fp32", "passed", 10.2), _c("openvino-fp32", "passed", 10.0)]
    first = choose(candidates)
    assert first == choose(list(candidates))
    index, reason = first
    assert candidates[index].target == "onnxruntime-fp32"
    assert "within 5% of the fastest, openvino-fp32 (10.00 ms)" in reason
    index, _ = choose(candidates, tolerance=0.0)
    assert candidates[index].target == "openvino-fp32"


# --- real compiles on a tiny model ------------------------------------------------------------


class FastBrokenCompiler(Compiler):
    """Same weights, a heatmap that never fires: fails parity against the source."""

    target = "test-auto-broken"

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        out = build_tiny_model(out_dir / "model.onnx", seed=0, heatmap_bias=-40.0)
        return CompiledModel(self.target, self.runtime, out, (out,))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auto")


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    return build_tiny_model(work / "source" / "tiny.onnx", seed=0)


@pytest.fixture(scope="module")
def golden(work: Path) -> Path:
    """Unlabeled images: the source's detections are the reference, so broken fails."""
    folder = work / "golden"
    folder.mkdir()
    for i, (image, _) in enumerate(SyntheticTagScratches(4, seed=77)):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def broken_target(monkeypatch: pytest.MonkeyPatch) -> None:
    known_targets()  # load the built-in targets into the registry before copying it
    monkeypatch.setattr(compile_base, "_REGISTRY", dict(compile_base._REGISTRY))
    register_compiler(FastBrokenCompiler)


def test_auto_never_keeps_a_broken_candidate_even_when_it_is_fastest(
    broken_target: None, monkeypatch: pytest.MonkeyPatch, tiny: Path, golden: Path, work: Path
) -> None:
    pytest.importorskip("openvino")
    fake_p50 = {"test-auto-broken": 0.1, "onnxruntime-fp32": 3.0, "openvino-fp32": 2.0}
    real_measure = auto.measure

    def fake_measure(fn, *, name: str, **kwargs):
        stats = real_measure(fn, name=name, **{**kwargs, "iterations": 1, "warmup": 0})
        return type(stats)(name, stats.threads, 1, fake_p50[name], fake_p50[name], fake_p50[name])

    monkeypatch.setattr(auto, "measure", fake_measure)
    candidates = ["onnxruntime-fp32", "test-auto-broken", "openvino-fp32"]
    report = compile_model(
        tiny,
        "auto",
        work / "out",
        golden=golden,
        options=CompileOptions(extra={"candidates": candidates}),
        cache=False,
    )
    assert (report.target, report.runtime, report.status) == ("auto", "openvino", "passed")
    record = read_compile_info(report.model_path)
    assert record is not None
    assert (record["target"], record["runtime"]) == ("auto", "openvino")
    assert record["inference_precision"] == "f32"  # the chosen candidate's settings travel
    decision = json.loads(report.path.read_text())["compile"]["auto"]
    assert decision["chosen"] == "openvino-fp32"
    by_target = {c["target"]: c for c in decision["candidates"]}
    assert by_target["test-auto-broken"]["status"] == "failed"
    assert by_target["test-auto-broken"]["p50_ms"] == 0.1
    assert by_target["onnxruntime-fp32"]["status"] == "passed"
    assert "AP50 1.0000 -> 1.0000" in by_target["onnxruntime-fp32"]["note"]
    assert decision["reason"].startswith("openvino-fp32 is the fastest candidate that passes")
    assert "never chosen: test-auto-broken (failed, p50 0.10 ms)" in decision["reason"]
    table = report.table()
    assert "auto  " in table and "test-auto-broken  failed, p50 0.10 ms" in table


def test_auto_skips_an_absent_runtime_with_its_install_hint_and_measures_for_real(
    monkeypatch: pytest.MonkeyPatch, tiny: Path, golden: Path, work: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as on a machine without OpenVINO
    report = compile_model(
        tiny,
        "auto",
        work / "no-openvino",
        golden=golden,
        options=CompileOptions(extra={"candidates": ["onnxruntime-fp32", "openvino-int8"]}),
        cache=False,
    )
    decision = report.compile_info["auto"]
    assert (decision["chosen"], report.runtime) == ("onnxruntime-fp32", "onnxruntime")
    fp32, skipped = decision["candidates"]
    assert fp32["status"] == "passed" and fp32["p50_ms"] > 0
    assert skipped["status"] == "skipped" and skipped["p50_ms"] is None
    assert HINT in skipped["note"]
    assert decision["reason"].endswith("skipped: openvino-int8")


def test_auto_refuses_to_be_its_own_candidate(tiny: Path, work: Path) -> None:
    with pytest.raises(CompileError, match="other than auto"):
        compile_model(
            tiny, "auto", work / "self", options=CompileOptions(extra={"candidates": ["auto"]})
        )
