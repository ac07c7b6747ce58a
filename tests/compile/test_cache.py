"""The compile cache: a repeated compile is served from it, any changed input misses,
a corrupt entry is rebuilt, a cached parity failure still fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from edgekit.cli import main
from edgekit.compile import CompileCache, CompileOptions, compile_model
from edgekit.compile.cache import CACHE_ENV, default_cache_dir, image_set_identity
from edgekit.compile.testing import build_tiny_model
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.errors import ParityError

GOLDEN = 8  # small golden and calibration sets keep each compile around a second
CALIBRATION = 8
VOLATILE = ("times_s", "created_at", "cache")  # what differs between two runs by design


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("src") / "tiny.onnx", seed=0)


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache")


def _images(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (image, _) in enumerate(SyntheticTagScratches(count, seed=seed)):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


def _compile(tiny: Path, out: Path, cache: CompileCache | bool, **kwargs):
    kwargs.setdefault("calibration_count", CALIBRATION)
    kwargs.setdefault("golden_count", GOLDEN)
    kwargs.setdefault("target", "onnxruntime-int8")
    return compile_model(tiny, out_dir=out, cache=cache, **kwargs)


def _stable(report_path: Path) -> dict:
    data = json.loads(report_path.read_text())
    return {k: v for k, v in data.items() if k not in VOLATILE}


def test_second_compile_is_a_hit_with_identical_bytes_and_report(
    tiny: Path, cache: CompileCache, tmp_path: Path
) -> None:
    first = _compile(tiny, tmp_path / "a", cache)
    assert first.cache is not None and first.cache["hit"] is False
    assert first.cache["entry"] is not None
    second = _compile(tiny, tmp_path / "b", cache)
    assert second.from_cache and second.cache["key"] == first.cache["key"]
    assert (tmp_path / "b" / "model.onnx").read_bytes() == (
        tmp_path / "a" / "model.onnx"
    ).read_bytes()
    assert _stable(second.path) == _stable(first.path)
    assert second.parity == first.parity and second.status == first.status == "passed"
    assert f"from cache (key {first.cache['key'][:12]})" in second.table()
    assert json.loads(second.path.read_text())["cache"]["hit"] is True


@pytest.mark.parametrize(
    "change",
    [
        {"target": "onnxruntime-fp32"},
        {"calibration_count": CALIBRATION // 2},
        {"options": CompileOptions(per_channel=False)},
        {"options": CompileOptions(calibrate_method="entropy")},
        {"options": CompileOptions(calibration_seed=7)},
        {"golden_count": GOLDEN // 2},
        {"max_ap50_drop": 0.5},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_changed_input_misses(
    tiny: Path, cache: CompileCache, tmp_path: Path, change: dict
) -> None:
    first = _compile(tiny, tmp_path / "a", cache)
    changed = _compile(tiny, tmp_path / "b", cache, **change)
    assert changed.cache is not None and changed.cache["hit"] is False
    assert changed.cache["key"] != first.cache["key"]


def test_another_source_model_misses(tiny: Path, cache: CompileCache, tmp_path: Path) -> None:
    first = _compile(tiny, tmp_path / "a", cache)
    other = build_tiny_model(tmp_path / "other" / "tiny.onnx", seed=1)
    second = _compile(other, tmp_path / "b", cache)
    assert not second.from_cache and second.cache["key"] != first.cache["key"]


def test_calibration_folder_content_is_part_of_the_key(
    tiny: Path, cache: CompileCache, tmp_path: Path
) -> None:
    calibration = _images(tmp_path / "calib", 4, seed=3)
    first = _compile(tiny, tmp_path / "a", cache, calibration=calibration)
    assert _compile(tiny, tmp_path / "b", cache, calibration=calibration).from_cache
    # Same folder, same file names, one image's bytes changed: a different calibration set.
    Image.fromarray(SyntheticTagScratches(1, seed=99)[0][0]).save(calibration / "img0.png")
    third = _compile(tiny, tmp_path / "c", cache, calibration=calibration)
    assert not third.from_cache and third.cache["key"] != first.cache["key"]


def test_image_set_identity_names_files_and_bytes(tmp_path: Path) -> None:
    folder = _images(tmp_path / "set", 2, seed=1)
    before = image_set_identity(folder, count=2, seed=0)
    assert before["files"] == 2
    (folder / "img1.png").rename(folder / "renamed.png")
    assert image_set_identity(folder, count=2, seed=0)["sha256"] != before["sha256"]
    synthetic = image_set_identity(None, count=4, seed=5)
    assert synthetic == {"kind": "synthetic", "count": 4, "seed": 5}


@pytest.mark.parametrize("damage", ["model", "entry", "missing", "record"])
def test_a_corrupt_entry_is_rebuilt_not_trusted(
    tiny: Path, cache: CompileCache, tmp_path: Path, damage: str
) -> None:
    first = _compile(tiny, tmp_path / "a", cache)
    entry = Path(first.cache["entry"])
    model = entry / "files" / "model.onnx"
    if damage == "model":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "entry":
        (entry / "entry.json").write_text("{not json")
    elif damage == "record":  # valid JSON, but the parity result was cut out
        record = json.loads((entry / "entry.json").read_text())
        record["parity"] = {"passed": True}
        (entry / "entry.json").write_text(json.dumps(record))
    else:
        model.unlink()
    rebuilt = _compile(tiny, tmp_path / "b", cache)
    assert not rebuilt.from_cache
    assert "corrupt cache entry" in rebuilt.cache["note"]
    assert "corrupt cache entry" in rebuilt.table()
    # The rebuilt entry is whole again and serves the next compile.
    third = _compile(tiny, tmp_path / "c", cache)
    assert third.from_cache
    assert (tmp_path / "c" / "model.onnx").read_bytes() == (
        tmp_path / "b" / "model.onnx"
    ).read_bytes()


def test_a_cached_parity_failure_still_fails(cache: CompileCache, tmp_path: Path) -> None:
    broken = build_tiny_model(tmp_path / "broken" / "tiny.onnx", seed=0, heatmap_bias=-40.0)
    # Broken source vs golden labels: both detect nothing, so parity "passes" on AP50 drop 0;
    # a negative limit makes the gate fail deterministically.
    with pytest.raises(ParityError):
        _compile(broken, tmp_path / "a", cache, target="onnxruntime-fp32", max_ap50_drop=-1.0)
    with pytest.raises(ParityError):
        _compile(broken, tmp_path / "b", cache, target="onnxruntime-fp32", max_ap50_drop=-1.0)
    report = json.loads((tmp_path / "b" / "compile_report.json").read_text())
    assert report["cache"]["hit"] is True and report["status"] == "failed"


def test_cache_false_and_env_off_do_not_cache(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _compile(tiny, tmp_path / "a", False)
    assert report.cache is None
    assert "compile cache off" in report.table()
    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_dir() is None
    assert _compile(tiny, tmp_path / "b", None).cache is None


def test_default_folder_respects_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "edgekit" / "compile"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache" / "edgekit" / "compile"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_cli_uses_the_cache_and_no_cache_skips_it(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    args = ["compile", "--model", str(tiny), "--target", "onnxruntime-fp32"]
    args += ["--golden-count", str(GOLDEN)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "compiled, cached (key" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "from cache (key" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "c"), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "from cache" not in out and "compile cache off" in out


def test_entries_are_renamed_into_place(tiny: Path, cache: CompileCache, tmp_path: Path) -> None:
    """No temporary folder is left behind, and the entry records each file's sha256."""
    report = _compile(tiny, tmp_path / "a", cache)
    leftovers = [p for p in cache.root.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    record = json.loads((Path(report.cache["entry"]) / "entry.json").read_text())
    assert record["files"]["model.onnx"]["sha256"] == report.compiled_sha256
    assert os.path.basename(report.cache["entry"]) == report.cache["key"]
