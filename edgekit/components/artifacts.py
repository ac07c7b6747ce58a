"""The artifacts of the three components, built on this machine (no network).

- ``edgekit-<version>-py3-none-any.whl``: edgekit itself, for the agent and the
  inference app. Written here with zipfile (the wheel format is a zip with a
  ``.dist-info`` folder) so the build needs neither network nor a build backend,
  leaves nothing in the source tree, and is byte-for-byte reproducible.
- ``sample-images.zip``: a dozen synthetic tag images from edgekit's generator,
  the inference app's default camera folder.
- the signed model package (``.tar.gz``) of the model component.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import io
import zipfile
from pathlib import Path

from PIL import Image

from edgekit.data.synthetic import render
from edgekit.errors import PackageError
from edgekit.version import __version__

# Files of the package that go into the wheel (pyproject's package-data patterns).
PACKAGE_DATA = (".py", ".onnx", ".json", ".yaml", ".yml", ".md", ".proto", ".png", ".jpg", ".txt")
# Not needed on a device: the model comes from the model component and is large; the
# templates and notebooks (edgekit/resources.py) are for the machine that publishes.
WHEEL_EXCLUDE = ("model/shipped/", "_resources/")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SAMPLE_IMAGES = 12
SAMPLE_SEED = 2024


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def package_files(package_dir: Path) -> dict[str, Path]:
    """``{name in the wheel: file}`` for the edgekit package folder."""
    files: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package_dir).as_posix()
        if any(rel.startswith(prefix) for prefix in WHEEL_EXCLUDE):
            continue
        if path.suffix in PACKAGE_DATA:
            files[f"{package_dir.name}/{rel}"] = path
    return files


def build_wheel(out_dir: str | Path, *, package_dir: Path | None = None) -> Path:
    """Write ``edgekit-<version>-py3-none-any.whl`` into ``out_dir``; returns its path."""
    package_dir = package_dir or Path(str(importlib.resources.files("edgekit"))).resolve()
    version = __version__
    dist_info = f"edgekit-{version}.dist-info"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"edgekit-{version}-py3-none-any.whl"
    entries: list[tuple[str, bytes]] = [
        (name, path.read_bytes()) for name, path in package_files(package_dir).items()
    ]
    if not any(name == "edgekit/__init__.py" for name, _ in entries):
        raise PackageError(f"{package_dir}: not the edgekit package (no __init__.py)")
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: edgekit\n"
        f"Version: {version}\n"
        "Summary: edgekit on a Greengrass device (agent and inference app)\n"
        "Requires-Python: >=3.11\n"
    )
    entries += [
        (f"{dist_info}/METADATA", metadata.encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: edgekit.components\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nedgekit = edgekit.cli:main\n"),
        (f"{dist_info}/top_level.txt", b"edgekit\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    tmp = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, data in entries:
            _zip_write(zf, name, data)
    tmp.replace(wheel)
    return wheel


def sample_images_zip(
    out_dir: str | Path, *, count: int = SAMPLE_IMAGES, seed: int = SAMPLE_SEED
) -> Path:
    """``sample-images.zip``: ``count`` synthetic JPEG tag images (deterministic)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sample-images.zip"
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w") as zf:
        for i in range(count):
            image, _boxes = render(seed, i)
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=90)
            _zip_write(zf, f"tag-{i:03d}.jpg", buffer.getvalue())
    tmp.replace(path)
    return path
