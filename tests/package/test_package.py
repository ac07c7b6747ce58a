"""Model packages: keygen, build, verify, open, and every way a package can be damaged."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.compile.testing import build_tiny_model
from edgekit.errors import PackageError, VerificationError
from edgekit.package import (
    Manifest,
    OpenedPackage,
    build_package,
    generate_keypair,
    open_package,
    verify_package,
)
from edgekit.package.build import sign_manifest

CREATED = "2026-01-02T03:04:05Z"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory):
    return generate_keypair(tmp_path_factory.mktemp("other-keys"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    build_tiny_model(folder / "model.onnx", seed=3)
    (folder / "metrics.json").write_text(json.dumps({"ap50": 0.91, "recall": 0.8}))
    return folder


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, keys) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "model-1.2.3.tar.gz"
    build_package(
        model_dir, name="tag-scratch-detector", version="1.2.3", key=keys.private_key, out=out
    )
    return out


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def _repack(out: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


# --- keys -------------------------------------------------------------------------------------


def test_keygen_writes_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(os.stat(pair.private_key).st_mode) == 0o600
    assert pair.public_key.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(PackageError, match="private_key.pem: a key already exists"):
        generate_keypair(tmp_path / "k")
    replaced = generate_keypair(tmp_path / "k", force=True)
    assert replaced.key_id != pair.key_id
    assert stat.S_IMODE(os.stat(replaced.private_key).st_mode) == 0o600


def test_load_key_errors_name_the_file(tmp_path: Path, model_dir: Path, keys) -> None:
    with pytest.raises(PackageError, match="nope.pem: private key file not found"):
        build_package(
            model_dir, name="m", version="1.0.0", key=tmp_path / "nope.pem", out=tmp_path / "x"
        )
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(PackageError, match="bad.pem: not a PEM public key"):
        verify_package(tmp_path, bad)
    with pytest.raises(PackageError, match="public_key.pem: not an unencrypted PEM private key"):
        build_package(model_dir, name="m", version="1.0.0", key=keys.public_key, out=tmp_path / "x")


# --- build ------------------------------------------------------------------------------------


def test_manifest_describes_the_model(package: Path, keys) -> None:
    manifest = verify_package(package, keys.public_key)
    assert isinstance(manifest, Manifest)
    assert (manifest.name, manifest.version) == ("tag-scratch-detector", "1.2.3")
    assert manifest.runtime == "onnxruntime"  # not compiled
    assert manifest.model_file == "model.onnx"
    assert manifest.input == {"name": "image", "shape": [1, 3, 64, 96], "dtype": "float32"}
    assert manifest.preprocessing["height"] == 64 and manifest.preprocessing["width"] == 96
    assert manifest.preprocessing["channel_order"] == "RGB"
    assert len(manifest.preprocessing["mean"]) == 3
    assert manifest.labels == {"0": "scratch"}
    assert manifest.score_threshold == pytest.approx(0.3)
    assert manifest.metrics == {"ap50": 0.91, "recall": 0.8}
    assert set(manifest.files) == {"model.onnx", "metrics.json"}
    assert manifest.signing_key_id == keys.key_id
    assert manifest.created_at.endswith("Z")
    assert len(manifest.source_model_sha256 or "") == 64


def test_archive_is_reproducible_and_manifest_first(tmp_path: Path, model_dir: Path, keys) -> None:
    a = build_package(
        model_dir,
        name="m",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "a.tar.gz",
        created_at=CREATED,
    )
    b = build_package(
        model_dir,
        name="m",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "b.tar.gz",
        created_at=CREATED,
    )
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.sha256 == b.sha256
    with tarfile.open(a.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "manifest.json",
        "manifest.sig",
        "metrics.json",
        "model.onnx",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}
    # The signature is base64 of 64 bytes over the exact manifest bytes.
    data = _members(a.path)
    assert len(base64.b64decode(data["manifest.sig"])) == 64


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", ""])
def test_bad_version_is_refused(tmp_path: Path, model_dir: Path, keys, version: str) -> None:
    with pytest.raises(PackageError, match="not a semantic version"):
        build_package(
            model_dir, name="m", version=version, key=keys.private_key, out=tmp_path / "x"
        )


def test_semver_prerelease_and_build_accepted(tmp_path: Path, model_dir: Path, keys) -> None:
    built = build_package(
        model_dir,
        name="m",
        version="2.0.0-rc.1+build.5",
        key=keys.private_key,
        out=tmp_path / "x.tar.gz",
    )
    assert built.manifest.version == "2.0.0-rc.1+build.5"


def test_model_folder_must_hold_exactly_one_model(tmp_path: Path, keys) -> None:
    folder = tmp_path / "two"
    build_tiny_model(folder / "a.onnx")
    build_tiny_model(folder / "b.onnx")
    with pytest.raises(PackageError, match="exactly one .onnx model, found a.onnx, b.onnx"):
        build_package(folder, name="m", version="1.0.0", key=keys.private_key, out=tmp_path / "x")


def test_unpacked_package_cannot_be_repackaged(tmp_path: Path, package: Path, keys) -> None:
    opened = open_package(package, keys.public_key, dest=tmp_path / "open")
    with pytest.raises(PackageError, match="manifest.json"):
        build_package(
            opened.root, name="m", version="1.0.0", key=keys.private_key, out=tmp_path / "x.gz"
        )


def test_failed_parity_report_is_refused(tmp_path: Path, keys) -> None:
    folder = tmp_path / "compiled"
    build_tiny_model(folder / "model.onnx")
    parity = {"passed": False, "forced": False, "source_ap50": 0.9, "compiled_ap50": 0.5}
    (folder / "compile_report.json").write_text(json.dumps({"parity": parity}))
    with pytest.raises(PackageError, match=r"failed its parity check \(AP50 0.9 -> 0.5\)"):
        build_package(folder, name="m", version="1.0.0", key=keys.private_key, out=tmp_path / "x")
    parity["forced"] = True
    (folder / "compile_report.json").write_text(json.dumps({"parity": parity}))
    built = build_package(
        folder, name="m", version="1.0.0", key=keys.private_key, out=tmp_path / "x.tar.gz"
    )
    assert built.manifest.metrics["parity"]["forced"] is True


# --- open and verify --------------------------------------------------------------------------


def test_open_package_extracts_to_temp_and_cleans_up(package: Path, keys) -> None:
    with open_package(package, keys.public_key) as opened:
        assert isinstance(opened, OpenedPackage)
        assert opened.signature_verified
        assert opened.model_path == opened.root / "model.onnx"
        assert opened.model_path.is_file()
        root = opened.root
    assert not root.exists()


def test_open_package_runs_with_predictor(package: Path, keys) -> None:
    from edgekit.model.predict import Predictor

    with open_package(package, keys.public_key) as opened:
        predictor = Predictor(opened.model_path)
        detections = predictor.predict(np.full((60, 90, 3), 128, dtype=np.uint8))
        assert isinstance(detections, list)


def test_open_unpacked_folder_and_dest(tmp_path: Path, package: Path, keys) -> None:
    opened = open_package(package, keys.public_key, dest=tmp_path / "unpacked")
    assert opened.root == tmp_path / "unpacked"
    opened.close()  # a given dest is kept
    again = open_package(tmp_path / "unpacked", keys.public_key)
    assert again.manifest.version == "1.2.3"
    with pytest.raises(PackageError, match="not empty"):
        open_package(package, keys.public_key, dest=tmp_path / "unpacked")


def test_open_without_key_checks_hashes_only(tmp_path: Path, package: Path) -> None:
    members = _members(package)
    del members["manifest.sig"]
    opened = open_package(_repack(tmp_path / "unsigned.tar.gz", members))
    assert not opened.signature_verified
    opened.close()


# --- tampering: each failure names the file ------------------------------------------------- -


def _tampered(tmp_path: Path, package: Path, change) -> Path:
    members = _members(package)
    change(members)
    return _repack(tmp_path / "tampered.tar.gz", members)


def _flip_model_byte(m: dict[str, bytes]) -> None:
    data = bytearray(m["model.onnx"])
    data[len(data) // 2] ^= 0x01
    m["model.onnx"] = bytes(data)


def _edit_manifest(m: dict[str, bytes]) -> None:
    manifest = json.loads(m["manifest.json"])
    manifest["score_threshold"] = 0.01
    m["manifest.json"] = json.dumps(manifest).encode()


CASES = {
    "changed model byte": (_flip_model_byte, r"model.onnx: SHA-256 differs"),
    "extra file": (lambda m: m.update({"extra.txt": b"hi"}), r"extra.txt: extra file"),
    "missing file": (lambda m: m.pop("metrics.json"), r"metrics.json: listed in manifest.json"),
    "missing signature": (lambda m: m.pop("manifest.sig"), r"manifest.sig: signature missing"),
    "missing manifest": (lambda m: m.pop("manifest.json"), r"manifest.json: manifest missing"),
    "malformed signature": (
        lambda m: m.update({"manifest.sig": b"not base64!"}),
        r"manifest.sig: malformed signature",
    ),
    "short signature": (
        lambda m: m.update({"manifest.sig": base64.b64encode(b"x" * 10)}),
        r"manifest.sig: malformed signature \(10 bytes",
    ),
    "edited manifest": (_edit_manifest, r"manifest.json: does not match its signature"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_package_is_rejected(tmp_path: Path, package: Path, keys, case: str) -> None:
    change, message = CASES[case]
    tampered = _tampered(tmp_path, package, change)
    with pytest.raises(VerificationError, match=message):
        verify_package(tampered, keys.public_key)
    with pytest.raises(VerificationError, match=message):
        open_package(tampered, keys.public_key)


def test_wrong_key_is_rejected_naming_the_signature(package: Path, other_keys, keys) -> None:
    with pytest.raises(VerificationError) as err:
        verify_package(package, other_keys.public_key)
    text = str(err.value)
    assert "manifest.sig: signed with key" in text
    assert keys.key_id in text and other_keys.key_id in text


def test_signed_but_malformed_manifest_names_the_field(tmp_path: Path, package: Path, keys) -> None:
    members = _members(package)
    manifest = json.loads(members["manifest.json"])
    del manifest["model_file"]
    members["manifest.json"] = json.dumps(manifest).encode()
    members["manifest.sig"] = sign_manifest(members["manifest.json"], keys.private_key)
    with pytest.raises(VerificationError, match="manifest.json: field 'model_file' is missing"):
        verify_package(_repack(tmp_path / "p.tar.gz", members), keys.public_key)
    members["manifest.json"] = b"{not json"
    members["manifest.sig"] = sign_manifest(members["manifest.json"], keys.private_key)
    with pytest.raises(VerificationError, match="manifest.json: not valid UTF-8 JSON"):
        verify_package(_repack(tmp_path / "q.tar.gz", members), keys.public_key)


def test_tampered_unpacked_folder_is_rejected(tmp_path: Path, package: Path, keys) -> None:
    root = tmp_path / "unpacked"
    open_package(package, keys.public_key, dest=root)
    (root / "notes.txt").write_text("added later")
    with pytest.raises(VerificationError, match="notes.txt: extra file"):
        verify_package(root, keys.public_key)


def test_raw_signature_file_is_accepted(tmp_path: Path, package: Path, keys) -> None:
    members = _members(package)
    members["manifest.sig"] = base64.b64decode(members["manifest.sig"])
    assert verify_package(_repack(tmp_path / "raw.tar.gz", members), keys.public_key).version


# --- unsafe archives --------------------------------------------------------------------------


def _evil_tar(path: Path, info: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info.size = len(data) if info.isreg() else 0
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt"])
def test_path_traversal_is_rejected(tmp_path: Path, keys, name: str) -> None:
    archive = _evil_tar(tmp_path / "evil.tar.gz", tarfile.TarInfo(name))
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(VerificationError, match="unsafe path"):
        open_package(archive, keys.public_key, dest=dest)
    with pytest.raises(VerificationError, match="unsafe path"):
        verify_package(archive, keys.public_key)
    assert not (tmp_path / "dest" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_rejected(tmp_path: Path, keys, kind: bytes) -> None:
    info = tarfile.TarInfo("model.onnx")
    info.type = kind
    info.linkname = "/etc/passwd"
    archive = _evil_tar(tmp_path / "link.tar.gz", info)
    with pytest.raises(VerificationError, match="'model.onnx' is a link"):
        verify_package(archive, keys.public_key)


def test_not_a_tar_is_a_clear_error(tmp_path: Path, keys) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"definitely not gzip")
    with pytest.raises(VerificationError, match="junk.tar.gz: not a readable .tar.gz package"):
        verify_package(junk, keys.public_key)


# --- CLI --------------------------------------------------------------------------------------


def test_cli_keygen_package_verify(tmp_path: Path, model_dir: Path, capsys) -> None:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 1
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "m.tar.gz"
    code = main([
        "package", "--model", str(model_dir / "model.onnx"), "--name", "tag-scratch-detector",
        "--version", "0.1.0", "--key", str(tmp_path / "keys" / "private_key.pem"),
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    assert "tag-scratch-detector 0.1.0" in capsys.readouterr().out
    pub = str(tmp_path / "keys" / "public_key.pem")
    assert main(["verify", str(out), "--public-key", pub]) == 0
    assert "OK:" in capsys.readouterr().out
    _repack(tmp_path / "bad.tar.gz", {**_members(out), "extra.bin": b"\0"})
    assert main(["verify", str(tmp_path / "bad.tar.gz"), "--public-key", pub]) == 1
    assert "extra.bin: extra file" in capsys.readouterr().err


def test_cli_package_rejects_bad_version(tmp_path: Path, model_dir: Path, keys, capsys) -> None:
    code = main([
        "package", "--model", str(model_dir), "--name", "m", "--version", "latest",
        "--key", str(keys.private_key), "--out", str(tmp_path / "x.tar.gz"),
    ])  # fmt: skip
    assert code == 1
    assert "not a semantic version" in capsys.readouterr().err


def test_rejected_package_leaves_no_files(tmp_path: Path, package: Path, other_keys) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(VerificationError):
        open_package(package, other_keys.public_key, dest=dest)
    assert not dest.exists()


def test_symlinked_file_in_folder_is_rejected(tmp_path: Path, package: Path, keys) -> None:
    root = tmp_path / "unpacked"
    open_package(package, keys.public_key, dest=root)
    real = tmp_path / "metrics-elsewhere.json"
    (root / "metrics.json").rename(real)
    (root / "metrics.json").symlink_to(real)
    with pytest.raises(VerificationError, match="metrics.json: is a link"):
        verify_package(root, keys.public_key)
