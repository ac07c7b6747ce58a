"""Signing keys default outside the checkout (issue 15, item 6).

`edgekit keygen` without ``--out`` and `edgekit package` without ``--key`` use
``<local home>/keys``, the folder `components publish`, `rollout` and the notebooks
already use (one rule: `edgekit.package.keys.default_key_dir`). Nothing lands in the
working folder, and the README's walkthrough can be run again after `make demo` (the
default pair is kept, not refused).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.components.build import signing_keys
from edgekit.model import default_model_path
from edgekit.package import verify_package
from edgekit.package.keys import (
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    default_key_dir,
    existing_keypair,
)
from edgekit.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(working folder, local home); the command runs in the working folder."""
    work, home = tmp_path / "checkout", tmp_path / "home"
    work.mkdir()
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    monkeypatch.chdir(work)
    return work, home


def test_keygen_without_out_writes_into_the_local_home_not_the_working_folder(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, home = places
    assert main(["keygen"]) == 0
    keys = home / "keys"
    assert (keys / PRIVATE_KEY_NAME).is_file() and (keys / PUBLIC_KEY_NAME).is_file()
    assert (keys / PRIVATE_KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert list(work.iterdir()) == []
    assert str(keys / PRIVATE_KEY_NAME) in capsys.readouterr().out


def test_keygen_again_keeps_the_default_pair_and_force_replaces_it(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, home = places
    assert main(["keygen"]) == 0
    first = existing_keypair(home / "keys")
    capsys.readouterr()
    assert main(["keygen"]) == 0  # e.g. the README after `make demo` made the pair
    out = capsys.readouterr().out
    assert "already in" in out and first is not None and first.key_id in out
    assert existing_keypair(home / "keys") == first
    assert main(["keygen", "--force"]) == 0
    replaced = existing_keypair(home / "keys")
    assert replaced is not None and replaced.key_id != first.key_id


def test_keygen_with_out_still_refuses_to_replace_a_pair(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = places
    assert main(["keygen", "--out", "mykeys"]) == 0
    capsys.readouterr()
    assert main(["keygen", "--out", "mykeys"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (work / "mykeys" / PRIVATE_KEY_NAME).is_file()


def test_half_a_default_pair_is_an_error_naming_the_missing_file(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, home = places
    assert main(["keygen"]) == 0
    (home / "keys" / PUBLIC_KEY_NAME).unlink()
    capsys.readouterr()
    assert main(["keygen"]) == 1
    err = capsys.readouterr().err
    assert f"{home / 'keys' / PUBLIC_KEY_NAME}: missing" in err and "--force" in err


def test_package_without_key_signs_with_the_default_pair(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, home = places
    assert main(["keygen"]) == 0
    code = main(
        [
            "package",
            "--model",
            str(default_model_path()),
            "--name",
            "tag-scratch-detector",
            "--version",
            "1.0.0",
            "--out",
            "model.tar.gz",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = verify_package(work / "model.tar.gz", home / "keys" / PUBLIC_KEY_NAME)
    assert manifest.version == "1.0.0"


def test_one_default_key_folder_for_keygen_package_and_publish(
    places: tuple[Path, Path],
) -> None:
    _, home = places
    settings = Settings.from_env()
    assert default_key_dir(settings) == home / "keys"
    private, public = signing_keys(None, settings)  # components publish, notebooks
    assert (private.parent, public.parent) == (home / "keys", home / "keys")


@pytest.mark.parametrize("path", ["keys/private_key.pem", "build/x.tar.gz", "runs/latest"])
def test_generated_folders_are_ignored_by_git(path: str) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, capture_output=True
    )
    assert done.returncode == 0, f"{path} is not ignored by .gitignore"
