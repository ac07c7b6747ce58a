"""``edgekit verify``: every refusal names the file the user gave, never a temporary copy."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.compile.testing import build_tiny_model
from edgekit.package import build_package, generate_keypair


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verify")
    build_tiny_model(root / "model" / "model.onnx", seed=4)
    keys = generate_keypair(root / "keys")
    other = generate_keypair(root / "other")
    built = build_package(
        root / "model", name="t", version="1.0.0", key=keys.private_key, out=root / "p.tar.gz"
    )
    unpacked = root / "unpacked"
    with tarfile.open(built.path) as tar:
        tar.extractall(unpacked, filter="data")
    return {
        "package": built.path,
        "unpacked": unpacked,
        "public": keys.public_key,
        "other": other.public_key,
        "root": root,
    }


def _repack(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for item in sorted(folder.iterdir()):
            tar.add(item, arcname=item.name)
    return out


def _changed_model(signed: dict[str, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "changed"
    folder.mkdir()
    for item in signed["unpacked"].iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    with (folder / "model.onnx").open("ab") as fh:
        fh.write(b"x")
    return folder


def _edited_manifest(signed: dict[str, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "edited"
    folder.mkdir()
    for item in signed["unpacked"].iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "9.9.9"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


CASES = {
    "wrong key": lambda s, t: (s["package"], s["other"]),
    "changed model in archive": lambda s, t: (_repack(_changed_model(s, t), t / "c.tar.gz"), None),
    "edited manifest in archive": lambda s, t: (
        _repack(_edited_manifest(s, t), t / "e.tar.gz"),
        None,
    ),
    "changed model in folder": lambda s, t: (_changed_model(s, t), None),
    "not an archive": lambda s, t: (
        (t / "g.tar.gz").write_bytes(b"garbage") and t / "g.tar.gz",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_names_the_users_file(
    case: str, signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, key = CASES[case](signed, tmp_path)
    assert main(["verify", str(target), "--public-key", str(key or signed["public"])]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"edgekit verify: error: {target}"), err
    assert "edgekit-package-" not in err  # the temporary extraction folder of old


def test_an_intact_package_is_ok(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(signed["package"]), "--public-key", str(signed["public"])]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {signed['package']} is t 1.0.0")
