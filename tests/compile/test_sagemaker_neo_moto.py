"""The ``sagemaker-neo`` compiler end to end against moto on loopback, on the AWS code path.

Settings use ``backend="aws"``: the standard credential chain and botocore's own
endpoint resolution, pointed at a ThreadedMotoServer with ``AWS_ENDPOINT_URL``.
So these are exactly the calls the compiler makes on AWS, each validated by
botocore before it is sent.

What moto cannot do: compile. Its CreateCompilationJob records the request and
DescribeCompilationJob says COMPLETED at once, with ``S3ModelArtifacts`` equal to
the ``S3OutputLocation`` we asked for, and writes no artifact. One test checks
the compiler then fails with a clear error; another plays Neo's part by putting
an archive where moto says the artifact is, and follows it into the package.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from edgekit.compile import CompileOptions, compile_model, read_compile_info
from edgekit.compile.sagemaker_neo import NeoWarning
from edgekit.compile.testing import build_tiny_model
from edgekit.errors import CompileError, ConfigurationError
from edgekit.neo import neo_account
from edgekit.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    # The tiny model uses opset 17; the one test that cares asserts the warning.
    pytest.mark.filterwarnings("ignore::edgekit.compile.sagemaker_neo.NeoWarning"),
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/EdgekitNeoRole"


@pytest.fixture
def settings(moto_settings: Settings) -> Settings:
    """AWS backend settings whose calls land on moto (conftest's ``moto_settings``)."""
    return moto_settings


@pytest.fixture
def aws(moto_url: str) -> Any:
    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("neo-moto") / "src" / "tiny.onnx", seed=2)


def _options(settings: Settings, job: str, **extra: Any) -> CompileOptions:
    return CompileOptions(
        extra={
            "device": "ml_c5",
            "job_name": job,
            "aws": neo_account(settings),
            "poll_interval_s": 0.01,
            **extra,
        }
    )


