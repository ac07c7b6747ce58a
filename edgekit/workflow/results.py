"""Notebook 04's inputs: where the images behind the results are, and did any result arrive."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgekit.components.artifacts import sample_images_zip
from edgekit.deploy import log_location
from edgekit.errors import ConfigurationError, NoResultsError
from edgekit.handover import PathLike
from edgekit.provision import device_backend
from edgekit.results import ResultsTable
from edgekit.settings import Settings

SAMPLE_IMAGES_FOLDER = "sample-images"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in _IMAGE_SUFFIXES for p in folder.iterdir())


def device_image_dir(settings: Settings, things: Iterable[str] = ()) -> Path | None:
    """On the local backend, the sample images the inference component unpacked on a device.

    ``<device root>/packages/artifacts-unarchived/<inference component>/<version>/
    sample-images``, for the version each device runs; None if no device has them (and
    always on AWS, whose devices are not on this machine).
    """
    unpacked = device_backend(settings).unarchived_dirs(settings.inference_component, things)
    for folder in (d / SAMPLE_IMAGES_FOLDER for d in unpacked):
        if _has_images(folder):
            return folder
    return None


def regenerate_sample_images(out_dir: PathLike) -> Path:
    """The inference component's sample images, made again into ``out_dir/sample-images``.

    They come from edgekit's deterministic synthetic generator (same seed, same
    count as the component's ``sample-images.zip``), so names and pixels match what a
    device inspects when its ``ImageDirectory`` is empty, on either backend.
    """
    folder = Path(out_dir).expanduser() / SAMPLE_IMAGES_FOLDER
    if _has_images(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    archive = sample_images_zip(folder.parent / f".{SAMPLE_IMAGES_FOLDER}-build")
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                name = Path(member).name
                if name and name == member:  # flat archive: nothing may leave the folder
                    (folder / name).write_bytes(zf.read(member))
    finally:
        archive.unlink(missing_ok=True)
        archive.parent.rmdir()
    return folder


def find_image_dir(
    settings: Settings,
    output_dir: PathLike,
    *,
    image_dir: PathLike | None = None,
    things: Iterable[str] = (),
) -> tuple[Path, str]:
    """Where the images behind the results are, and how that was decided.

    ``image_dir`` wins (ConfigurationError if it is not a folder); locally the folder a
    device unpacked; otherwise the sample images regenerated under ``output_dir``.
    """
    if image_dir is not None:
        folder = Path(image_dir).expanduser()
        if not folder.is_dir():
            raise ConfigurationError(
                f"image_dir={str(image_dir)!r} is not a folder; pass the folder of the images "
                "the devices inspect, or None for the sample images"
            )
        return folder, "image_dir parameter"
    found = device_image_dir(settings, things)
    if found is not None:
        return found, "the inference component's artifacts on the device"
    return (
        regenerate_sample_images(output_dir),
        "regenerated from edgekit's synthetic generator (same images the component ships)",
    )


def check_results(
    settings: Settings, results: ResultsTable, *, things: Sequence[str] = (), timeout: float
) -> None:
    """Raise NoResultsError, saying where to look, when a collection got nothing at all."""
    if len(results):
        return
    thing = things[0] if things else "THING"
    invalid = (
        f"; {len(results.invalid)} message(s) were invalid, first: {results.invalid[0].reason}"
        if results.invalid
        else ""
    )
    raise NoResultsError(
        f"no result on topic {settings.results_topic} within {timeout:g} s from "
        f"{', '.join(things) or 'the devices'}{invalid}. Is the inference app running and "
        f"publishing? Its log: {log_location(settings, thing, settings.inference_component)}"
    )


def summary_rows(results: ResultsTable) -> list[dict[str, Any]]:
    """``results.summary()`` rows for format_table, by device name: the defect rate in
    percent, the model versions as one string."""
    rows = sorted(results.summary().rows, key=lambda r: _natural_key(str(r["thing_name"])))
    return [
        {
            **row,
            "defect_rate": f"{100 * row['defect_rate']:.0f} %",
            "model_versions": ", ".join(row["model_versions"]),
        }
        for row in rows
    ]


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
