"""Reading package archives: the signed manifest first, then only listed members, bounded.

Issue 12 item 7: an unsigned 509 KiB tar.gz was unpacked to 505 MiB before its signature was
checked. Each case below runs in a child process whose files may not grow past
``FSIZE_LIMIT`` (RLIMIT_FSIZE, SIGXFSZ ignored), so writing a bomb to disk is an error the
test sees, and with TMPDIR pointing at an empty folder that must stay empty.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgekit.errors import VerificationError
from edgekit.package import build_package, generate_keypair, open_package, verify_package
from edgekit.package.archive import MAX_MEMBERS
from edgekit.package.build import sign_manifest

FSIZE_LIMIT = 8 * 1024 * 1024
BOMB = 64 * 1024 * 1024  # compresses to ~64 KiB


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, keys) -> Path:
    from edgekit.compile.testing import build_tiny_model

    folder = tmp_path_factory.mktemp("model")
    build_tiny_model(folder / "model.onnx", seed=1)
    (folder / "metrics.json").write_text('{"ap50": 0.5}')
    out = tmp_path_factory.mktemp("pkg") / "m-1.0.0.tar.gz"
    build_package(folder, name="m", version="1.0.0", key=keys.private_key, out=out)
    return out


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _write(out: Path, members: list[tuple[str, bytes | int]]) -> Path:
    """Members as (name, bytes) or (name, size of a run of zeros)."""
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tar.addfile(info, io.BufferedReader(_Zeros(data), 1 << 20))
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


def _contents(package: Path) -> list[tuple[str, bytes | int]]:
    return [(m.name, data) for m, data in _members(package)]


def _run_limited(tmp_path: Path, call: str, package: Path, key: Path) -> str:
    """Run ``call`` (open/verify) in a child that cannot write files over FSIZE_LIMIT."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))

    script = (
        "import sys\n"
        "from edgekit.errors import VerificationError\n"
        "from edgekit.package import open_package, verify_package\n"
        "try:\n"
        f"    {call}(sys.argv[1], sys.argv[2])\n"
        "except VerificationError as exc:\n"
        "    print('REFUSED', exc)\n"
        "else:\n"
        "    print('ACCEPTED')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(package), str(key)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    assert out.returncode == 0, out.stderr
    assert list(tmpdir.iterdir()) == [], "a rejected package left files behind"
    return out.stdout.strip()


@pytest.mark.parametrize("call", ["verify_package", "open_package"])
def test_huge_unlisted_member_is_refused_before_it_is_written(
    tmp_path: Path, package: Path, keys, call: str
) -> None:
    bomb = _write(tmp_path / "bomb.tar.gz", [*_contents(package), ("payload.bin", BOMB)])
    assert bomb.stat().st_size < 1024 * 1024
    said = _run_limited(tmp_path, call, bomb, keys.public_key)
    assert said.startswith("REFUSED"), said
    assert str(bomb) in said and "payload.bin" in said and "not listed" in said, said


@pytest.mark.parametrize("call", ["verify_package", "open_package"])
def test_bad_signature_is_refused_before_anything_else_is_written(
    tmp_path: Path, package: Path, keys, call: str
) -> None:
    members = dict(_contents(package))
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["payload.bin"] = {"sha256": "0" * 64, "size": BOMB}
    members["manifest.json"] = json.dumps(manifest).encode()  # the signature no longer fits
    unsigned = _write(tmp_path / "unsigned.tar.gz", [*members.items(), ("payload.bin", BOMB)])
    said = _run_limited(tmp_path, call, unsigned, keys.public_key)
    assert said.startswith("REFUSED"), said
    assert "manifest.json: does not match its signature" in said, said
    assert str(unsigned) in said


def test_member_larger_than_the_manifest_says_is_refused(
    tmp_path: Path, package: Path, keys
) -> None:
    members = _contents(package)
    members = [(n, BOMB if n == "metrics.json" else d) for n, d in members]
    bigger = _write(tmp_path / "bigger.tar.gz", members)
    said = _run_limited(tmp_path, "open_package", bigger, keys.public_key)
    assert said.startswith("REFUSED"), said
    assert "metrics.json" in said and str(BOMB) in said, said


def test_member_before_the_manifest_is_checked_after_it(
    tmp_path: Path, package: Path, keys
) -> None:
    members = _contents(package)
    first = [m for m in members if m[0] not in ("manifest.json", "manifest.sig")]
    rest = [m for m in members if m[0] in ("manifest.json", "manifest.sig")]
    reordered = _write(tmp_path / "reordered.tar.gz", [*first, *rest])
    assert verify_package(reordered, keys.public_key).name == "m"
    late = _write(tmp_path / "late.tar.gz", [("payload.bin", BOMB), *members])
    said = _run_limited(tmp_path, "verify_package", late, keys.public_key)
    assert said.startswith("REFUSED") and "payload.bin: extra file not listed" in said, said


def test_too_many_members_are_refused(tmp_path: Path, package: Path, keys) -> None:
    """Folders need no listing, so only the count stops a flood of them."""
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in _members(package):
            tar.addfile(info, io.BytesIO(data))
        for i in range(MAX_MEMBERS):
            folder = tarfile.TarInfo(f"d{i}")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
    with pytest.raises(VerificationError, match=rf"many.tar.gz: more than {MAX_MEMBERS} members"):
        verify_package(archive, keys.public_key)


@pytest.mark.parametrize(
    ("kind", "what"),
    [(tarfile.CHRTYPE, "special file"), (tarfile.FIFOTYPE, "special file"),
     (tarfile.SYMTYPE, "link"), (tarfile.LNKTYPE, "link")],
)  # fmt: skip
def test_links_and_devices_after_the_manifest_are_refused(
    tmp_path: Path, package: Path, keys, kind: bytes, what: str
) -> None:
    archive = tmp_path / "special.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in _members(package):
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("dev/thing")
        info.type = kind
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    for call in (verify_package, open_package):
        with pytest.raises(VerificationError, match=rf"special.tar.gz: .*'dev/thing' is a {what}"):
            call(archive, keys.public_key)


def test_oversized_manifest_is_refused_unread(tmp_path: Path, package: Path, keys) -> None:
    members = [(n, BOMB if n == "manifest.json" else d) for n, d in _contents(package)]
    archive = _write(tmp_path / "fat.tar.gz", members)
    with pytest.raises(VerificationError, match=r"fat.tar.gz: member 'manifest.json' has"):
        verify_package(archive, keys.public_key)


def test_dot_slash_names_and_folders_like_tar_c_still_verify(
    tmp_path: Path, package: Path, keys
) -> None:
    archive = tmp_path / "dotted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for info, data in _members(package):
            info.name = "./" + info.name
            tar.addfile(info, io.BytesIO(data))
    with open_package(archive, keys.public_key) as opened:
        assert opened.model_path.is_file() and (opened.root / "manifest.sig").is_file()


def test_resigned_manifest_listing_the_bomb_is_bounded_by_its_sizes(
    tmp_path: Path, package: Path, keys
) -> None:
    """A correctly signed package is extracted; each member exactly as big as signed."""
    members = dict(_contents(package))
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["payload.bin"] = {"sha256": "0" * 64, "size": 10}
    members["manifest.json"] = json.dumps(manifest).encode()
    members["manifest.sig"] = sign_manifest(members["manifest.json"], keys.private_key)
    archive = _write(tmp_path / "signed-bomb.tar.gz", [*members.items(), ("payload.bin", BOMB)])
    said = _run_limited(tmp_path, "open_package", archive, keys.public_key)
    assert said.startswith("REFUSED") and "payload.bin" in said and "10" in said, said


@pytest.mark.parametrize("where", ["first", "after the manifest"])
def test_huge_pax_header_is_refused_without_reading_it(
    tmp_path: Path, package: Path, keys, where: str
) -> None:
    """tarfile reads a pax header wholly into memory: a 64 MiB one must be refused unread."""
    archive = tmp_path / "pax.tar.gz"
    bomb = tarfile.TarInfo("notes.txt")
    bomb.pax_headers = {"comment": "x" * BOMB}
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = _members(package)
        if where == "first":
            tar.addfile(bomb, io.BytesIO())
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
        if where != "first":
            tar.addfile(bomb, io.BytesIO())
    with pytest.raises(VerificationError, match=r"(?s)pax.tar.gz: .*extended header"):
        verify_package(archive, keys.public_key)
