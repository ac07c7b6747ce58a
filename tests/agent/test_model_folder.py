"""LoadModel of a model folder, as Edge Manager code passes it (edgekit/agent/model_folder.py).

The Edge Manager stand-in's registry (``unsigned_onnx``) loads a plain ONNX folder
unverified, verifies signed edgekit packages against its key, and refuses Neo/DLR
artifacts naming the folder and what to put there. The ordinary agent is unchanged.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.agent.model_folder import NEO_FILES, ONNX, PACKAGE, locate
from edgekit.agent.models import ONNX_FILE, ModelRegistry
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, signed_package
from edgekit.errors import AgentError
from edgekit.files import sha256_file
from edgekit.package import load_public_key


def _folder(root: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def _refusal(fn, *args) -> AgentStatusError:
    with pytest.raises(AgentStatusError) as info:
        fn(*args)
    return info.value


# -- locate --------------------------------------------------------------------------------


def test_locate_finds_the_onnx_file_of_a_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "m", {"model.onnx": b"x", "labels.txt": b"a"})
    assert locate(folder).kind == ONNX and locate(folder).path == folder / "model.onnx"
    assert locate(folder / "model.onnx").path == folder / "model.onnx"


def test_locate_looks_into_the_only_subfolder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "m", {"inner/model.onnx": b"x"})
    assert locate(folder).path == folder / "inner" / "model.onnx"


def test_locate_recognizes_packages(tmp_path: Path, pkg: SignedPackage) -> None:
    assert locate(pkg.package).kind == PACKAGE
    folder = tmp_path / "unpacked"
    with tarfile.open(pkg.package) as tar:
        tar.extractall(folder, filter="data")
    assert locate(folder) == locate(folder).__class__(PACKAGE, folder)


@pytest.mark.parametrize(
    ("files", "code", "says"),
    [
        (
            {"compiled.so": b"", "compiled.params": b"", "compiled_model.json": b"{}"},
            "FAILED_PRECONDITION",
            ["SageMaker Neo-compiled model", "compiled.params, compiled.so", "one .onnx file"],
        ),
        ({"a.onnx": b"", "b.onnx": b""}, "FAILED_PRECONDITION", ["2 ONNX models", "a.onnx"]),
        ({"readme.txt": b""}, "FAILED_PRECONDITION", ["no model", "readme.txt", ".onnx"]),
        ({}, "FAILED_PRECONDITION", ["no model", "nothing"]),
    ],
)
def test_locate_refuses_naming_the_folder_and_the_fix(
    tmp_path: Path, files: dict[str, bytes], code: str, says: list[str]
) -> None:
    folder = _folder(tmp_path, "model", files)
    error = _refusal(locate, folder)
    assert error.code == code
    assert str(folder) in error.details
    for text in says:
        assert text in error.details, error.details


def test_locate_refuses_a_missing_path_and_other_files(tmp_path: Path) -> None:
    assert _refusal(locate, tmp_path / "nope").code == "NOT_FOUND"
    other = tmp_path / "model.bin"
    other.write_bytes(b"")
    assert "neither an ONNX model" in _refusal(locate, other).details


def test_every_neo_file_name_is_refused(tmp_path: Path) -> None:
    for name in sorted(NEO_FILES):
        folder = _folder(tmp_path, name.replace(".", "_"), {name: b""})
        assert "Neo-compiled" in _refusal(locate, folder).details


# -- the registry -------------------------------------------------------------------------


def test_a_plain_onnx_folder_loads_unverified_and_is_reported(
    tmp_path: Path, pkg: SignedPackage, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copy(pkg.model, folder / "model.onnx")
    registry = ModelRegistry(None, unsigned_onnx=True)
    with caplog.at_level("WARNING", logger="edgekit.agent.models"):
        model = registry.load("plain", str(folder))
    assert "WITHOUT signature verification" in caplog.text and str(folder) in caplog.text
    identity = registry.identity("plain")
    assert identity is not None
    assert identity.package_sha256 == sha256_file(folder / "model.onnx")
    assert identity.source == ONNX_FILE and identity.key_fingerprint == ""
    assert model.version == "" and model.source == str(folder)
    x = np.zeros((1, 3, 64, 96), np.float32)
    assert [name for name, _ in model.run({"image": x})] == ["heatmap", "size", "offset"]


def test_a_signed_package_needs_a_key_in_the_stand_in(pkg: SignedPackage) -> None:
    error = _refusal(ModelRegistry(None, unsigned_onnx=True).load, "p", str(pkg.package))
    assert error.code == "FAILED_PRECONDITION"
    assert str(pkg.package) in error.details and "PublicKey" in error.details


def test_a_signed_package_is_verified_in_the_stand_in(pkg: SignedPackage, workdir: Path) -> None:
    key = load_public_key(pkg.public_key)
    registry = ModelRegistry(key, unsigned_onnx=True)
    registry.load("signed", str(pkg.package))
    identity = registry.identity("signed")
    assert identity is not None and identity.key_fingerprint == registry.key_fingerprint
    other = signed_package(workdir / "other", key_dir=workdir / "other-keys")
    error = _refusal(registry.load, "other", str(other.package))
    assert "failed verification" in error.details


def test_the_ordinary_agent_still_needs_a_key_and_a_package(
    tmp_path: Path, pkg: SignedPackage
) -> None:
    with pytest.raises(AgentError, match="needs a public key"):
        ModelRegistry(None)
    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copy(pkg.model, folder / "model.onnx")
    registry = ModelRegistry(load_public_key(pkg.public_key))
    error = _refusal(registry.load, "plain", str(folder))
    assert error.code == "FAILED_PRECONDITION" and "failed verification" in error.details
