"""`edgekit pipeline schedule | schedules | unschedule` (local backend, no scheduler running)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("EDGEKIT_SAGEMAKER_ROLE_ARN", "EDGEKIT_ARTIFACT_BUCKET", "EDGEKIT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_schedule_list_and_unschedule(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = ["--home", str(home)]
    assert main(["pipeline", "schedule", "--cron", "0 6 * * 1-5", "--name", "nightly", *h]) == 0
    captured = capsys.readouterr()
    assert "scheduled nightly: 0 6 * * 1-5 (UTC) locally; next run 20" in captured.out
    assert f"runs go to {home.parent / 'runs'}/<UTC time>-nightly/" in captured.out
    assert "the local scheduler is not running: `edgekit local up`" in captured.err

    assert main(["pipeline", "schedules", *h]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "CRON", "BACKEND", "NEXT", "RUN", "LAST", "RUN", "STATUS",
                              "OUTPUT"]  # fmt: skip
    assert out[1].startswith("nightly  0 6 * * 1-5  local") and out[1].split()[-3:] == [
        "-",
        "never",
        "-",
    ]

    assert main(["pipeline", "schedule", "--cron", "* * * * *", "--name", "nightly", *h]) == 1
    assert "a local schedule named 'nightly' exists" in capsys.readouterr().err

    assert main(["pipeline", "unschedule", "nightly", *h]) == 0
    assert capsys.readouterr().out.strip() == "unscheduled nightly"
    assert main(["pipeline", "schedules", *h]) == 0
    assert capsys.readouterr().out.strip() == "no local schedules"
    assert main(["pipeline", "unschedule", "nightly", *h]) == 1
    assert "no local schedule named 'nightly'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 25 * * *"], "--cron '0 25 * * *': hour field: 25 is out of range 0-23"),
        (["--cron", "cron(0 6 * * MON *)"], "exactly one of day-of-month and day-of-week"),
        (["--cron", "* * * * *", "--name", "bad_name"], "schedule name 'bad_name' is not valid"),
        (
            ["--cron", "* * * * *", "--backend", "aws"],
            "--backend aws needs --role, --s3-uri, --image",
        ),
        (
            [
                "--cron",
                "0 0 1 * 1",
                "--backend",
                "aws",
                "--role",
                "r",
                "--s3-uri",
                "s3://b/p",
                "--image",
                "i",
            ],
            "restricts both day-of-month and day-of-week",
        ),
    ],  # fmt: skip
)
def test_bad_schedules_are_refused_naming_the_field(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["pipeline", "schedule", *args, "--home", str(home)]) == 1
    assert message in capsys.readouterr().err
    assert not (home / "schedules" / "schedules.json").exists()


def test_a_parameters_file_is_checked_like_pipeline_run(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("device_count: 2\nno_such_parameter: 1\n")
    argv = ["pipeline", "schedule", "--cron", "@daily", "--params", str(params)]
    assert main([*argv, "--home", str(home)]) == 1  # '@daily' is not cron
    assert "--cron '@daily': 1 field; this form has 5" in capsys.readouterr().err
    argv[3] = "0 3 * * *"
    assert main([*argv, "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert str(params) in err and "no_such_parameter" in err