def _neo_artifact() -> bytes:
    """A stand-in for Neo's output archive (real ones hold compiled.so/.params/.json)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps({"stand_in": "moto does not run Neo"}).encode()
        info = tarfile.TarInfo("compiled_model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_on_aws_a_missing_bucket_is_an_error_not_created(
    settings: Settings, tiny: Path, tmp_path: Path, aws: Any
) -> None:
    with pytest.raises(ConfigurationError, match="neo-missing-bucket does not exist"):
        compile_model(
            tiny,
            "sagemaker-neo",
            tmp_path / "out",
            options=_options(settings, "job-nobucket", bucket="neo-missing-bucket", role_arn=ROLE),
        )
    names = [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]
    assert "neo-missing-bucket" not in names


def test_without_a_role_outside_studio_the_error_says_what_to_set(
    settings: Settings, tiny: Path, tmp_path: Path, aws: Any
) -> None:
    aws("s3").create_bucket(Bucket="neo-norole")
    # moto's caller is an IAM user (arn:aws:sts::...:user/moto), not a role.
    with pytest.raises(ConfigurationError, match="EDGEKIT_SAGEMAKER_ROLE_ARN"):
        compile_model(
            tiny,
            "sagemaker-neo",
            tmp_path / "out",
            options=_options(settings, "job-norole", bucket="neo-norole"),
        )


def test_the_job_is_created_as_requested_and_a_missing_artifact_is_a_clear_error(
    settings: Settings, tiny: Path, tmp_path: Path, aws: Any
) -> None:
    s3, sm = aws("s3"), aws("sagemaker")
    s3.create_bucket(Bucket="neo-absent")
    with pytest.raises(CompileError) as caught:
        compile_model(
            tiny,
            "sagemaker-neo",
            tmp_path / "out",
            options=_options(
                settings, "edgekit-neo-absent", bucket="neo-absent", role_arn=ROLE, device="rasp4b"
            ),
        )
    message = str(caught.value)
    assert "edgekit-neo-absent reports COMPLETED" in message
    assert "s3://neo-absent/edgekit/neo/edgekit-neo-absent/output does not exist" in message

    # What moto recorded is what Neo would have been asked to do.
    job = sm.describe_compilation_job(CompilationJobName="edgekit-neo-absent")
    assert job["RoleArn"] == ROLE
    assert job["InputConfig"] == {
        "S3Uri": "s3://neo-absent/edgekit/neo/edgekit-neo-absent/input/model.tar.gz",
        "DataInputConfig": json.dumps({"image": [1, 3, 64, 96]}),
        "Framework": "ONNX",
    }
    assert job["OutputConfig"] == {
        "S3OutputLocation": "s3://neo-absent/edgekit/neo/edgekit-neo-absent/output",
        "TargetDevice": "rasp4b",
    }
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}

    # The uploaded input is the model, as Neo expects it: model.onnx alone in a .tar.gz.
    body = s3.get_object(
        Bucket="neo-absent", Key="edgekit/neo/edgekit-neo-absent/input/model.tar.gz"
    )["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.getnames() == ["model.onnx"]
        member = tar.extractfile("model.onnx")
        assert member is not None and member.read() == tiny.read_bytes()
    assert not (tmp_path / "out" / "model.onnx").exists()  # nothing half-written


def test_with_an_artifact_the_compile_info_reaches_the_package_manifest(
    settings: Settings, tiny: Path, tmp_path: Path, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit.package import build_package, generate_keypair

    s3 = aws("s3")
    s3.create_bucket(Bucket="neo-present")
    job = "edgekit-neo-present"
    # Play Neo's part: put an archive where moto will say the artifact is.
    s3.put_object(Bucket="neo-present", Key=f"edgekit/neo/{job}/output", Body=_neo_artifact())
    monkeypatch.setenv("EDGEKIT_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("EDGEKIT_ARTIFACT_BUCKET", "neo-present")

    out = tmp_path / "neo"
    with pytest.warns(NeoWarning, match="opset 17"):
        report = compile_model(
            tiny,
            "sagemaker-neo",
            out,
            options=_options(settings, job, device="linux/arm64"),
        )
    assert report.status == "skipped" and report.parity is None
    assert report.runtime == "dlr"
    assert sorted(report.files) == ["model.onnx", "output.tar.gz"]
    assert report.model_path == out / "output.tar.gz"

    info = read_compile_info(out / "model.onnx")
    assert info is not None
    expected = {
        "target": "sagemaker-neo",
        "runtime": "dlr",
        "device": "linux/arm64",
        "target_device": None,
        "target_platform": {"Os": "LINUX", "Arch": "ARM64"},
        "framework": "ONNX",
        "job_name": job,
        "job_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:compilation-job/{job}",
        "role_arn": ROLE,
        "backend": "aws",
        "input_s3_uri": f"s3://neo-present/edgekit/neo/{job}/input/model.tar.gz",
        "output_s3_uri": f"s3://neo-present/edgekit/neo/{job}/output",
        "artifact_s3_uri": f"s3://neo-present/edgekit/neo/{job}/output",
        "artifact": "output.tar.gz",
        "data_input_config": {"image": [1, 3, 64, 96]},
    }
    assert {k: info.get(k) for k in expected} == expected
    assert info["artifact_sha256"] == report.compiled_sha256

    keys = generate_keypair(tmp_path / "keys")
    built = build_package(
        out,
        name="tag-scratch-detector",
        version="1.0.0",
        key=keys.private_key,
        out=tmp_path / "pkg.tar.gz",
    )
    manifest = built.manifest
    assert manifest.runtime == "dlr"
    assert manifest.compile is not None and manifest.compile["job_arn"] == expected["job_arn"]
    assert manifest.compile["artifact_s3_uri"] == expected["artifact_s3_uri"]
    assert {"model.onnx", "output.tar.gz", "compile_report.json"} <= set(manifest.files)


def test_a_job_name_already_used_is_refused_with_the_reason(
    settings: Settings, tiny: Path, tmp_path: Path, aws: Any
) -> None:
    aws("s3").create_bucket(Bucket="neo-dup")
    opts = _options(settings, "edgekit-neo-dup", bucket="neo-dup", role_arn=ROLE)
    with pytest.raises(CompileError):  # first run: no artifact
        compile_model(tiny, "sagemaker-neo", tmp_path / "a", options=opts)
    with pytest.raises(CompileError, match="SageMaker refused compilation job edgekit-neo-dup"):
        compile_model(tiny, "sagemaker-neo", tmp_path / "b", options=opts)
