"""The PyTorch side: size budget, ONNX parity, a tiny training run, the train CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.files import sha256_file  # noqa: E402
from edgekit.model import PRETRAINED_SYNTHETIC  # noqa: E402
from edgekit.model.detector import (  # noqa: E402
    DetectorConfig,
    ScratchDetector,
    parameter_count,
)

pytestmark = pytest.mark.train


def test_parameter_budget() -> None:
    assert parameter_count(ScratchDetector()) <= 1_500_000


def test_output_shapes_follow_the_stride() -> None:
    model = ScratchDetector().eval()
    with torch.no_grad():
        heat, size, offset = model(torch.zeros(1, 3, 256, 384))
    assert heat.shape == (1, 1, 64, 96)
    assert size.shape == offset.shape == (1, 2, 64, 96)


def test_fusing_batch_norm_keeps_outputs() -> None:
    torch.manual_seed(0)
    model = ScratchDetector().eval()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 256, 384)
    with torch.no_grad():
        before = model(x)
        after = model.fuse()(x)
    for a, b in zip(before, after, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_onnx_matches_pytorch(tmp_path: Path) -> None:
    from edgekit.model.export import export_onnx
    from edgekit.model.metadata import read_model_info
    from edgekit.model.predict import Predictor
    from edgekit.model.train import model_info

    torch.manual_seed(1)
    config = DetectorConfig()
    model = ScratchDetector(config).eval()
    info = model_info(config, {0: "scratch"}, {"note": "parity test"})
    path = export_onnx(model, tmp_path / "model.onnx", info)
    assert read_model_info(path) == info
    import onnx

    proto = onnx.load(path)
    assert proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= {"Conv", "Relu", "Add", "Resize", "Sigmoid", "Constant"}, ops

    x = np.random.default_rng(0).normal(size=(1, 3, 256, 384)).astype(np.float32)
    outputs = Predictor(path, threads=1).run(x)
    with torch.no_grad():
        heat, size, offset = model(torch.from_numpy(x))
    np.testing.assert_allclose(outputs["heatmap"], torch.sigmoid(heat).numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["size"], size.numpy(), atol=1e-3)
    np.testing.assert_allclose(outputs["offset"], offset.numpy(), atol=1e-3)


def test_focal_loss_prefers_right_answers() -> None:
    from edgekit.model.train import focal_loss

    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 4, 4] = 1.0
    good = torch.full_like(target, -6.0)
    good[0, 0, 4, 4] = 6.0
    bad = -good
    assert focal_loss(good, target) < 0.01 < focal_loss(bad, target)


@pytest.mark.slow
def test_tiny_training_run_writes_model_and_metrics(tmp_path: Path) -> None:
    from edgekit.model.metadata import read_model_info
    from edgekit.model.train import train

    result = train(
        "synthetic", tmp_path, epochs=1, seed=3, train_count=8, val_count=4, batch_size=4, threads=1
    )
    assert result.model_path == tmp_path / "model.onnx" and result.model_path.is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["ap50"] <= 1.0
    assert metrics["validation"]["num_images"] == 4
    training = metrics["training"]
    assert training["seed"] == 3 and training["parameters"] == parameter_count(result.model)
    assert training["torch_version"] == torch.__version__
    assert training["settings"]["epochs"] == 1 and training["settings"]["train_count"] == 8
    info = read_model_info(result.model_path)
    assert info.extra["training"]["seed"] == 3
    assert info.labels == {0: "scratch"}


@pytest.mark.slow
def test_training_is_deterministic(tmp_path: Path) -> None:
    from edgekit.model.train import train

    runs = [
        train(
            "synthetic",
            tmp_path / str(k),
            epochs=1,
            seed=5,
            train_count=4,
            val_count=2,
            batch_size=2,
            threads=1,
        ).model
        for k in range(2)
    ]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_train_on_a_ground_truth_folder(tmp_path: Path) -> None:
    from edgekit.data.synthetic import write_dataset
    from edgekit.model.train import train

    write_dataset(tmp_path / "data", 10, seed=7)
    result = train(tmp_path / "data", tmp_path / "out", epochs=1, batch_size=4, threads=1)
    training = result.metrics["training"]
    data = training["data"]
    assert data["kind"] == "ground_truth"
    assert data["train_images"] + data["val_images"] == 10
    assert result.metrics["validation"]["num_images"] == data["val_images"]
    # The recipe for a folder: fine-tune the synthetic-pretrained detector, with mosaic.
    assert training["init"]["path"] == str(PRETRAINED_SYNTHETIC.resolve())
    assert training["init"]["sha256"] == sha256_file(PRETRAINED_SYNTHETIC)
    assert training["settings"]["lr"] == 1e-3
    assert training["augment"]["mosaic"] == 1.0


def test_input_size_must_divide_by_32(tmp_path: Path) -> None:
    import argparse

    import onnx

    from edgekit.cli.cmd_model import _input_size
    from edgekit.errors import ConfigurationError
    from edgekit.model.train import train

    with pytest.raises(ConfigurationError, match="400x256: width and height must be multiples"):
        train("synthetic", tmp_path, epochs=1, train_count=2, input_size=(400, 256))
    small = train(
        "synthetic",
        tmp_path / "small",
        epochs=1,
        train_count=2,
        val_count=2,
        threads=1,
        input_size=(128, 64),
    )
    (image,) = onnx.load(str(small.model_path)).graph.input
    assert [d.dim_value for d in image.type.tensor_type.shape.dim] == [1, 3, 64, 128]
    assert small.metrics["training"]["detector"]["input_width"] == 128
    assert _input_size("448X288") == (448, 288)
    for bad in ("416", "416x", "wide x 256", "-32x256"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            _input_size(bad)


@pytest.mark.slow
def test_init_none_trains_a_folder_from_scratch(tmp_path: Path) -> None:
    from edgekit.data.synthetic import write_dataset
    from edgekit.model.train import train

    write_dataset(tmp_path / "data", 6, seed=7)
    result = train(
        tmp_path / "data", tmp_path / "out", epochs=1, batch_size=2, threads=1, init=None
    )
    assert result.metrics["training"]["init"] is None
    assert result.metrics["training"]["settings"]["lr"] == 3e-3


def test_init_keeps_every_weight_but_the_class_head_for_other_classes() -> None:
    from edgekit.model.torch_weights import load_detector
    from edgekit.model.train import _initial_model

    source, _ = load_detector(PRETRAINED_SYNTHETIC)
    wider = DetectorConfig(num_classes=3, input_height=288, input_width=448)
    model = _initial_model(PRETRAINED_SYNTHETIC, wider)
    before, after = source.state_dict(), model.state_dict()
    fresh = [k for k in after if after[k].shape != before[k].shape]
    assert sorted(fresh) == ["head_heat.1.bias", "head_heat.1.weight"]
    assert all(torch.equal(before[k], after[k]) for k in after if k not in fresh)
    assert model.training and model.config == wider


def test_validation_seed_is_reserved(tmp_path: Path) -> None:
    from edgekit.errors import ConfigurationError
    from edgekit.model.train import train

    with pytest.raises(ConfigurationError, match="1000"):
        train("synthetic", tmp_path, epochs=1, seed=1000, train_count=2)


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    from edgekit.errors import DataError
    from edgekit.model.train import train

    with pytest.raises(DataError, match="not found"):
        train(tmp_path / "nothing", tmp_path / "out", epochs=1)


@pytest.mark.slow
def test_train_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--seed",
            "2",
            "--train-count",
            "4",
            "--val-count",
            "2",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    assert (out / "model.onnx").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["command"].startswith("edgekit train --data synthetic")
    assert "--epochs 1" in metrics["training"]["command"]
    assert "AP50" in capsys.readouterr().out


def test_planned_epochs_fit_the_budget() -> None:
    from edgekit.model.train import _planned_epochs

    # 10 s per epoch so far: a 100 s budget plans 10 epochs, a cap wins, an overrun stops.
    assert _planned_epochs(100.0, 20.0, 2, None) == 10
    assert _planned_epochs(100.0, 20.0, 2, 5) == 5
    assert _planned_epochs(100.0, 95.0, 5, None) == 5
    assert _planned_epochs(100.0, 60.0, 1, None) == 1  # one more epoch would overrun
    assert _planned_epochs(1000.0, 0.0, 1, None) >= 2


@pytest.mark.slow
def test_time_budget_trains_until_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a clock that advances 1 s per reading, each epoch takes 1 s: a 5.5 s budget
    trains 5 epochs (a sixth would overrun), recorded in metrics.json and the command."""
    import types

    from edgekit.cli import main
    from edgekit.errors import ConfigurationError
    from edgekit.model import train as train_module

    ticks = iter(range(1_000_000))
    monkeypatch.setattr(
        train_module, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    )
    out = tmp_path / "budget"
    args = ["train", "--data", "synthetic", "--out", str(out), "--seed", "4"]
    args += ["--train-count", "4", "--val-count", "2", "--threads", "1"]
    assert main([*args, "--time-budget", "5.5"]) == 0
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["settings"]["time_budget"] == 5.5
    assert training["settings"]["epochs"] == len(training["loss_history"]) == 5
    assert "--time-budget 5.5" in training["command"]
    # --init from the CLI: fine-tune the model just written.
    tuned = tmp_path / "tuned"
    assert (
        main([*args, "--out", str(tuned), "--epochs", "1", "--init", str(out / "model.onnx")]) == 0
    )
    assert "--init " in json.loads((tuned / "metrics.json").read_text())["training"]["command"]
    # --epochs caps a budget.
    assert (
        main([*args, "--out", str(tmp_path / "cap"), "--time-budget", "50", "--epochs", "2"]) == 0
    )
    capped = json.loads((tmp_path / "cap" / "metrics.json").read_text())["training"]
    assert capped["settings"]["epochs"] == 2
    with pytest.raises(ConfigurationError, match="time_budget"):
        train_module.train("synthetic", tmp_path / "bad", seed=4, train_count=2, time_budget=0)


