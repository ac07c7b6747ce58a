"""Messages name what the user typed: the flag on the command line, the parameter in a
notebook or library call (edgekit.spelling, set once by edgekit.cli.main)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli import build_parser, main
from edgekit.errors import ConfigurationError, PackageError
from edgekit.package import generate_keypair
from edgekit.provision import LocalDevices
from edgekit.settings import Settings
from edgekit.spelling import command_line_spelling, parameter_text


@pytest.mark.parametrize(
    ("flags", "parameter", "value", "expected"),
    [
        ({}, "device_count", 0, "device_count=0"),
        ({}, "backend", "aws", "backend='aws'"),
        ({}, "force", True, "force=True"),
        ({"device_count": "--devices {}"}, "device_count", 0, "--devices 0"),
        ({"force": "--force"}, "force", True, "--force"),
        ({"device_count": "--devices {}"}, "force", True, "force=True"),
    ],
)
def test_parameter_text(flags: dict, parameter: str, value: object, expected: str) -> None:
    with command_line_spelling(flags):
        assert parameter_text(parameter, value) == expected
    assert parameter_text(parameter, value) == f"{parameter}={value!r}"


def test_the_cli_maps_each_flag_to_its_parameter() -> None:
    args = build_parser().parse_args(["provision", "--devices", "3"])
    assert args.device_count == 3
    assert args._flags["device_count"] == "--devices {}"
    assert build_parser().parse_args(["keygen", "--out", "k"])._flags["force"] == "--force"


def test_keygen_again_names_the_flag_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    capsys.readouterr()
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert "or --force to replace it" in err and "force=True" not in err


def test_the_library_names_the_argument(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    with pytest.raises(PackageError, match=r"or force=True to replace it") as info:
        generate_keypair(tmp_path / "k")
    assert "--force" not in str(info.value)
    with pytest.raises(ConfigurationError, match=r"^device_count=0: provision at least one"):
        LocalDevices(Settings(local_home=tmp_path)).check_count(0)


def test_provision_names_devices_not_device_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGEKIT_BACKEND", "local")
    assert main(["provision", "--devices", "0"]) == 1
    err = capsys.readouterr().err
    assert "--devices 0: provision at least one device" in err
    assert "device_count" not in err
    assert not (tmp_path / "home").exists()  # refused before anything started


def test_rollout_names_its_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "home"))
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"x")
    assert main(["rollout", "--model-package", str(package), "--canary", "0"]) == 1
    assert "--canary 0: at least one device" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-results", "0"], "--min-results 0: must be at least 1"),
        (["--warmup-results", "-1"], "--warmup-results -1: must be 0 or more"),
        (["--soak", "-1"], "--soak -1.0: must be 0 seconds or more"),
        (["--timeout", "0"], "--timeout 0.0: must be more than 0 seconds"),
        (["--max-error-rate", "2"], "--max-error-rate 2.0: must be between 0 and 1"),
        (["--max-p95-ratio", "0"], "--max-p95-ratio 0.0: must be more than 0"),
    ],
)
def test_rollout_gates_name_the_flags(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "home"))
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"x")
    assert main(["rollout", "--model-package", str(package), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "gates." not in err and "=" not in err.split("error: ", 1)[1]


def test_gates_in_a_library_call_name_the_argument() -> None:
    from edgekit.rollout import Gates

    with pytest.raises(ConfigurationError, match=r"^min_agreement=5: must be between 0 and 1"):
        Gates(min_agreement=5)
    with pytest.raises(ConfigurationError, match=r"^min_results=0: must be at least 1"):
        Gates(min_results=0)


def test_data_commands_name_their_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--count", "0"]) == 1
    assert "--count 0: render at least 1 image" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--count", "2"]) == 0
    capsys.readouterr()
    assert main(["data", "inspect", str(tmp_path / "s"), "--val-fraction", "2"]) == 1
    assert "--val-fraction 2.0: must be at least 0 and below 1" in capsys.readouterr().err


def test_train_names_its_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main(["train", "--data", "synthetic", "--out", str(tmp_path), "--epochs", "0"]) == 1
    assert "--epochs 0: must be 1 or more" in capsys.readouterr().err
