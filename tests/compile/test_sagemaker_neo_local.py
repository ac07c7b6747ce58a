"""``edgekit compile --target sagemaker-neo`` on the local backend (`edgekit local up`).

The local endpoints run as real processes; every call of the compiler goes
through :func:`edgekit.clients.client` to moto. Locally edgekit creates what an
AWS account would already have (the bucket; a stand-in SageMaker execution
role). moto runs no Neo compiler, so the CLI must fail with the reason; with an
archive put where moto says the output is, the same path completes.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit import clients
from edgekit.cli import main
from edgekit.compile import CompileOptions, compile_model, read_compile_info
from edgekit.compile.testing import build_tiny_model
from edgekit.neo import neo_account
from edgekit.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::edgekit.compile.sagemaker_neo.NeoWarning"),
]

BUCKET = "edgekit-artifacts-123456789012-us-east-1"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from edgekit.local import endpoints

    root = tmp_path_factory.mktemp("neo-local-home")
    endpoints.up(root, region="us-east-1")
    try:
        yield root
    finally:
        endpoints.down(root)


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EDGEKIT_BACKEND", "local")
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    monkeypatch.setenv("EDGEKIT_REGION", "us-east-1")
    for name in ("EDGEKIT_ARTIFACT_BUCKET", "EDGEKIT_SAGEMAKER_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    return Settings(backend="local", region="us-east-1", local_home=home)


def test_cli_compile_on_the_local_backend_fails_honestly(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_tiny_model(tmp_path / "src" / "tiny.onnx", seed=3)
    code = main(
        [
            "compile",
            "--model",
            str(model),
            "--target",
            "sagemaker-neo",
            "--device",
            "jetson_xavier",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("edgekit compile: error: compilation job edgekit-neo-jetson-xavier-")
    assert "does not exist" in err and "runs no Neo compiler" in err

    sm = clients.client("sagemaker", settings)
    jobs = sm.list_compilation_jobs()["CompilationJobSummaries"]
    ours = [j for j in jobs if j["CompilationJobName"].startswith("edgekit-neo-jetson-xavier-")]
    assert len(ours) == 1 and ours[0]["CompilationTargetDevice"] == "jetson_xavier"
    job = sm.describe_compilation_job(CompilationJobName=ours[0]["CompilationJobName"])
    # The local backend made the role and bucket an AWS account would already have.
    role = clients.client("iam", settings).get_role(RoleName="edgekit-sagemaker-execution")["Role"]
    assert job["RoleArn"] == role["Arn"]
    assert "sagemaker.amazonaws.com" in str(role["AssumeRolePolicyDocument"])
    assert job["InputConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/edgekit/neo/")
    s3 = clients.client("s3", settings)
    key = job["InputConfig"]["S3Uri"].split("/", 3)[3]
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_the_local_path_completes_when_an_artifact_exists(
    settings: Settings, tmp_path: Path
) -> None:
    model = build_tiny_model(tmp_path / "src" / "tiny.onnx", seed=4)
    job = "edgekit-neo-local-ok"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("compiled.params")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\0\0\0\0"))
    s3 = clients.client("s3", settings)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"edgekit/neo/{job}/output", Body=buf.getvalue())

    report = compile_model(
        model,
        "sagemaker-neo",
        tmp_path / "out",
        options=CompileOptions(
            extra={
                "device": "ml_m5",
                "job_name": job,
                "poll_interval_s": 0.01,
                "aws": neo_account(settings),
            }
        ),
    )
    assert report.status == "skipped"
    info = read_compile_info(tmp_path / "out" / "model.onnx")
    assert info is not None
    assert info["backend"] == "local" and info["target_device"] == "ml_m5"
    assert info["job_arn"].endswith(f":compilation-job/{job}")
