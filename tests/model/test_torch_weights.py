"""A PyTorch detector rebuilt from an exported ONNX file computes what ONNX Runtime computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.errors import ModelError  # noqa: E402
from edgekit.model import default_model_path  # noqa: E402
from edgekit.model.postprocess import preprocess  # noqa: E402
from edgekit.model.predict import Predictor  # noqa: E402

pytestmark = pytest.mark.train


def _image() -> np.ndarray:
    from edgekit.data.synthetic import render

    image, _ = render(3, 0)
    return image


def _assert_same_outputs(path: Path, atol: float = 1e-4) -> None:
    from edgekit.model.torch_weights import TorchPredictor

    ort = Predictor(path, threads=1)
    eager = TorchPredictor(path)
    image = _image()
    tensor = preprocess(image, ort.info.preprocessing)
    expected, got = ort.run(tensor), eager.run(tensor)
    assert set(expected) == set(got)
    for name in expected:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=atol, err_msg=name)
    ort_boxes = ort.predict(image, score_threshold=0.1)
    eager_boxes = eager.predict(image, score_threshold=0.1)
    assert len(eager_boxes) == len(ort_boxes)
    for a, b in zip(eager_boxes, ort_boxes, strict=True):
        assert abs(a.score - b.score) < 1e-4
        assert np.allclose(a.box.xyxy(), b.box.xyxy(), atol=1e-2)


def test_shipped_model_outputs_match_onnxruntime() -> None:
    _assert_same_outputs(default_model_path())


def test_architecture_is_inferred_when_metadata_lacks_it(tmp_path: Path) -> None:
    """A non-default detector exported without the training record still loads exactly."""
    import torch

    from edgekit.model.detector import DetectorConfig, ScratchDetector
    from edgekit.model.export import export_onnx
    from edgekit.model.torch_weights import load_detector
    from edgekit.model.train import model_info

    config = DetectorConfig(
        input_height=64, input_width=96, widths=(8, 12, 16, 20, 24), neck_channels=16,
        head_channels=8, stride=8, num_classes=2,
    )  # fmt: skip
    torch.manual_seed(1)
    model = ScratchDetector(config)
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    path = export_onnx(model.eval(), tmp_path / "tiny.onnx", model_info(config, {0: "a"}, {}))
    rebuilt, _ = load_detector(path)
    assert rebuilt.config == config
    _assert_same_outputs(path)


def test_fp32_compiled_model_keeps_the_weights(tmp_path: Path) -> None:
    """ONNX Runtime's offline optimization fuses ops but keeps the named float weights."""
    from edgekit.compile.onnxruntime_fp32 import optimize_offline

    optimized = tmp_path / "optimized.onnx"
    optimize_offline(default_model_path(), optimized)
    _assert_same_outputs(optimized)


def test_renamed_weights_are_refused(tmp_path: Path) -> None:
    """Quantized or foreign graphs lack the detector's names: a ModelError says which."""
    import onnx

    from edgekit.model.torch_weights import load_detector

    proto = onnx.load(str(default_model_path()))
    old, new = "model.stem.conv.weight", "model.stem.conv.weight_quantized"
    for tensor in proto.graph.initializer:
        if tensor.name == old:
            tensor.name = new
    for node in proto.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    path = tmp_path / "renamed.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=r"renamed\.onnx: 1 detector weight.*stem\.conv\.weight"):
        load_detector(path)
