"""``sagemaker-neo``: compile the ONNX model with a SageMaker Neo compilation job.

Steps: pack the model as Neo expects (one ``.onnx`` file in a ``.tar.gz``), upload it
to S3, ``CreateCompilationJob`` (framework ONNX, the input's name and shape from
the model's edgekit metadata, a target device or platform), poll
``DescribeCompilationJob`` until the job ends, download the artifact named by
``ModelArtifacts.S3ModelArtifacts``.

The output folder holds the Neo artifact (``model-<device>.tar.gz``, run by DLR on
the device) and a copy of the source ``model.onnx``: the package builder reads the
edgekit metadata (preprocessing, labels, the compile record with the job and S3
URIs) from that file, and a device without DLR refuses the package by its
``runtime``. This machine cannot run a Neo artifact, so the parity check is
recorded as skipped.

The AWS account comes from the caller as a :class:`NeoAccount` (the S3 and
SageMaker clients, the execution role, an existing bucket): this module never
builds clients or reads settings itself. :func:`edgekit.neo.neo_account` wires
one from edgekit's settings, on either backend. On the local backend the calls
land on moto, which accepts the job and reports it COMPLETED at once but
compiles nothing and writes no artifact: the compiler then fails, naming the S3
URI, because there is nothing honest to download. Neo needs ``backend=aws``.

Options (``CompileOptions.extra``): ``device`` (required), ``aws`` (required: a
NeoAccount, or a callable ``connect(role_arn=..., bucket=...)`` returning one,
called once the inputs are checked), ``bucket``, ``role_arn``, ``prefix``,
``job_name``, ``compiler_options`` (dict or JSON), ``framework_version``,
``max_runtime_s``, ``poll_interval_s``, ``timeout_s``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import secrets
import shutil
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.awsapi import error_code, is_not_found
from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, register_compiler
from edgekit.errors import CompileError, ConfigurationError
from edgekit.files import sha256_file
from edgekit.model.metadata import read_model_info
from edgekit.progress import progress

TARGET = "sagemaker-neo"
FRAMEWORK = "ONNX"
INPUT_MEMBER = "model.onnx"  # the single model file Neo expects in the input archive
SOURCE_COPY = "model.onnx"
DEFAULT_PREFIX = "edgekit/neo"
DEFAULT_MAX_RUNTIME_S = 900  # the API reference's suggested starting point
DEFAULT_POLL_INTERVAL_S = 10.0
# ONNX 1.7, the newest version the Neo framework table lists, reads opsets up to 12.
NEO_MAX_ONNX_OPSET = 12
TERMINAL = ("COMPLETED", "FAILED", "STOPPED")

_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_S3_URI = re.compile(r"^s3://([^/]+)/(.+)$")
_ARCH_ALIASES = {
    "x86_64": "X86_64",
    "amd64": "X86_64",
    "x64": "X86_64",
    "x86": "X86",
    "i386": "X86",
    "i686": "X86",
    "arm64": "ARM64",
    "aarch64": "ARM64",
    "armv8": "ARM64",
    "arm_eabihf": "ARM_EABIHF",
    "armhf": "ARM_EABIHF",
    "armv7l": "ARM_EABIHF",
    "armv7": "ARM_EABIHF",
    "arm_eabi": "ARM_EABI",
}
_NVIDIA_OPTIONS = ("gpu-code", "trt-ver", "cuda-ver")


@dataclass(frozen=True)
class NeoAccount:
    """What a Neo compilation needs from an AWS account; the caller builds it.

    ``bucket`` must exist; ``missing_artifact_hint`` ends the error raised when
    a COMPLETED job left no artifact (the local backend says why it cannot).
    """

    s3: Any
    sagemaker: Any
    role_arn: str
    bucket: str
    region: str
    backend: str = "aws"
    missing_artifact_hint: str = ""


NeoConnect = Callable[..., NeoAccount]
"""``connect(*, role_arn: str | None, bucket: str | None) -> NeoAccount``."""


def _account(value: Any, *, role_arn: str | None, bucket: str | None) -> NeoAccount:
    if isinstance(value, NeoAccount):
        return value
    if callable(value):
        return value(role_arn=role_arn, bucket=bucket)
    raise ConfigurationError(
        "sagemaker-neo needs an AWS account: pass CompileOptions(extra={'aws': "
        "edgekit.neo.neo_account(settings)}) (the edgekit compile command does this)"
    )


class NeoWarning(UserWarning):
    """Something about the request that Neo may refuse (it is sent anyway)."""


@functools.lru_cache(maxsize=1)
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def _enum(shape: str) -> tuple[str, ...]:
    return tuple(_service_model().shape_for(shape).enum)


def target_devices() -> tuple[str, ...]:
    """Neo's named targets (``OutputConfig.TargetDevice``), from botocore's service model."""
    return _enum("TargetDevice")


@dataclass(frozen=True)
class NeoTarget:
    """Either a named ``TargetDevice`` or a ``TargetPlatform`` (Os, Arch, Accelerator)."""

    device: str
    target_device: str | None = None
    os: str | None = None
    arch: str | None = None
    accelerator: str | None = None

    def output_config(self) -> dict[str, Any]:
        if self.target_device is not None:
            return {"TargetDevice": self.target_device}
        platform: dict[str, str] = {"Os": str(self.os), "Arch": str(self.arch)}
        if self.accelerator:
            platform["Accelerator"] = self.accelerator
        return {"TargetPlatform": platform}

    @property
    def slug(self) -> str:
        """The device as a job-name / file-name fragment (``ml-c5``, ``linux-arm64-nvidia``)."""
        return re.sub(r"[^a-z0-9]+", "-", self.device.lower()).strip("-")


def parse_device(device: str) -> NeoTarget:
    """``ml_c5`` / ``jetson_xavier`` (a TargetDevice) or ``linux/x86_64``, ``linux/arm64/nvidia``.

    Values are checked against the enums in botocore's SageMaker service model,
    because botocore's own validation checks types and lengths but not enums.
    """
    value = (device or "").strip()
    if not value:
        raise ConfigurationError(
            "sagemaker-neo needs a target: pass --device (e.g. ml_c5, jetson_xavier, "
            "linux/x86_64, linux/arm64/nvidia)"
        )
    if "/" not in value:
        named = value.lower()
        if named not in target_devices():
            raise ConfigurationError(
                f"--device {value!r} is not a Neo TargetDevice; use one of "
                f"{', '.join(target_devices())}, or a platform such as linux/x86_64"
            )
        return NeoTarget(device=named, target_device=named)
    parts = [p.strip() for p in value.split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigurationError(
            f"--device {value!r}: a platform is OS/ARCH[/ACCELERATOR], e.g. linux/arm64/nvidia"
        )
    os_name = parts[0].upper()
    arch = _ARCH_ALIASES.get(parts[1].lower(), parts[1].upper())
    accelerator = parts[2].upper() if len(parts) == 3 else None
    for field, got, allowed in (
        ("OS", os_name, _enum("TargetPlatformOs")),
        ("architecture", arch, _enum("TargetPlatformArch")),
        ("accelerator", accelerator, _enum("TargetPlatformAccelerator")),
    ):
        if got is not None and got not in allowed:
            raise ConfigurationError(
                f"--device {value!r}: {field} {got!r} is not one Neo knows; use one of "
                f"{', '.join(a.lower() for a in allowed)}"
            )
    return NeoTarget(device=value.lower(), os=os_name, arch=arch, accelerator=accelerator)


def compiler_options_json(target: NeoTarget, options: Any) -> str | None:
    """``OutputConfig.CompilerOptions`` as JSON; NVIDIA platforms must say gpu-code/trt/cuda."""
    if options is None or options == "" or options == {}:
        parsed: dict[str, Any] = {}
    elif isinstance(options, str):
        try:
            parsed = json.loads(options)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"compiler_options is not valid JSON ({exc})") from None
    elif isinstance(options, Mapping):
        parsed = dict(options)
    else:
        raise ConfigurationError("compiler_options must be a dict or a JSON object string")
    if not isinstance(parsed, dict):
        raise ConfigurationError("compiler_options must be a JSON object")
    if target.accelerator == "NVIDIA":
        missing = [k for k in _NVIDIA_OPTIONS if k not in parsed]
        if missing:
            raise ConfigurationError(
                f"--device {target.device}: Neo needs compiler_options {', '.join(missing)} "
                "for NVIDIA platforms, e.g. {'gpu-code': 'sm_72', 'trt-ver': '8.2.1', "
                "'cuda-ver': '10.2'} (CompileOptions(extra={'compiler_options': ...}) from "
                "Python); or use a named device such as jetson_xavier"
            )
    if not parsed:
        return None
    text = json.dumps(parsed, sort_keys=True)
    if target.target_device is not None:
        warnings.warn(
            f"compiler_options are meant for TargetPlatform targets; {target.device} is a "
            "named TargetDevice, Neo may ignore or refuse them",
            NeoWarning,
            stacklevel=3,
        )
    return text


def data_input_config(source: Path) -> dict[str, list[int]]:
    """``{input_name: shape}`` for Neo, from the model's edgekit metadata and ONNX graph.

    A symbolic batch dimension becomes 1, a symbolic height/width the
    preprocessing size: Neo compiles for one static shape.
    """
    import onnx

    pre = read_model_info(source).preprocessing
    proto = onnx.load(str(source), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = {i.name: i for i in proto.graph.input if i.name not in initializers}
    if pre.input_name not in inputs:
        raise CompileError(
            f"{source}: the edgekit metadata names input {pre.input_name!r}, but the graph's "
            f"inputs are {', '.join(inputs) or 'none'}; re-export the model"
        )
    expected = (
        [1, 3, pre.height, pre.width] if pre.layout == "NCHW" else [1, pre.height, pre.width, 3]
    )
    dims = inputs[pre.input_name].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise CompileError(
            f"{source}: input {pre.input_name!r} has {len(dims)} dimensions; Neo needs the "
            f"4-d {pre.layout} image input {expected}"
        )
    shape = [
        int(d.dim_value) if d.HasField("dim_value") else want
        for d, want in zip(dims, expected, strict=True)
    ]
    if shape != expected:
        raise CompileError(
            f"{source}: input {pre.input_name!r} has shape {shape}, but the preprocessing "
            f"metadata says {pre.layout} {expected}; re-export the model"
        )
    return {pre.input_name: shape}


def onnx_opset(source: Path) -> int | None:
    import onnx

    proto = onnx.load(str(source), load_external_data=False)
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def pack_for_neo(source: Path, dest: Path) -> Path:
    """A ``.tar.gz`` with the model as its single member ``model.onnx``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        info = tar.gettarinfo(str(source), arcname=INPUT_MEMBER)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(source, "rb") as fh:
            tar.addfile(info, fh)
    return dest