@pytest.mark.slow
def test_init_starts_from_an_exported_model(tmp_path: Path) -> None:
    """Pretrain, then fine-tune: with learning rate 0 the fine-tuned model is the initial one."""
    from edgekit.errors import ConfigurationError, DataError
    from edgekit.model.torch_weights import onnx_weights
    from edgekit.model.train import train

    small = dict(seed=3, train_count=4, val_count=2, batch_size=2, threads=1)
    first = train("synthetic", tmp_path / "pre", epochs=1, **small)
    tuned = train("synthetic", tmp_path / "ft", epochs=1, lr=0.0, init=first.model_path, **small)
    before, after = onnx_weights(first.model_path), onnx_weights(tuned.model_path)
    assert before.keys() == after.keys()
    assert all(np.allclose(before[k], after[k]) for k in before)
    init = tuned.metrics["training"]["init"]
    assert init["path"] == str(first.model_path.resolve()) and len(init["sha256"]) == 64
    with pytest.raises(ConfigurationError, match="differs from the one to train"):
        train(
            "synthetic",
            tmp_path / "x",
            epochs=1,
            init=first.model_path,
            config=DetectorConfig(head_channels=16),
            **small,
        )
    with pytest.raises(DataError, match="initial model not found"):
        train("synthetic", tmp_path / "y", epochs=1, init=tmp_path / "none.onnx", **small)


def test_train_cli_init_values() -> None:
    from edgekit.cli.cmd_model import _init_arg
    from edgekit.model.train import DEFAULT_INIT

    assert _init_arg(None) == DEFAULT_INIT
    assert _init_arg("none") is None and _init_arg("None") is None
    assert _init_arg("model.onnx") == "model.onnx"
