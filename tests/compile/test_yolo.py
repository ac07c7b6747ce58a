"""Bring your own YOLO: detect an ultralytics-format detector, compile it, run it everywhere.

The model is :func:`edgekit.compile.testing.build_yolo_model`: the shipped detector's
convolutions behind an ultralytics-like head (DFL, anchors, sigmoid, final Concat), with
ultralytics' metadata. No ultralytics is installed or imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from edgekit.cli import main
from edgekit.compile import CompileOptions, compile_model, read_compile_info
from edgekit.compile.testing import build_tiny_model, build_yolo_model
from edgekit.compile.yolo import HEAD_REASON, head_nodes, source_format, yolo_model_info
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.errors import CompileError, ModelError, ParityError
from edgekit.model.metadata import read_model_info
from edgekit.model.predict import Predictor

pytest.importorskip("torch")  # the test model is exported from the shipped detector
pytestmark = pytest.mark.train

GOLDEN = 24  # parity images: AP50 is ~0.85 on them in float, 0.000 with every node int8


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yolo")


@pytest.fixture(scope="module")
def yolo(work: Path) -> Path:
    return build_yolo_model(work / "source" / "yolo.onnx")


@pytest.fixture(scope="module")
def int8(work: Path, yolo: Path) -> Path:
    """``edgekit compile`` on the YOLO file, format auto-detected; the output folder."""
    out = work / "int8"
    args = ["compile", "--model", str(yolo), "--target", "onnxruntime-int8", "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--golden-count", str(GOLDEN), "--calibration-count", "8"]) == 0
    (work / "int8-table.txt").write_text(printed.getvalue())
    return out


@pytest.fixture(scope="module")
def images(work: Path) -> Path:
    folder = work / "images"
    folder.mkdir()
    for i, (image, _) in enumerate(SyntheticTagScratches(3, seed=7)):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


# --- recognising the format ---------------------------------------------------------------


def test_yolo_export_is_detected_and_described(yolo: Path) -> None:
    assert source_format(yolo) == "yolo"
    assert source_format(yolo, "yolo") == "yolo"
    info = yolo_model_info(onnx.load(str(yolo)), str(yolo))
    pre = info.preprocessing
    assert (pre.input_name, pre.height, pre.width) == ("images", 384, 384)
    assert (pre.fit, pre.pad_value, pre.scale, pre.mean, pre.std) == (
        "letterbox",
        114,
        1 / 255,
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )
    assert info.labels == {0: "scratch"}  # from the metadata's names
    assert info.postprocess["type"] == "yolo" and info.postprocess["output"] == "output0"
    assert info.extra["ultralytics"]["task"] == "detect"


def test_a_model_that_is_neither_is_refused_naming_file_and_expectation(
    yolo: Path, tmp_path: Path
) -> None:
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    bare = onnx.load(str(tiny))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelError, match="bare.onnx: metadata key .* nor is it an ultralytics"):
        source_format(tmp_path / "bare.onnx")
    with pytest.raises(ModelError, match=r"tiny.onnx: not a YOLO .* 3 output\(s\)"):
        source_format(tiny, "yolo")
    with pytest.raises(ModelError, match="yolo.onnx: metadata key 'edgekit.format_version'"):
        source_format(yolo, "edgekit")
    with pytest.raises(ModelError, match="`edgekit compile --model FILE --format yolo`"):
        Predictor(yolo)  # a raw export is compiled first: that is where its metadata comes from
    args = ["compile", "--model", str(yolo), "--target", "onnxruntime-fp32"]
    assert main([*args, "--format", "edgekit", "--out", str(tmp_path / "out")]) == 1


def test_yolo_graph_without_ultralytics_metadata_needs_format_yolo(
    yolo: Path, tmp_path: Path
) -> None:
    proto = onnx.load(str(yolo))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelError, match="lacks ultralytics' task='detect' and names.*--format"):
        source_format(tmp_path / "plain.onnx")
    assert source_format(tmp_path / "plain.onnx", "yolo") == "yolo"
    assert yolo_model_info(proto, "plain.onnx").labels == {0: "0"}
    proto.metadata_props.add(key="names", value="{0: 'a', 1: 'b'}")
    with pytest.raises(ModelError, match="'names' has 2 class.*1 score rows.*nms=False"):
        yolo_model_info(proto, "plain.onnx")
    del proto.metadata_props[:]
    proto.metadata_props.add(key="names", value="{'zero': 'a'}")
    with pytest.raises(ModelError, match="plain.onnx: metadata 'names' = .* must map class ids"):
        yolo_model_info(proto, "plain.onnx")
    proto.metadata_props.add(key="task", value="pose")
    onnx.save(proto, str(tmp_path / "pose.onnx"))
    with pytest.raises(ModelError, match="pose.onnx: .*task='pose'; edgekit runs detection"):
        source_format(tmp_path / "pose.onnx")


def test_head_nodes_stop_at_the_last_convolutions(yolo: Path) -> None:
    proto = onnx.load(str(yolo))
    names = head_nodes(proto)
    ops = {n.name: n.op_type for n in proto.graph.node}
    kinds = {ops[n] for n in names}
    assert {"Concat", "Slice", "Softmax", "Transpose", "Sigmoid", "Mul", "Sub", "Div"} <= kinds
    convs = [n for n in names if ops[n] == "Conv"]
    assert convs == ["/dfl/conv/Conv"]  # the DFL expectation is decoding, not a learned layer
    learned = [n.name for n in proto.graph.node if n.op_type == "Conv" and n.name not in names]
    assert "/detector/head_heat/head_heat.1/Conv" in learned  # the class branch's last conv
    last = proto.graph.node[-1]
    assert last.op_type == "Concat" and last.name in names


def test_cached_yolo_compile_keeps_its_format(yolo: Path, tmp_path: Path) -> None:
    from edgekit.compile import CompileCache

    cache = CompileCache(tmp_path / "cache")
    first = compile_model(yolo, "onnxruntime-fp32", tmp_path / "a", golden_count=2, cache=cache)
    again = compile_model(yolo, "onnxruntime-fp32", tmp_path / "b", golden_count=2, cache=cache)
    assert not first.from_cache and again.from_cache
    assert again.compile_info["source_format"] == "yolo"
    assert read_model_info(again.model_path).postprocess["type"] == "yolo"


def test_a_stretched_models_manifest_has_no_letterbox_fields(tmp_path: Path) -> None:
    from edgekit.agent.testing import signed_package

    pkg = signed_package(tmp_path)  # the tiny edgekit detector: stretch, the default fit
    with tarfile.open(pkg.package) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert "fit" not in manifest["preprocessing"] and "pad_value" not in manifest["preprocessing"]


# --- int8: the head stays float, the gate refuses a model without that -------------------


@pytest.mark.slow
def test_int8_keeps_ap50_and_records_the_excluded_head(int8: Path, work: Path) -> None:
    report = json.loads((int8 / "compile_report.json").read_text())
    table = (work / "int8-table.txt").read_text()
    assert "kept in float  " in table and "node(s): the YOLO head after its last" in table
    assert report["status"] == "passed"
    parity = report["parity"]
    assert parity["images"] == GOLDEN and parity["reference"] == "ground truth"
    assert parity["source_ap50"] > 0.6  # a real detector, letterbox undone correctly
    assert parity["source_ap50"] - parity["compiled_ap50"] <= 0.01
    record = report["compile"]
    assert record["source_format"] == "yolo"
    assert record["nodes_excluded_because"] == HEAD_REASON
    excluded = set(record["nodes_to_exclude"])
    assert "/dfl/conv/Conv" in excluded and len(excluded) > 10
    compiled = onnx.load(str(int8 / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in compiled.graph.node)
    assert compiled.graph.node[-1].op_type == "Concat"  # the output is float, not dequantized
    assert read_compile_info(int8 / "model.onnx")["nodes_to_exclude"] == record["nodes_to_exclude"]
    info = read_model_info(int8 / "model.onnx")
    assert info.preprocessing.fit == "letterbox" and info.labels == {0: "scratch"}
    assert info.source_sha256 == report["source"]["sha256"]


@pytest.mark.slow
def test_parity_gate_refuses_int8_of_every_node(yolo: Path, tmp_path: Path) -> None:
    everything = CompileOptions(extra={"nodes_to_exclude": []})
    # Refused, and not narrowly: every node in int8 loses most of the AP50.
    lost = r"AP50 dropped from 0\.\d+ \(yolo.onnx\) to 0\.\d+ .*, a loss of 0\.[3-9]"
    with pytest.raises(ParityError, match=lost):
        compile_model(
            yolo,
            "onnxruntime-int8",
            tmp_path,
            calibration_count=8,
            golden_count=8,
            options=everything,
            source_format="yolo",
        )
    report = json.loads((tmp_path / "compile_report.json").read_text())
    assert report["status"] == "failed" and report["compile"]["nodes_to_exclude"] == []
    typo = CompileOptions(extra={"nodes_to_exclude": ["/Concat_3", "/no/such/node"]})
    with pytest.raises(CompileError, match="yolo.onnx: nodes_to_exclude names .*/no/such/node"):
        compile_model(yolo, "onnxruntime-int8", tmp_path / "typo", options=typo)


# --- the compiled model runs unchanged in predict, evaluate, the agent and the device app ---


@pytest.mark.slow
def test_cli_predict_and_evaluate_the_compiled_model(
    int8: Path, images: Path, tmp_path: Path, capsys
) -> None:
    model = int8 / "model.onnx"
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", "--model", str(model), "--images", str(images), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3
    detections = [d for r in records for d in r["detections"]]
    assert detections and {d["label"] for d in detections} == {"scratch"}
    for d in detections:  # boxes in the 450x300 photo's pixels, not the 384x384 input's
        left, top, width, height = d["box"]
        assert left >= 0 and top >= 0 and left + width <= 450 and top + height <= 300
    capsys.readouterr()
    result = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--count", "8", "--out", str(result)]) == 0
    assert "AP50" in capsys.readouterr().out
    assert json.loads(result.read_text())["ap50"] > 0.5


@pytest.fixture(scope="module")
def agent_dir() -> Iterator[Path]:
    from edgekit.agent.testing import short_tempdir

    path = short_tempdir("ek-yolo-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.integration
def test_agent_and_device_app_decode_the_same_boxes(int8: Path, agent_dir: Path) -> None:
    from edgekit.agent.client import AgentClient
    from edgekit.agent.server import AgentServer
    from edgekit.agent.testing import signed_package
    from edgekit.edge.inference import Frame, Inspector

    pkg = signed_package(agent_dir, name="yolo-detector", model=int8 / "model.onnx")
    folder = agent_dir / "installed"
    with tarfile.open(pkg.package) as tar:
        tar.extractall(folder, filter="data")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["preprocessing"]["fit"] == "letterbox"
    assert manifest["postprocess"]["type"] == "yolo" and manifest["labels"] == {"0": "scratch"}
    image, _ = SyntheticTagScratches(1, seed=7)[0]
    want = Predictor(int8 / "model.onnx").predict(image)
    assert want, "the synthetic image has scratches the model finds"
    server = AgentServer(agent_dir / "agent.sock", pkg.public_key).start()
    try:
        with AgentClient(server.socket_path) as client:
            inspector = Inspector(client)
            inspector.load("yolo", folder)
            got = inspector.inspect_frame(Frame("img.png", image, time.time())).detections
    finally:
        server.stop()
    assert [d.label for d in got] == [d.label for d in want]
    for a, b in zip(got, want, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert np.allclose(
            [a.box.left, a.box.top, a.box.width, a.box.height],
            [b.box.left, b.box.top, b.box.width, b.box.height],
            atol=1e-3,
        )


def _three_level_detect(path: Path, classes: int = 3, reg_max: int = 16) -> Path:
    """Random weights, ultralytics' Detect head layout: 3 levels (strides 8, 16, 32), cv2/cv3."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def branch(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, cout, 1))

    class Detect(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.ModuleList(
                nn.Conv2d(cin, cout, 3, stride=s, padding=1)
                for cin, cout, s in ((3, 8, 8), (8, 8, 2), (8, 8, 2))
            )
            self.cv2 = nn.ModuleList(branch(8, 4 * reg_max) for _ in range(3))
            self.cv3 = nn.ModuleList(branch(8, classes) for _ in range(3))
            self.dfl = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
            self.dfl.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, -1, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            levels, anchors, strides = [], [], []
            for i, (conv, stride) in enumerate(zip(self.backbone, (8, 16, 32), strict=True)):
                x = nn.functional.silu(conv(x))
                h, w = x.shape[2:]
                levels.append(torch.cat((self.cv2[i](x), self.cv3[i](x)), 1).view(1, -1, h * w))
                ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
                anchors.append(torch.stack((xs.reshape(-1), ys.reshape(-1))))
                strides.append(torch.full((1, h * w), float(stride)))
            box, cls = torch.cat(levels, 2).split((4 * reg_max, classes), 1)
            a = box.shape[2]
            dist = self.dfl(box.view(1, 4, reg_max, a).transpose(2, 1).softmax(1)).view(1, 4, a)
            lt, rb = dist.chunk(2, 1)
            anchor, stride = torch.cat(anchors, 1)[None], torch.cat(strides, 1)[None]
            x1y1, x2y2 = anchor - lt, anchor + rb
            dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
            return torch.cat((dbox, cls.sigmoid()), 1)

    with warnings.catch_warnings():  # the TorchScript exporter is deprecated; fine here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Detect().eval(),
            (torch.zeros(1, 3, 128, 128),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["output0"],
        )
    proto = onnx.load(str(path))
    for key, value in (("task", "detect"), ("names", str({i: f"c{i}" for i in range(classes)}))):
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def test_head_of_a_three_level_detect_ends_at_every_levels_last_convs(tmp_path: Path) -> None:
    path = _three_level_detect(tmp_path / "detect.onnx")
    assert source_format(path) == "yolo"
    proto = onnx.load(str(path))
    head = set(head_nodes(proto))
    producers = {out: n for n in proto.graph.node for out in n.output}
    # Every learned layer that feeds the head directly is a box or class branch's last 1x1 conv.
    boundary = {
        producers[i].name
        for n in proto.graph.node
        if n.name in head
        for i in n.input
        if i in producers and producers[i].name not in head and producers[i].op_type == "Conv"
    }
    assert boundary == {f"/cv{b}.{i}/cv{b}.{i}.2/Conv" for b in (2, 3) for i in range(3)}
    assert [n.name for n in proto.graph.node if n.name in head and n.op_type == "Conv"] == [
        "/dfl/Conv"
    ]
    assert not any("backbone" in name for name in head)
