"""A small CenterNet-style scratch detector built for CPU edge devices.

Why this shape: scratches are thin bright strokes whose boxes span 25-130
input pixels, so a stride-4 heatmap of box centres plus per-cell box size and
sub-cell offset (CenterNet) finds them without anchors or in-graph NMS. The
graph uses only Conv, Relu, Add, Resize (nearest) and a final Sigmoid, all of
which ONNX Runtime quantizes to int8 with static QDQ; batch norms are folded
into the convolutions before export. Peak finding runs in numpy
(:func:`edgekit.model.postprocess.decode`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture hyper-parameters; stored in the model metadata (``extra``)."""

    input_height: int = 256
    input_width: int = 384
    num_classes: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)  # strides 2, 4, 8, 16, 32
    neck_channels: int = 48
    head_channels: int = 32
    stride: int = 4

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetectorConfig:
        data = dict(data)
        data["widths"] = tuple(data["widths"])
        return cls(**data)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the batch norm into the convolution (for export and inference)."""
        if self.bn is None:
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(
            self.conv.in_channels,
            self.conv.out_channels,
            self.conv.kernel_size,
            self.conv.stride,
            self.conv.padding,
            bias=True,
        )
        fused.weight.copy_(self.conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = fused
        self.bn = None


class Residual(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (Add quantizes well)."""

    def __init__(self, channels: int):
        super().__init__()
        self.a = ConvBNReLU(channels, channels)
        self.b = ConvBNReLU(channels, channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class ScratchDetector(nn.Module):
    """Backbone (strides 2..32) + top-down neck to stride 4 + three heads.

    ``forward`` returns raw training outputs ``(heatmap_logits, size, offset)``;
    :class:`ExportWrapper` adds the sigmoid and names the outputs for ONNX.
    """

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config or DetectorConfig()
        c = self.config
        w = c.widths
        if c.stride not in (4, 8):
            raise ValueError(f"stride must be 4 or 8, got {c.stride}")
        self.stem = ConvBNReLU(3, w[0], stride=2)
        self.stages = nn.ModuleList()
        for cin, cout in zip(w[:-1], w[1:], strict=True):
            self.stages.append(nn.Sequential(ConvBNReLU(cin, cout, stride=2), Residual(cout)))
        # stage outputs have strides 4, 8, 16, 32; the neck goes down to c.stride.
        n_levels = int(math.log2(32 // c.stride)) + 1
        self.level_widths = list(w[-n_levels:])
        self.lateral = nn.ModuleList(
            ConvBNReLU(cw, c.neck_channels, k=1) for cw in self.level_widths
        )
        self.smooth = nn.ModuleList(
            ConvBNReLU(c.neck_channels, c.neck_channels) for _ in self.level_widths[:-1]
        )
        self.head_heat = self._head(c.num_classes)
        self.head_size = self._head(2)
        self.head_offset = self._head(2)
        prior = 0.05
        nn.init.constant_(self.head_heat[-1].bias, -math.log((1 - prior) / prior))

    def _head(self, out_channels: int) -> nn.Sequential:
        c = self.config
        return nn.Sequential(
            ConvBNReLU(c.neck_channels, c.head_channels),
            nn.Conv2d(c.head_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats = feats[-len(self.lateral) :]
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            y = self.smooth[i](y + self.lateral[i](feats[i]))
        return self.head_heat(y), self.head_size(y), self.head_offset(y)

    def fuse(self) -> ScratchDetector:
        """Fold every batch norm into its convolution; call in eval mode before export."""
        for module in self.modules():
            if isinstance(module, ConvBNReLU):
                module.fuse()
        return self


class ExportWrapper(nn.Module):
    """The inference graph: sigmoid heatmap plus the two regression maps."""

    output_names = ("heatmap", "size", "offset")

    def __init__(self, model: ScratchDetector):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        heat, size, offset = self.model(x)
        return torch.sigmoid(heat), size, offset


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def postprocess_spec(config: DetectorConfig) -> dict[str, Any]:
    """The ``ModelInfo.postprocess`` entry describing this detector's raw outputs."""
    return {
        "type": "centernet",
        "heatmap": "heatmap",
        "heatmap_activation": "none",
        "size": "size",
        "size_encoding": "log_stride",
        "offset": "offset",
        "stride": config.stride,
        "peak_kernel": 3,
        "max_detections": 50,
        "nms_iou": 0.6,
    }
