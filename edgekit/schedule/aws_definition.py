"""What a scheduled run on AWS is made of: a SageMaker pipeline definition with one
notebook-job step, the notebook that step executes, and the script that installs edgekit.

The step is what the SageMaker Python SDK's ``NotebookJobStep`` compiles to (a step of
type ``Training`` whose container entry point is ``amazon_sagemaker_scheduler``, the
notebook-job runner of SageMaker Distribution images, with the ``SM_*`` variables that
tell it which notebook to run, which kernel and which init script), written out with
plain JSON so neither the ~1 GB ``sagemaker`` SDK nor a machine of the user's is needed:

- input: ``<s3_root>/<name>/input/`` holds ``run_pipeline.ipynb`` (below), ``init.sh``
  (``pip install`` edgekit) and ``params.yaml`` (the schedule's ``--params``);
- the notebook calls `edgekit.pipeline.run_pipeline` with ``backend="aws"`` (the same
  notebooks 01-04 and report as `edgekit pipeline run --backend aws`) and uploads the run
  folder (executed notebooks, their HTML, ``report.html``) to
  ``<s3_root>/<name>/runs/<pipeline execution id>/``, also when a notebook fails;
- the executed runner notebook itself lands where SageMaker puts notebook-job output,
  ``<s3_root>/<name>/jobs/<pipeline execution id>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgekit.version import __version__

PIPELINE_VERSION = "2020-12-01"
STEP_NAME = "RunNotebooks"
RUNNER_NOTEBOOK = "run_pipeline.ipynb"
INIT_SCRIPT = "init.sh"
PARAMS_FILE = "params.yaml"
#: The notebook-job channel and entry point of SageMaker Distribution images (as the SDK).
CHANNEL = "sagemaker_headless_execution_pipelinestep"
ENTRY_POINT = ["amazon_sagemaker_scheduler"]
#: Environment variable (in the job) with the S3 prefix of the run folder.
RUN_URI_ENV = "EDGEKIT_RUN_S3_URI"
DEFAULT_INSTALL = f"edgekit-inspection[aws]=={__version__}"
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}


@dataclass(frozen=True)
class NotebookJob:
    """Where and how the notebook job runs (the `edgekit pipeline schedule` AWS flags)."""

    role_arn: str  # the job's execution role (SageMaker assumes it)
    image_uri: str  # a SageMaker Distribution image (or one built on it) in the region
    s3_root: str  # s3://bucket/prefix
    instance_type: str = "ml.m5.large"
    kernel_name: str = "python3"
    volume_gb: int = 30
    max_runtime_seconds: int = 4 * 3600
    install: str = DEFAULT_INSTALL  # pip requirement for edgekit; "" when the image has it


def _join(*values: Any) -> dict[str, Any]:
    return {"Std:Join": {"On": "/", "Values": list(values)}}


def input_uri(job: NotebookJob, name: str) -> str:
    return f"{job.s3_root.rstrip('/')}/{name}/input"


def runs_uri(job: NotebookJob, name: str) -> str:
    """The prefix under which each execution's run folder lands (``<execution id>/``)."""
    return f"{job.s3_root.rstrip('/')}/{name}/runs"


