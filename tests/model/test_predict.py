"""The shipped model through ONNX Runtime: no torch, real boxes, folders and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from edgekit.errors import EdgekitError, ModelError
from edgekit.files import sha256_file
from edgekit.model import PRETRAINED_SYNTHETIC, default_model_path
from edgekit.model.evaluate import iou
from edgekit.model.predict import Predictor, model_file, predict_folder
from edgekit.package import load_predictor, resolve_model_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(threads=1)


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    from edgekit.data.synthetic import render

    folder = tmp_path / "camera"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(render(1000, i)[0]).save(folder / f"img-{i}.jpg", quality=92)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_shipped_model_is_self_describing() -> None:
    from edgekit.model.metadata import read_model_info

    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 5_000_000
    info = read_model_info(path)
    assert info.labels == {0: "scratch"}
    assert info.postprocess["type"] == "centernet"
    assert info.extra["training"]["seed"] == 0
    metrics = json.loads((path.parent / "metrics.json").read_text())
    # Fine-tuned on a Ground Truth folder from the shipped synthetic pretraining.
    training = metrics["training"]
    assert training["command"].startswith("edgekit train --data ")
    assert training["data"]["kind"] == "ground_truth"
    assert training["init"]["sha256"] == sha256_file(PRETRAINED_SYNTHETIC)
    pretraining = json.loads((path.parent / "synthetic-metrics.json").read_text())
    assert pretraining["training"]["command"].startswith("edgekit train --data synthetic")
    assert read_model_info(PRETRAINED_SYNTHETIC).extra["training"]["seed"] == 0
    assert (path.parent / "TRAINING.md").is_file()


def test_shipped_model_runs_without_torch() -> None:
    """Block torch entirely, then load the shipped model and find scratches."""
    code = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
from edgekit.data.synthetic import render
from edgekit.model.evaluate import iou
from edgekit.model.predict import Predictor
p = Predictor(threads=1)
hits = 0
total = 0
for i in range(6):
    image, boxes = render(1000, i)
    dets = p.predict(image)
    total += len(boxes)
    hits += sum(any(iou(d.box, b) >= 0.5 for d in dets) for b in boxes)
assert total > 0
print(hits, total)
assert hits >= total // 2, (hits, total)
assert "onnxruntime" in sys.modules
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_predictions_are_in_original_pixels(predictor: Predictor) -> None:
    from edgekit.data.synthetic import render

    image, boxes = render(1000, 1)
    assert len(boxes) == 3
    dets = predictor.predict(image)
    assert dets and all(0.0 <= d.score <= 1.0 for d in dets)
    for d in dets:
        assert d.box.left >= 0 and d.box.left + d.box.width <= 450 + 1e-6
        assert d.box.top >= 0 and d.box.top + d.box.height <= 300 + 1e-6
        assert d.score >= predictor.info.score_threshold
    assert sum(any(iou(d.box, b) >= 0.5 for d in dets) for b in boxes) >= 2
    # The same photo at twice the size gives the same boxes, twice as large.
    big = Image.fromarray(image).resize((900, 600), Image.Resampling.BILINEAR)
    halved = [[v / 2 for v in d.box.as_list()] for d in predictor.predict(big)]
    assert max(iou(h, dets[0].box) for h in halved) >= 0.7


def test_predict_accepts_paths(predictor: Predictor, image_folder: Path) -> None:
    path = image_folder / "img-0.jpg"
    assert [d.to_json() for d in predictor.predict(path)] == [
        d.to_json() for d in predictor.predict(Image.open(path))
    ]


def test_predict_folder_skips_unreadable_images(predictor: Predictor, image_folder: Path) -> None:
    records, skipped = predict_folder(predictor, image_folder)
    records = list(records)
    assert [r["image_name"] for r in records] == ["img-0.jpg", "img-1.jpg", "img-2.jpg"]
    assert [p.name for p, _ in skipped] == ["broken.jpg"]
    for record in records:
        for d in record["detections"]:
            assert set(d) == {"class_id", "label", "score", "box"} and len(d["box"]) == 4


def test_resolve_model_path(tmp_path: Path) -> None:
    assert resolve_model_path(None) == default_model_path()
    assert resolve_model_path(default_model_path()) == default_model_path()
    with pytest.raises(ModelError, match="not found"):
        resolve_model_path(tmp_path / "missing.onnx")
    text = tmp_path / "model.txt"
    text.write_text("x")
    with pytest.raises(ModelError, match="not an .onnx"):
        resolve_model_path(text)
    with pytest.raises(EdgekitError):  # an empty folder is not a package
        resolve_model_path(tmp_path)


def test_model_package_is_accepted(tmp_path: Path) -> None:
    package = pytest.importorskip("edgekit.package")
    keys = package.generate_keypair(tmp_path / "keys")
    built = package.build_package(
        default_model_path(),
        name="tag-scratch-detector",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "p.tar.gz",
    )
    predictor = load_predictor(built.path, threads=1)  # unpacked only while the session loads
    assert predictor.model_path == built.path
    assert predictor.runtime == "onnxruntime"  # chosen by the manifest's runtime field
    assert predictor.info.labels == {0: "scratch"}
    package.open_package(built.path, dest=tmp_path / "unpacked")
    onnx_path = resolve_model_path(tmp_path / "unpacked")  # a package folder
    assert onnx_path.suffix == ".onnx" and onnx_path.is_relative_to(tmp_path / "unpacked")
    assert load_predictor(tmp_path / "unpacked", threads=1).info == predictor.info


def test_predictor_takes_model_files_and_points_packages_to_the_package_layer(
    tmp_path: Path,
) -> None:
    """model/ must not import edgekit.package: a package given to Predictor says where to go."""
    assert model_file(None) == default_model_path()
    for package in (tmp_path, tmp_path / "p.tar.gz"):
        package.touch() if package.suffix else None
        with pytest.raises(ModelError, match="edgekit.package.load_predictor"):
            Predictor(package)
    with pytest.raises(ModelError, match="known runtimes: onnxruntime"):
        Predictor(default_model_path(), runtime="dlr")


def test_predict_cli(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli import main

    out = tmp_path / "out" / "pred.jsonl"
    assert (
        main(["predict", "--images", str(image_folder), "--out", str(out), "--threads", "1"]) == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image_name"] for r in lines] == ["img-0.jpg", "img-1.jpg", "img-2.jpg"]
    assert sum(len(r["detections"]) for r in lines) >= 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "1 skipped" in err and "3 image(s)" in err


def test_predict_cli_reports_a_bad_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    code = main(
        [
            "predict",
            "--model",
            str(bad),
            "--images",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.jsonl"),
        ]
    )
    assert code == 1
    assert "bad.onnx" in capsys.readouterr().err


def test_evaluate_cli_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    out = tmp_path / "eval.json"
    assert (
        main(
            ["evaluate", "--data", "synthetic", "--count", "8", "--out", str(out), "--threads", "1"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "AP50" in text and "synthetic validation" in text
    data = json.loads(out.read_text())
    assert data["num_images"] == 8 and 0.0 <= data["ap50"] <= 1.0
    assert len(data["images"]) == 8


@pytest.mark.slow
def test_evaluate_cli_on_real_photos(
    tag_scratches: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli import main

    out = tmp_path / "real.json"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tag_scratches),
                "--split",
                "val",
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert 20 <= data["num_images"] <= 40
    assert data["ap50"] > 0.2  # trained on synthetic renders only, still finds real scratches


def test_importing_the_model_package_stays_light() -> None:
    code = (
        "import sys, edgekit.model, edgekit.model.predict, edgekit.model.postprocess;"
        "heavy = [m for m in ('torch', 'onnxruntime') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
