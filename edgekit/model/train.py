"""Train the scratch detector on synthetic renders or a Ground Truth data set.

``train("synthetic", out)`` renders fresh images on the fly (image ``i`` of
epoch ``e`` is a pure function of ``(seed, e * per_epoch + i)``) and validates
on the fixed :func:`~edgekit.model.evaluate.synthetic_validation` set;
``train(folder, out)`` splits a Ground Truth folder by photo with
``split_dataset(val_fraction=0.2, seed=0)`` (the split does not move with the
training seed, so ``edgekit evaluate --split val`` sees the same images) and
augments the training part. Both write ``model.onnx`` (with metadata) and
``metrics.json`` whose numbers come from the exported ONNX file, not from
PyTorch, so they describe exactly what ships.

``time_budget`` (``edgekit train --time-budget SECONDS``) trades time for
accuracy: instead of a fixed number of epochs, the training loop runs epochs
until the budget is spent, and the cosine learning-rate schedule is re-planned
after every epoch to end at the budget (total epochs = budget / mean epoch
time so far, as ultralytics' ``time`` does); ``epochs``, when also given, caps
it. The number of epochs therefore depends on the machine; ``metrics.json``
records the epochs reached and the budget. Loading, export and validation
come on top of the budget.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgekit.data.groundtruth import load_dataset
from edgekit.data.images import load_image
from edgekit.data.split import split_dataset
from edgekit.data.synthetic import render
from edgekit.data.types import Box
from edgekit.errors import ConfigurationError, DataError
from edgekit.files import sha256_file
from edgekit.model import PRETRAINED_SYNTHETIC
from edgekit.model import augment as aug
from edgekit.model.batches import Batches
from edgekit.model.detector import (
    DetectorConfig,
    ScratchDetector,
    parameter_count,
    postprocess_spec,
)
from edgekit.model.evaluate import (
    SPLIT_SEED,
    VAL_FRACTION,
    VALIDATION_SEED,
    evaluate,
    synthetic_validation,
)
from edgekit.model.export import export_onnx
from edgekit.model.metadata import DEFAULT_SCORE_THRESHOLD, ModelInfo, Preprocessing
from edgekit.model.predict import Predictor
from edgekit.model.torch_weights import load_detector
from edgekit.progress import progress
from edgekit.spelling import parameter_text

#: Defaults sized to finish inside 10 (synthetic) and 20 (a folder) minutes on 2 CPU cores.
#: On a folder, training starts from the synthetic-pretrained detector (fine-tuning, at the
#: lower learning rate) with mosaic augmentation: see docs/detector-recipe.md.
#: ``input_size`` is (width, height); another size keeps every weight of the start model
#: (``--input-size``; docs/detector-recipe.md has what larger inputs gave).
SYNTHETIC_DEFAULTS = {"epochs": 5, "train_count": 1000, "lr": 3e-3, "input_size": (384, 256)}
REAL_DEFAULTS = {"epochs": 200, "lr": 1e-3, "scratch_lr": 3e-3, "input_size": (384, 256)}
#: The backbone halves the input five times: both sides must divide by this.
INPUT_MULTIPLE = 32
#: ``init`` value: the default start (pretrained for a folder, none for synthetic data).
DEFAULT_INIT = "default"


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    train_count: int | None = None  # synthetic images per epoch / real images used
    val_count: int = 200
    threads: int = 2
    time_budget: float | None = None  # seconds of training loop; epochs then only a cap

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainResult:
    model_path: Path
    metrics_path: Path
    metrics: dict[str, Any]
    seconds: float
    model: ScratchDetector = field(repr=False)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalized by the number of centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.ge(0.999).float()
    neg_weight = torch.pow(1 - target, 4)
    pos_loss = torch.log(p) * torch.pow(1 - p, 2) * pos
    neg_loss = torch.log(1 - p) * torch.pow(p, 2) * neg_weight * (1 - pos)
    num_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def regression_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    loss = F.smooth_l1_loss(pred, target, reduction="none", beta=0.1) * weight
    return loss.sum() / weight.sum().clamp(min=1.0) / pred.shape[1]


def _synthetic_source(
    seed: int, per_epoch: int
) -> Callable[[int, int], tuple[np.ndarray, list[Box]]]:
    if seed == VALIDATION_SEED:
        raise ConfigurationError(
            f"seed {VALIDATION_SEED} renders the synthetic validation set; pick another --seed"
        )

    def get(epoch: int, index: int) -> tuple[np.ndarray, list[Box]]:
        return render(seed, epoch * per_epoch + index)

    return get


def _real_source(path: Path, limit: int | None) -> tuple[Callable, int, Any, dict[str, Any]]:
    dataset = load_dataset(path)
    train_set, val_set = split_dataset(dataset, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    samples = list(train_set.samples)[:limit] if limit else list(train_set.samples)
    if not samples:
        raise DataError(
            "the training split is empty; the data set needs more photos", path=str(path)
        )
    cache = [(load_image(s.image_path), list(s.boxes)) for s in samples]

    def get(epoch: int, index: int) -> tuple[np.ndarray, list[Box]]:
        return cache[index]

    split = {
        "val_fraction": VAL_FRACTION,
        "split_seed": SPLIT_SEED,
        "train_images": len(samples),
        "val_images": len(val_set),
        "max_class_id": max((b.class_id for s in dataset.samples for b in s.boxes), default=0),
    }
    return get, len(samples), val_set, split


def _lr_at(step: int, total: int, settings: TrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress_frac = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
    return settings.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress_frac, 1.0))))


def _planned_epochs(budget: float, elapsed: float, done: int, cap: int | None) -> int:
    """Epochs that fit in ``budget`` seconds at the mean epoch time so far (at least ``done``).

    Training stops after epoch ``done`` when one more epoch would overrun the budget.
    """
    mean = elapsed / max(done, 1)
    fit = done if elapsed + mean > budget else max(done + 1, int(budget // max(mean, 1e-9)))
    return min(fit, cap) if cap is not None else fit


def _initial_model(path: Path, config: DetectorConfig) -> ScratchDetector:
    """The weights of an exported edgekit model (batch norms folded) as a trainable detector.

    The network is fully convolutional, so another input size keeps every weight; with
    another number of classes, every weight but the class heatmap's last convolution
    carries over (that one starts fresh, as in any detector fine-tuned to new classes).
    """
    if not path.is_file():
        raise DataError(
            "initial model not found (give an ONNX file written by edgekit train)", path=str(path)
        )
    loaded, _ = load_detector(path)
    same_shape = replace(
        config,
        input_height=loaded.config.input_height,
        input_width=loaded.config.input_width,
        num_classes=loaded.config.num_classes,
    )
    if loaded.config != same_shape:
        raise ConfigurationError(
            f"{path}: its detector ({loaded.config.to_json()}) differs from the one to train "
            f"({config.to_json()}); start from a model with the same architecture"
        )
    model = ScratchDetector(config).fuse()
    state = model.state_dict()
    kept = {k: v for k, v in loaded.state_dict().items() if v.shape == state[k].shape}
    state.update(kept)
    model.load_state_dict(state)
    return model.train()


def model_info(config: DetectorConfig, labels: dict[int, str], extra: dict[str, Any]) -> ModelInfo:
    return ModelInfo(
        preprocessing=Preprocessing(
            input_name="image", height=config.input_height, width=config.input_width
        ),
        labels=labels,
        score_threshold=DEFAULT_SCORE_THRESHOLD,
        postprocess=postprocess_spec(config),
        source_sha256=None,
        extra=extra,
    )


def train(
    data: str | Path,
    out_dir: str | Path,
    epochs: int | None = None,
    seed: int = 0,
    *,
    train_count: int | None = None,
    val_count: int | None = None,
    batch_size: int = 16,
    lr: float | None = None,
    threads: int | None = None,
    config: DetectorConfig | None = None,
    command: str | None = None,
    time_budget: float | None = None,
    init: str | Path | None = DEFAULT_INIT,
    augment: aug.AugmentConfig | None = None,
    close_mosaic: int = 10,
    input_size: tuple[int, int] | None = None,
) -> TrainResult:
    """Train, export ``out_dir/model.onnx`` and write ``out_dir/metrics.json``.

    ``data`` is ``"synthetic"`` or a Ground Truth folder (``labels.csv`` +
    images). ``train_count`` is the number of synthetic images per epoch (or a
    cap on the real training images), ``val_count`` the number of synthetic
    validation images; both exist to make smoke tests fast. ``time_budget``
    (seconds) trains until the budget instead of for ``epochs`` (then a cap;
    see the module docstring). ``init`` is an edgekit ONNX model to start from
    (pretraining, then fine-tuning on ``data``; its batch norms are folded, so the
    fine-tuned network has none), ``None`` to train from scratch; the default starts a
    folder's training from the synthetic-pretrained detector
    (:data:`edgekit.model.PRETRAINED_SYNTHETIC`) and synthetic training from scratch.
    ``lr`` defaults to 1e-3 when fine-tuning and 3e-3 from scratch. ``input_size``
    ``(width, height)`` defaults to 384 x 256 (``config``'s size when a config is given).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    synthetic = str(data) == "synthetic"
    defaults = SYNTHETIC_DEFAULTS if synthetic else REAL_DEFAULTS
    if config is None:
        width, height = input_size or defaults["input_size"]
        config = DetectorConfig(input_height=int(height), input_width=int(width))
    elif input_size is not None:
        config = replace(config, input_width=int(input_size[0]), input_height=int(input_size[1]))
    if (
        config.input_width % INPUT_MULTIPLE
        or config.input_height % INPUT_MULTIPLE
        or min(config.input_width, config.input_height) < INPUT_MULTIPLE
    ):
        raise ConfigurationError(
            f"input size {config.input_width}x{config.input_height}: width and height must be "
            f"multiples of {INPUT_MULTIPLE} (e.g. 416x256)"
        )
    if isinstance(init, str) and init == DEFAULT_INIT:
        init = None if synthetic else PRETRAINED_SYNTHETIC
    if lr is None:
        lr = defaults["lr"] if init is not None else defaults.get("scratch_lr", defaults["lr"])
    settings = TrainSettings(
        epochs=int(epochs if epochs is not None else defaults["epochs"]),
        batch_size=batch_size,
        lr=float(lr),
        train_count=train_count,
        val_count=int(val_count if val_count is not None else 200),
        threads=int(threads or min(2, os.cpu_count() or 1)),
        time_budget=None if time_budget is None else float(time_budget),
    )
    if settings.epochs < 1:
        raise ConfigurationError(f"{parameter_text('epochs', settings.epochs)}: must be 1 or more")
    if settings.time_budget is not None and not settings.time_budget > 0:
        raise ConfigurationError(
            f"{parameter_text('time_budget', time_budget)}: give a number of seconds above 0"
        )
    # With a budget, --epochs is only a cap (none when not given).
    epoch_cap = epochs if settings.time_budget is None or epochs is not None else None

    labels = {0: "scratch"}
    if synthetic:
        per_epoch = int(train_count or SYNTHETIC_DEFAULTS["train_count"])
        settings.train_count = per_epoch
        get = _synthetic_source(seed, per_epoch)
        count = per_epoch
        val_data: Any = synthetic_validation(settings.val_count)
        data_desc: dict[str, Any] = {
            "kind": "synthetic",
            "train": f"render(seed={seed}, index=epoch*{per_epoch}+i), fresh images every epoch",
            "validation": f"synthetic_validation({settings.val_count}) (seed {VALIDATION_SEED})",
        }
        augment_cfg = aug.SYNTHETIC
    else:
        path = Path(data)
        if not path.exists():
            raise DataError(
                "data folder not found (give a Ground Truth folder or 'synthetic')", path=str(path)
            )
        get, count, val_data, split = _real_source(path, train_count)
        labels = dict(getattr(val_data, "labels", labels) or labels)
        num_classes = max(max(labels), split["max_class_id"]) + 1
        if config.num_classes < num_classes:
            config = replace(config, num_classes=num_classes)
        data_desc = {"kind": "ground_truth", "path": str(path.resolve()), **split}
        augment_cfg = aug.REAL
    if augment is not None:
        augment_cfg = augment

    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    model = ScratchDetector(config)
    init_desc = None
    if init is not None:
        model = _initial_model(Path(init), config)
        init_desc = {"path": str(Path(init).resolve()), "sha256": sha256_file(init)}
    batches = Batches(
        get, count, model_info(config, labels, {}).preprocessing, config, augment_cfg, seed
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    steps_per_epoch = len(batches.epoch(0, settings.batch_size))
    planned = settings.epochs
    if settings.time_budget is not None:
        # Until the first epoch is timed: plan for the cap (or the default), warm up within it.
        planned = int(epoch_cap or settings.epochs)
        settings.warmup_steps = min(settings.warmup_steps, steps_per_epoch)
    total = steps_per_epoch * planned
    settings.warmup_steps = min(settings.warmup_steps, max(1, total // 10))

    step = 0
    epoch = 0
    history: list[dict[str, float]] = []
    model.train()
    loop_started = time.perf_counter()
    with progress(total=total, desc="train", unit="batch") as bar:
        while epoch < planned:
            batches.mosaic_until = planned - close_mosaic
            sums = np.zeros(3)
            for indices in batches.epoch(epoch, settings.batch_size):
                x, heat, size, offset, weight = batches.batch(epoch, indices)
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total, settings)
                p_heat, p_size, p_offset = model(x)
                losses = (
                    focal_loss(p_heat, heat),
                    regression_loss(p_size, size, weight),
                    regression_loss(p_offset, offset, weight),
                )
                loss = losses[0] + losses[1] + losses[2]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
                sums += [v.item() for v in losses]
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            history.append(
                dict(
                    zip(
                        ("heatmap", "size", "offset"),
                        (sums / steps_per_epoch).round(4).tolist(),
                        strict=True,
                    )
                )
            )
            epoch += 1
            if settings.time_budget is not None:
                elapsed = time.perf_counter() - loop_started
                planned = _planned_epochs(settings.time_budget, elapsed, epoch, epoch_cap)
                total = steps_per_epoch * planned
                bar.total = total
                bar.refresh()
    settings.epochs = epoch
    model.eval()
    train_seconds = time.perf_counter() - started

    training = {
        "data": data_desc,
        "settings": settings.to_json(),
        "augment": {**augment_cfg.to_json(), "close_mosaic": close_mosaic},
        "detector": config.to_json(),
        "parameters": parameter_count(model),
        "seed": seed,
        "init": init_desc,
        "command": command or f"edgekit.model.train.train(data={str(data)!r}, seed={seed})",
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    info = model_info(config, labels, {"training": training})
    model_path = export_onnx(model, out / "model.onnx", info)

    result = evaluate(
        Predictor(model_path, threads=settings.threads), val_data, progress_desc="validate"
    )
    seconds = time.perf_counter() - started
    metrics = {
        "validation": result.to_json(include_images=False, max_curve_points=101),
        "training": {
            **training,
            "loss_history": history,
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(seconds, 1),
        },
        "model": {"path": model_path.name, "bytes": model_path.stat().st_size, "opset": 17},
    }
    metrics["ap50"] = metrics["validation"]["ap50"]
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return TrainResult(model_path, metrics_path, metrics, seconds, model)
