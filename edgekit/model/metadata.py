"""What a model needs around its graph, stored inside the ONNX file itself.

Every ONNX file edgekit writes carries its preprocessing, label map, score
threshold and output decoding as JSON strings in ``metadata_props`` under
``edgekit.*`` keys, so a bare file is self-describing: a device, a compiler or
a notebook can run it without a side-car file. ``onnx`` is imported lazily so
the dataclasses stay usable on a device that only has numpy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import onnx

PREFIX = "edgekit."
FORMAT_VERSION = 1
DEFAULT_SCORE_THRESHOLD = 0.3

#: Keys every edgekit ONNX file must carry.
REQUIRED_KEYS: tuple[str, ...] = (
    "edgekit.format_version",
    "edgekit.preprocessing",
    "edgekit.labels",
    "edgekit.score_threshold",
    "edgekit.postprocess",
)
#: Keys written every time but tolerated when absent (older or hand-made files).
OPTIONAL_KEYS: tuple[str, ...] = ("edgekit.source_sha256", "edgekit.extra")


FITS: tuple[str, ...] = ("stretch", "letterbox")
"""How an image is fitted to the input size: ``stretch`` resizes width and height
independently; ``letterbox`` keeps the aspect ratio, centres the image and fills the
rest with ``pad_value`` (grey level 0-255; ultralytics YOLO uses 114)."""
DEFAULT_PAD_VALUE = 114


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB uint8 image becomes the model's input tensor (see :data:`FITS` for ``fit``)."""

    input_name: str
    height: int
    width: int
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    resize: str = "bilinear"
    dtype: str = "float32"
    fit: str = "stretch"
    pad_value: int = DEFAULT_PAD_VALUE

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelError(f"preprocessing.channel_order={self.channel_order!r}: use RGB or BGR")
        if self.layout not in ("NCHW", "NHWC"):
            raise ModelError(f"preprocessing.layout={self.layout!r}: use NCHW or NHWC")
        if self.resize not in ("bilinear", "nearest", "bicubic"):
            raise ModelError(
                f"preprocessing.resize={self.resize!r}: use bilinear, nearest or bicubic"
            )
        if self.fit not in FITS:
            raise ModelError(f"preprocessing.fit={self.fit!r}: use {' or '.join(FITS)}")
        if not 0 <= int(self.pad_value) <= 255:
            raise ModelError(f"preprocessing.pad_value={self.pad_value!r}: use a grey level 0-255")
        object.__setattr__(self, "pad_value", int(self.pad_value))
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise ModelError(f"preprocessing size {self.width}x{self.height} must be positive")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelError("preprocessing.mean and .std need 3 values each, std > 0")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        if self.fit == "stretch":  # the default: files written before letterbox existed stay same
            del data["fit"], data["pad_value"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessing:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"preprocessing has unknown field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class ModelInfo:
    """Everything besides the graph that is needed to run and decode a model.

    ``postprocess`` names the raw outputs and their layout (see
    :mod:`edgekit.model.postprocess`); ``source_sha256`` is the hash of the
    model a compiled file was made from (None for a trained model); ``extra``
    holds free-form facts such as the training run or the compiler settings.
    """

    preprocessing: Preprocessing
    labels: dict[int, str]
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    postprocess: dict[str, Any] = field(default_factory=dict)
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self, class_id: int) -> str:
        return self.labels.get(int(class_id), str(class_id))

    def replace(self, **changes: Any) -> ModelInfo:
        from dataclasses import replace

        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "preprocessing": self.preprocessing.to_json(),
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "score_threshold": float(self.score_threshold),
            "postprocess": self.postprocess,
            "source_sha256": self.source_sha256,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = "model info") -> ModelInfo:
        for key in ("preprocessing", "labels", "postprocess"):
            if key not in data:
                raise ModelError(f"{where}: field {key!r} is missing")
        try:
            return cls(
                preprocessing=Preprocessing.from_json(dict(data["preprocessing"])),
                labels={int(k): str(v) for k, v in dict(data["labels"]).items()},
                score_threshold=float(data.get("score_threshold", DEFAULT_SCORE_THRESHOLD)),
                postprocess=dict(data["postprocess"]),
                source_sha256=data.get("source_sha256"),
                extra=dict(data.get("extra") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: invalid model info: {exc}") from exc


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _load(path_or_model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, "<in-memory ONNX model>"
    path = Path(path_or_model)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        # Metadata lives in the main file; external weights are not needed for it.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others without a common base
        raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    return model, str(path)


def read_model_info(path_or_model: str | Path | onnx.ModelProto) -> ModelInfo:
    """Read the ``edgekit.*`` metadata of an ONNX file or in-memory model."""
    model, where = _load(path_or_model)
    props = _props(model)
    values: dict[str, Any] = {}
    for key in REQUIRED_KEYS + OPTIONAL_KEYS:
        if key not in props:
            if key in OPTIONAL_KEYS:
                continue
            raise ModelError(
                f"{where}: metadata key {key!r} is missing; this ONNX file was not written by "
                "edgekit (export it with edgekit.model.export.export_onnx or add the metadata "
                "with edgekit.model.metadata.write_model_info; an ultralytics YOLO detection "
                "export becomes one with `edgekit compile --model FILE --format yolo`)"
            )
        try:
            values[key[len(PREFIX) :]] = json.loads(props[key])
        except json.JSONDecodeError as exc:
            raise ModelError(f"{where}: metadata key {key!r} is not valid JSON ({exc})") from exc
    version = values.pop("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{where}: metadata format_version {version!r} is not supported "
            f"(this edgekit reads {FORMAT_VERSION})"
        )
    return ModelInfo.from_json(values, where=where)


def write_model_info(model: onnx.ModelProto, info: ModelInfo) -> onnx.ModelProto:
    """Store ``info`` in ``model.metadata_props`` (replacing older edgekit keys); returns model."""
    data = info.to_json()
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in keep:
        model.metadata_props.add(key=key, value=value)
    for name, value in data.items():
        model.metadata_props.add(key=PREFIX + name, value=json.dumps(value, sort_keys=True))
    return model