def step_arguments(job: NotebookJob, name: str, region: str, project: str) -> dict[str, Any]:
    """The step's ``Arguments``: a CreateTrainingJob request without ``TrainingJobName``
    (the pipeline names each job); ``Std:Join`` values are resolved per execution."""
    environment: dict[str, Any] = {
        "AWS_DEFAULT_REGION": region,
        "SM_JOB_DEF_VERSION": "1.0",
        "SM_ENV_NAME": "sagemaker-default-env",
        "SM_SKIP_EFS_SIMULATION": "true",
        "SM_EXECUTION_INPUT_PATH": f"/opt/ml/input/data/{CHANNEL}",
        "SM_KERNEL_NAME": job.kernel_name,
        "SM_INPUT_NOTEBOOK_NAME": RUNNER_NOTEBOOK,
        "SM_OUTPUT_NOTEBOOK_NAME": f"{name}-output.ipynb",
        "SM_INIT_SCRIPT": INIT_SCRIPT,
        "EDGEKIT_BACKEND": "aws",
        "EDGEKIT_REGION": region,
        "EDGEKIT_PROJECT_NAME": project,
        RUN_URI_ENV: _join(runs_uri(job, name), EXECUTION_ID),
    }
    return {
        "RoleArn": job.role_arn,
        "RetryStrategy": {"MaximumRetryAttempts": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
        "EnableInterContainerTrafficEncryption": True,
        "AlgorithmSpecification": {
            "TrainingImage": job.image_uri,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ENTRY_POINT,
        },
        "InputDataConfig": [
            {
                "ChannelName": CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": input_uri(job, name),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {
            "S3OutputPath": _join(f"{job.s3_root.rstrip('/')}/{name}/jobs", EXECUTION_ID)
        },
        "ResourceConfig": {
            "VolumeSizeInGB": job.volume_gb,
            "InstanceCount": 1,
            "InstanceType": job.instance_type,
        },
        "Tags": [
            {"Key": "sagemaker:name", "Value": name},
            {"Key": "sagemaker:notebook-name", "Value": RUNNER_NOTEBOOK},
            {"Key": "sagemaker:notebook-job-origin", "Value": "PIPELINE_STEP"},
            {"Key": "sagemaker:is-studio-archived", "Value": "false"},
            {"Key": "edgekit:schedule", "Value": name},
        ],
        "Environment": environment,
    }


def pipeline_definition(job: NotebookJob, name: str, region: str, project: str) -> dict[str, Any]:
    """The SageMaker pipeline definition (``PipelineDefinition`` of CreatePipeline, as JSON)."""
    return {
        "Version": PIPELINE_VERSION,
        "Metadata": {},
        "Parameters": [],
        "Steps": [
            {
                "Name": STEP_NAME,
                "Type": "Training",
                "Description": "edgekit pipeline run --backend aws, as a SageMaker notebook job",
                "Arguments": step_arguments(job, name, region, project),
            }
        ],
    }


def resolve(value: Any, execution_id: str) -> Any:
    """``value`` with ``Std:Join`` and the execution id filled in (what the service does)."""
    if isinstance(value, dict):
        if value == EXECUTION_ID:
            return execution_id
        if set(value) == {"Std:Join"}:
            spec = value["Std:Join"]
            return spec["On"].join(str(resolve(v, execution_id)) for v in spec["Values"])
        return {k: resolve(v, execution_id) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, execution_id) for v in value]
    return value


_RUNNER_SOURCE = """\
# Runs notebooks 01-04 on the AWS backend and uploads the run folder to S3 (edgekit schedule).
import os
import pathlib

import boto3
import yaml

from edgekit.pipeline import run_pipeline

inputs = pathlib.Path(os.environ.get("SM_EXECUTION_INPUT_PATH", "."))
params_file = inputs / "params.yaml"
params = (yaml.safe_load(params_file.read_text()) or {}) if params_file.is_file() else {}
for name in ("backend", "output_dir"):  # this run sets them
    params.pop(name, None)
out = pathlib.Path("edgekit-run").absolute()
target = os.environ["EDGEKIT_RUN_S3_URI"]
try:
    run_pipeline(out_dir=out, backend="aws", parameters=params)
finally:
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(out).as_posix()}"
        s3.upload_file(str(path), bucket, key)
    print(f"run folder: {target}/ (report: {target}/report.html)")
"""


def runner_notebook() -> dict[str, Any]:
    """The notebook the job executes (nbformat 4 JSON)."""
    return {
        "cells": [
            {
                "cell_type": "markdown",
                "id": "about",
                "metadata": {},
                "source": "# edgekit scheduled run\n\n`edgekit pipeline run --backend aws` as a "
                "SageMaker notebook job; the run folder goes to `$EDGEKIT_RUN_S3_URI`.",
            },
            {
                "cell_type": "code",
                "id": "run",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": _RUNNER_SOURCE,
            },
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def init_script(install: str) -> str:
    """``init.sh``: sourced before the notebook runs; installs edgekit unless the image has it."""
    lines = ["#!/bin/bash", "# sourced by the notebook-job runner: no `set -e` or `exit` here"]
    if install:
        lines.append(f"pip install --quiet {json.dumps(install)}")
    return "\n".join(lines) + "\n"


__all__ = [
    "CHANNEL",
    "DEFAULT_INSTALL",
    "INIT_SCRIPT",
    "PARAMS_FILE",
    "RUNNER_NOTEBOOK",
    "RUN_URI_ENV",
    "STEP_NAME",
    "NotebookJob",
    "init_script",
    "input_uri",
    "pipeline_definition",
    "resolve",
    "runner_notebook",
    "runs_uri",
    "step_arguments",
]