def default_job_name(target: NeoTarget, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    slug = target.slug[:30].strip("-")
    return f"edgekit-neo-{slug}-{stamp}-{secrets.token_hex(2)}"


def check_job_name(name: str) -> str:
    if not _JOB_NAME.match(name):
        raise ConfigurationError(
            f"job_name {name!r}: a compilation job name has 1-63 letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return name


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri or "")
    if match is None:
        raise CompileError(f"{uri!r} is not an s3://bucket/key URI")
    return match.group(1), match.group(2)


def build_compilation_request(
    *,
    job_name: str,
    role_arn: str,
    input_s3_uri: str,
    output_s3_uri: str,
    target: NeoTarget,
    input_config: Mapping[str, list[int]],
    compiler_options: str | None = None,
    framework_version: str | None = None,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
) -> dict[str, Any]:
    """The ``CreateCompilationJob`` parameters (pure; tests validate it with botocore).

    ``FrameworkVersion`` is left out unless given: the API reference says the field
    is only supported for MXNet, PyTorch, TensorFlow and TFLite.
    """
    input_cfg: dict[str, Any] = {
        "S3Uri": input_s3_uri,
        "DataInputConfig": json.dumps(dict(input_config)),
        "Framework": FRAMEWORK,
    }
    if framework_version:
        input_cfg["FrameworkVersion"] = framework_version
    output_cfg: dict[str, Any] = {"S3OutputLocation": output_s3_uri, **target.output_config()}
    if compiler_options:
        output_cfg["CompilerOptions"] = compiler_options
    return {
        "CompilationJobName": check_job_name(job_name),
        "RoleArn": role_arn,
        "InputConfig": input_cfg,
        "OutputConfig": output_cfg,
        "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime_s)},
    }


def wait_for_compilation(
    sagemaker: Any,
    job_name: str,
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    timeout_s: float = DEFAULT_MAX_RUNTIME_S + 300,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll ``DescribeCompilationJob`` with a progress bar until the job ends.

    Returns the final description when COMPLETED; raises CompileError with
    Neo's ``FailureReason`` when FAILED, when STOPPED, and on ``timeout_s``
    (the job keeps running in that case, and the message says how to stop it).
    """
    started = clock()
    with progress(total=None, desc=f"Neo {job_name}", unit="poll") as bar:
        while True:
            desc = sagemaker.describe_compilation_job(CompilationJobName=job_name)
            status = str(desc.get("CompilationJobStatus", "UNKNOWN"))
            bar.set_postfix_str(f"{status}, {clock() - started:.0f} s", refresh=False)
            bar.update(1)
            if status == "COMPLETED":
                return desc
            if status == "FAILED":
                reason = desc.get("FailureReason") or "no FailureReason given"
                raise CompileError(f"SageMaker Neo compilation job {job_name} FAILED: {reason}")
            if status == "STOPPED":
                reason = desc.get("FailureReason") or (
                    "stopped by StopCompilationJob or after StoppingCondition.MaxRuntimeInSeconds"
                )
                raise CompileError(f"SageMaker Neo compilation job {job_name} STOPPED: {reason}")
            elapsed = clock() - started
            if elapsed >= timeout_s:
                raise CompileError(
                    f"SageMaker Neo compilation job {job_name} is still {status} after "
                    f"{elapsed:.0f} s; it keeps running: check it with `aws sagemaker "
                    f"describe-compilation-job --compilation-job-name {job_name}` or stop it "
                    "with `aws sagemaker stop-compilation-job`"
                )
            sleep(poll_interval_s)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def download_artifact(
    s3: Any, uri: str, out_dir: Path, *, missing_hint: str, job_name: str
) -> Path:
    """Download the Neo output ``uri`` into ``out_dir``; CompileError if it is not there.

    ``missing_hint`` (the backend profile's ``neo_missing_artifact_hint``) ends that error.
    """
    bucket, key = parse_s3_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # the caller's client: botocore is not imported here
        if not is_not_found(exc):
            raise
        raise CompileError(
            f"compilation job {job_name} reports COMPLETED but its artifact {uri} does not "
            f"exist.{missing_hint}"
        ) from None
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".tar.gz"):
        name = f"{name or 'model'}.tar.gz"
    dest = out_dir / name
    tmp = dest.with_name(dest.name + ".partial")
    try:
        s3.download_file(bucket, key, str(tmp))
        if not tarfile.is_tarfile(tmp):
            raise CompileError(f"{uri}: the Neo artifact is not a tar archive")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


@register_compiler
class SageMakerNeoCompiler(Compiler):
    target = TARGET
    runtime = "dlr"
    description = "SageMaker Neo compilation job for a device or platform (output runs on DLR)"

    def compile(self, source: Path, out_dir: Path, options: CompileOptions) -> CompiledModel:
        extra = dict(options.extra)
        target = parse_device(str(extra.get("device") or ""))
        compiler_options = compiler_options_json(target, extra.get("compiler_options"))
        input_config = data_input_config(source)
        opset = onnx_opset(source)
        if opset is not None and opset > NEO_MAX_ONNX_OPSET:
            warnings.warn(
                f"{source.name} uses ONNX opset {opset}; the Neo framework table lists ONNX "
                f"1.7 (opset <= {NEO_MAX_ONNX_OPSET}), so the job may fail: re-export with "
                f"opset {NEO_MAX_ONNX_OPSET} if it does",
                NeoWarning,
                stacklevel=2,
            )
        job_name = check_job_name(str(extra.get("job_name") or default_job_name(target)))
        prefix = str(extra.get("prefix") or DEFAULT_PREFIX).strip("/")
        max_runtime_s = int(extra.get("max_runtime_s") or DEFAULT_MAX_RUNTIME_S)
        poll_s = float(extra.get("poll_interval_s") or DEFAULT_POLL_INTERVAL_S)
        timeout_s = float(extra.get("timeout_s") or max_runtime_s + 300)

        aws = _account(extra.get("aws"), role_arn=extra.get("role_arn"), bucket=extra.get("bucket"))
        s3, sagemaker, bucket = aws.s3, aws.sagemaker, aws.bucket

        input_key = f"{prefix}/{job_name}/input/model.tar.gz"
        input_uri = f"s3://{bucket}/{input_key}"
        output_uri = f"s3://{bucket}/{prefix}/{job_name}/output"
        with tempfile.TemporaryDirectory(prefix="edgekit-neo-") as tmp:
            archive = pack_for_neo(source, Path(tmp) / "model.tar.gz")
            s3.upload_file(str(archive), bucket, input_key)

        request = build_compilation_request(
            job_name=job_name,
            role_arn=aws.role_arn,
            input_s3_uri=input_uri,
            output_s3_uri=output_uri,
            target=target,
            input_config=input_config,
            compiler_options=compiler_options,
            framework_version=extra.get("framework_version"),
            max_runtime_s=max_runtime_s,
        )
        try:
            job_arn = str(sagemaker.create_compilation_job(**request)["CompilationJobArn"])
        except Exception as exc:  # the caller's client: botocore is not imported here
            if not error_code(exc):
                raise
            raise CompileError(f"SageMaker refused compilation job {job_name}: {exc}") from exc
        desc = wait_for_compilation(
            sagemaker, job_name, poll_interval_s=poll_s, timeout_s=timeout_s
        )
        artifact_uri = str((desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or "")
        if not artifact_uri:
            raise CompileError(
                f"compilation job {job_name} is COMPLETED but names no "
                "ModelArtifacts.S3ModelArtifacts"
            )
        artifact = download_artifact(
            s3,
            artifact_uri,
            out_dir,
            missing_hint=aws.missing_artifact_hint,
            job_name=job_name,
        )
        reference = out_dir / SOURCE_COPY
        if reference.resolve() != source.resolve():
            shutil.copyfile(source, reference)

        details: dict[str, Any] = {
            "device": target.device,
            "target_device": target.target_device,
            "target_platform": target.output_config().get("TargetPlatform"),
            "compiler_options": json.loads(compiler_options) if compiler_options else None,
            "framework": FRAMEWORK,
            "framework_version": extra.get("framework_version"),
            "onnx_opset": opset,
            "data_input_config": input_config,
            "job_name": job_name,
            "job_arn": job_arn,
            "role_arn": aws.role_arn,
            "region": aws.region,
            "backend": aws.backend,
            "input_s3_uri": input_uri,
            "output_s3_uri": output_uri,
            "artifact_s3_uri": artifact_uri,
            "artifact": artifact.name,
            "artifact_sha256": sha256_file(artifact),
            "artifact_digest": (desc.get("ModelDigests") or {}).get("ArtifactDigest"),
            "inference_image": desc.get("InferenceImage"),
            "job_started": _jsonable(desc.get("CompilationStartTime")),
            "job_ended": _jsonable(desc.get("CompilationEndTime")),
            "precision": "fp32",
        }
        return CompiledModel(
            target=self.target,
            runtime=self.runtime,
            model_path=artifact,
            files=(artifact, reference),
            details=details,
            runs_locally=False,
        )
