"""SageMaker Neo: device parsing, request construction, botocore validation, polling.

No network here. Requests are checked two ways: botocore's ParamValidator (what
a real client runs before sending) and ``botocore.stub.Stubber`` on a real
SageMaker client, which validates the parameters of every call and lets the
tests script DescribeCompilationJob answers moto cannot give (IN_PROGRESS,
FAILED, STOPPED).
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import boto3
import onnx
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from edgekit.compile import get_compiler, known_targets
from edgekit.compile.sagemaker_neo import (
    DEFAULT_MAX_RUNTIME_S,
    INPUT_MEMBER,
    NeoTarget,
    NeoWarning,
    SageMakerNeoCompiler,
    build_compilation_request,
    check_job_name,
    compiler_options_json,
    data_input_config,
    default_job_name,
    pack_for_neo,
    parse_device,
    target_devices,
    wait_for_compilation,
)
from edgekit.compile.testing import build_tiny_model
from edgekit.errors import CompileError, ConfigurationError
from edgekit.model.metadata import read_model_info, write_model_info

ROLE = "arn:aws:iam::123456789012:role/service-role/EdgekitNeo"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("neo") / "tiny.onnx", seed=1)


@pytest.fixture
def sagemaker() -> Any:
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _errors(operation: str, params: dict[str, Any]) -> str:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(params, shape.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


def _request(target: NeoTarget, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "job_name": "edgekit-neo-test-1",
        "role_arn": ROLE,
        "input_s3_uri": "s3://bucket/edgekit/neo/job/input/model.tar.gz",
        "output_s3_uri": "s3://bucket/edgekit/neo/job/output",
        "target": target,
        "input_config": {"image": [1, 3, 64, 96]},
    }
    kwargs.update(overrides)
    return build_compilation_request(**kwargs)


def test_sagemaker_neo_is_a_registered_target() -> None:
    assert "sagemaker-neo" in known_targets()
    compiler = get_compiler("SageMaker_Neo")
    assert isinstance(compiler, SageMakerNeoCompiler)
    assert compiler.runtime == "dlr"


@pytest.mark.parametrize(
    ("device", "config"),
    [
        ("ml_c5", {"TargetDevice": "ml_c5"}),
        ("Jetson_Xavier", {"TargetDevice": "jetson_xavier"}),
        ("linux/x86_64", {"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}}),
        ("linux/amd64", {"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}}),
        ("linux/aarch64", {"TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"}}),
        (
            "linux/arm64/nvidia",
            {"TargetPlatform": {"Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA"}},
        ),
        (
            "linux/armhf/mali",
            {"TargetPlatform": {"Os": "LINUX", "Arch": "ARM_EABIHF", "Accelerator": "MALI"}},
        ),  # noqa: E501
    ],
)
def test_devices_become_target_device_or_platform(device: str, config: dict[str, Any]) -> None:
    assert parse_device(device).output_config() == config


def test_named_devices_come_from_botocore() -> None:
    devices = target_devices()
    assert {"ml_c5", "jetson_xavier", "rasp4b"} <= set(devices)


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        ("", "pass --device"),
        ("ml_c99", "not a Neo TargetDevice"),
        ("windows/x86_64", "OS 'WINDOWS'"),
        ("linux/riscv64", "architecture 'RISCV64'"),
        ("linux/arm64/tpu", "accelerator 'TPU'"),
        ("linux/arm64/nvidia/extra", "OS/ARCH[/ACCELERATOR]"),
        ("linux/", "OS/ARCH[/ACCELERATOR]"),
    ],
)
def test_bad_devices_say_what_is_valid(device: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        parse_device(device)


def test_nvidia_platform_needs_gpu_compiler_options() -> None:
    target = parse_device("linux/arm64/nvidia")
    with pytest.raises(ConfigurationError, match="gpu-code, trt-ver, cuda-ver"):
        compiler_options_json(target, None)
    with pytest.raises(ConfigurationError, match="trt-ver, cuda-ver"):
        compiler_options_json(target, {"gpu-code": "sm_72"})
    text = compiler_options_json(
        target, '{"gpu-code": "sm_72", "trt-ver": "8.2.1", "cuda-ver": "10.2"}'
    )
    assert json.loads(text or "") == {"gpu-code": "sm_72", "trt-ver": "8.2.1", "cuda-ver": "10.2"}
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        compiler_options_json(target, "{gpu")
    assert compiler_options_json(parse_device("linux/x86_64"), None) is None
    with pytest.warns(NeoWarning, match="TargetPlatform"):
        compiler_options_json(parse_device("ml_c5"), {"mcpu": "skylake-avx512"})


def test_data_input_config_comes_from_the_model(tiny: Path, tmp_path: Path) -> None:
    assert data_input_config(tiny) == {"image": [1, 3, 64, 96]}

    # Metadata naming an input the graph does not have is caught before any upload.
    proto = onnx.load(str(tiny))
    info = read_model_info(proto)
    write_model_info(
        proto,
        info.replace(
            preprocessing=info.preprocessing.__class__(
                **{**info.preprocessing.to_json(), "input_name": "pixels"}
            )
        ),
    )
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(CompileError, match="'pixels'.*graph's inputs are image"):
        data_input_config(broken)

    # So is metadata whose size disagrees with the graph.
    proto = onnx.load(str(tiny))
    write_model_info(
        proto,
        info.replace(
            preprocessing=info.preprocessing.__class__(
                **{**info.preprocessing.to_json(), "height": 128}
            )
        ),
    )
    wrong = tmp_path / "wrong.onnx"
    onnx.save(proto, str(wrong))
    with pytest.raises(CompileError, match=r"shape \[1, 3, 64, 96\].*\[1, 3, 128, 96\]"):
        data_input_config(wrong)


def test_the_input_archive_holds_one_model_onnx(tiny: Path, tmp_path: Path) -> None:
    archive = pack_for_neo(tiny, tmp_path / "in" / "model.tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [INPUT_MEMBER]
        extracted = tar.extractfile(members[0])
        assert extracted is not None and extracted.read() == tiny.read_bytes()


def test_job_names_fit_the_api_pattern() -> None:
    for device in ("ml_c5", "linux/arm64/nvidia", "jetson_xavier"):
        name = default_job_name(parse_device(device))
        assert check_job_name(name) == name and len(name) <= 63
    for bad in ("-lead", "trail-", "has_underscore", "x" * 64, ""):
        with pytest.raises(ConfigurationError, match="job_name"):
            check_job_name(bad)


@pytest.mark.parametrize(
    ("device", "options"),
    [
        ("ml_c5", None),
        ("jetson_xavier", None),
        ("linux/x86_64", {"mcpu": "skylake-avx512"}),
        ("linux/arm64/nvidia", {"gpu-code": "sm_72", "trt-ver": "8.2.1", "cuda-ver": "10.2"}),
    ],
)
def test_requests_pass_botocore_validation_and_the_enums(
    device: str, options: dict[str, str] | None, sagemaker: Any
) -> None:
    target = parse_device(device)
    request = _request(target, compiler_options=compiler_options_json(target, options))
    assert _errors("CreateCompilationJob", request) == ""

    service = sagemaker.meta.service_model
    assert request["InputConfig"]["Framework"] in service.shape_for("Framework").enum
    assert "FrameworkVersion" not in request["InputConfig"]  # not supported for ONNX
    assert json.loads(request["InputConfig"]["DataInputConfig"]) == {"image": [1, 3, 64, 96]}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_S}
    out = request["OutputConfig"]
    if "TargetDevice" in out:
        assert out["TargetDevice"] in service.shape_for("TargetDevice").enum
    else:
        platform = out["TargetPlatform"]
        assert platform["Os"] in service.shape_for("TargetPlatformOs").enum
        assert platform["Arch"] in service.shape_for("TargetPlatformArch").enum
        if "Accelerator" in platform:
            assert platform["Accelerator"] in service.shape_for("TargetPlatformAccelerator").enum
    for uri in (request["InputConfig"]["S3Uri"], out["S3OutputLocation"]):
        assert re.fullmatch(service.shape_for("S3Uri").metadata["pattern"], uri)
    assert re.fullmatch(service.shape_for("RoleArn").metadata["pattern"], request["RoleArn"])

    # The same request through a real client: Stubber validates it like a real call.
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "create_compilation_job",
            {"CompilationJobArn": "arn:aws:sagemaker:us-east-1:123456789012:compilation-job/x"},
            expected_params=request,
        )
        sagemaker.create_compilation_job(**request)


def test_an_invalid_request_is_refused_by_botocore(sagemaker: Any) -> None:
    from botocore.exceptions import ParamValidationError

    request = _request(parse_device("ml_c5"), max_runtime_s=0)  # MaxRuntimeInSeconds min 1
    assert "MaxRuntimeInSeconds" in _errors("CreateCompilationJob", request)
    with Stubber(sagemaker) as stub, pytest.raises(ParamValidationError):
        stub.add_response("create_compilation_job", {"CompilationJobArn": "arn:x"})
        sagemaker.create_compilation_job(**request)


def _describe(status: str, **extra: Any) -> dict[str, Any]:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    answer: dict[str, Any] = {
        "CompilationJobName": "job-1",
        "CompilationJobArn": "arn:aws:sagemaker:us-east-1:123456789012:compilation-job/job-1",
        "CompilationJobStatus": status,
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "CreationTime": now,
        "LastModifiedTime": now,
        "FailureReason": "",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/out/model-ml_c5.tar.gz"},
        "RoleArn": ROLE,
        "InputConfig": {
            "S3Uri": "s3://bucket/in/model.tar.gz",
            "DataInputConfig": '{"image": [1, 3, 64, 96]}',
            "Framework": "ONNX",
        },
        "OutputConfig": {"S3OutputLocation": "s3://bucket/out", "TargetDevice": "ml_c5"},
    }
    answer.update(extra)
    return answer


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_polling_waits_through_in_progress_until_completed(sagemaker: Any) -> None:
    clock = _Clock()
    with Stubber(sagemaker) as stub:
        for status in ("STARTING", "INPROGRESS", "INPROGRESS", "COMPLETED"):
            stub.add_response(
                "describe_compilation_job",
                _describe(status),
                expected_params={"CompilationJobName": "job-1"},
            )
        desc = wait_for_compilation(
            sagemaker, "job-1", poll_interval_s=5, timeout_s=100, sleep=clock.sleep, clock=clock
        )
        stub.assert_no_pending_responses()
    assert desc["CompilationJobStatus"] == "COMPLETED"
    assert clock.sleeps == [5, 5, 5]


def test_a_failed_job_raises_with_its_failure_reason(sagemaker: Any) -> None:
    clock = _Clock()
    reason = "ClientError: InputConfiguration: Unable to load the ONNX model: opset 17"
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_compilation_job", _describe("INPROGRESS"))
        stub.add_response("describe_compilation_job", _describe("FAILED", FailureReason=reason))
        with pytest.raises(CompileError, match=r"job-1 FAILED: ClientError: InputConfiguration"):
            wait_for_compilation(
                sagemaker, "job-1", poll_interval_s=1, sleep=clock.sleep, clock=clock
            )


def test_a_stopped_job_raises(sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_compilation_job", _describe("STOPPED"))
        with pytest.raises(CompileError, match="job-1 STOPPED: .*MaxRuntimeInSeconds"):
            wait_for_compilation(sagemaker, "job-1", sleep=lambda s: None)


def test_a_job_that_outlives_the_timeout_says_how_to_stop_it(sagemaker: Any) -> None:
    clock = _Clock()
    with Stubber(sagemaker) as stub:
        for _ in range(4):
            stub.add_response("describe_compilation_job", _describe("INPROGRESS"))
        with pytest.raises(CompileError, match="still INPROGRESS after 30 s.*stop-compilation-job"):
            wait_for_compilation(
                sagemaker, "job-1", poll_interval_s=10, timeout_s=30, sleep=clock.sleep, clock=clock
            )


def test_describe_errors_propagate(sagemaker: Any) -> None:
    from botocore.exceptions import ClientError

    with Stubber(sagemaker) as stub:
        stub.add_client_error(
            "describe_compilation_job",
            service_error_code="ResourceNotFound",
            service_message="Could not find compilation job 'job-1'.",
        )
        with pytest.raises(ClientError, match="Could not find"):
            wait_for_compilation(sagemaker, "job-1", sleep=lambda s: None)


@pytest.mark.filterwarnings("ignore::edgekit.compile.sagemaker_neo.NeoWarning")
def test_without_an_account_the_error_says_what_to_pass(tmp_path: Path) -> None:
    from edgekit.compile import CompileOptions
    from edgekit.compile.testing import build_tiny_model
    from edgekit.errors import ConfigurationError

    tiny = build_tiny_model(tmp_path / "tiny.onnx", seed=5)
    compiler = get_compiler("sagemaker-neo")
    with pytest.raises(ConfigurationError, match=r"extra=\{'aws': edgekit.neo.neo_account"):
        compiler.compile(tiny, tmp_path / "out", CompileOptions(extra={"device": "ml_c5"}))


def test_the_compile_layer_reaches_no_higher_layer() -> None:
    """Neo's AWS wiring lives in edgekit.neo; the compiler gets a NeoAccount from its caller."""
    import ast

    import edgekit.compile.sagemaker_neo as neo

    tree = ast.parse(Path(neo.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    higher = ("edgekit.clients", "edgekit.components", "edgekit.studio", "edgekit.settings")
    assert not [m for m in imported if m.startswith(higher) or m == "edgekit"]
