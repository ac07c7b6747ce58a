"""Schedules on AWS (``--backend aws``): a SageMaker pipeline plus an EventBridge Scheduler
schedule, with plain boto3.

`schedule_aws` uploads the runner notebook, ``init.sh`` and the parameters file to
``<s3_root>/<name>/input/``, creates (or updates) the SageMaker pipeline ``<name>`` whose
one notebook-job step runs them (`edgekit.schedule.aws_definition`), and creates the
EventBridge Scheduler schedule ``<name>`` in the group ``edgekit`` whose target is that
pipeline (the templated SageMaker target: Scheduler calls StartPipelineExecution with the
``--scheduler-role``). This is what the SageMaker SDK's ``PipelineSchedule`` +
``pipeline.put_triggers`` create. Nothing of the user's runs: each fire time starts a
pipeline execution, which runs a training job on ``instance_type`` with ``image_uri``.

`aws_rows` lists the group's schedules with each pipeline's latest execution (status,
failure reason, and the S3 folder of its run); `unschedule_aws` deletes the schedule and
the pipeline (the S3 objects stay).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, is_not_found, map_client_error, paginate
from edgekit.errors import ScheduleError
from edgekit.schedule import aws_definition as definition
from edgekit.schedule.cron import parse_expression
from edgekit.schedule.store import ScheduleRow, check_name, to_text
from edgekit.settings import Settings

#: The EventBridge Scheduler group edgekit's schedules live in.
GROUP = "edgekit"
_FAILED = ("Failed", "Stopped")


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ScheduleError(f"--s3-uri {uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _pipeline_missing(exc: ClientError) -> bool:
    """SageMaker says ResourceNotFound; moto says ValidationException "Could not find"."""
    return is_not_found(exc) or (
        error_code(exc) == "ValidationException" and "could not find" in str(exc).lower()
    )


def _ensure_group(scheduler: Any) -> None:
    try:
        scheduler.create_schedule_group(Name=GROUP)
    except ClientError as exc:
        if error_code(exc) != "ConflictException":  # it exists
            raise map_client_error(exc, f"schedule group {GROUP}", "create") from exc


def upload_inputs(settings: Settings, job: definition.NotebookJob, name: str, params: str) -> str:
    """Put the runner notebook, ``init.sh`` and ``params.yaml`` under the input prefix."""
    s3 = clients.client("s3", settings)
    bucket, prefix = _split_s3(definition.input_uri(job, name))
    files = {
        definition.RUNNER_NOTEBOOK: json.dumps(definition.runner_notebook(), indent=1),
        definition.INIT_SCRIPT: definition.init_script(job.install),
        definition.PARAMS_FILE: params,
    }
    for filename, body in files.items():
        try:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{filename}", Body=body.encode())
        except ClientError as exc:
            raise map_client_error(
                exc, f"s3://{bucket}/{prefix}/{filename}", "upload the notebook job's input"
            ) from exc
    return f"s3://{bucket}/{prefix}/"


def _refuse_existing(scheduler: Any, name: str) -> None:
    try:
        scheduler.get_schedule(Name=name, GroupName=GROUP)
    except ClientError as exc:
        if is_not_found(exc):
            return
        raise map_client_error(exc, f"EventBridge schedule {name}", "describe") from exc
    raise ScheduleError(
        f"an AWS schedule named {name!r} exists in the EventBridge Scheduler group {GROUP}; "
        f"pick another --name or `edgekit pipeline unschedule {name} --backend aws` first"
    )


def schedule_aws(
    settings: Settings,
    expression: str,
    *,
    name: str,
    job: definition.NotebookJob,
    scheduler_role_arn: str,
    params_text: str = "",
) -> ScheduleRow:
    """Create the pipeline and its schedule; ScheduleError when the schedule exists."""
    check_name(name)
    parsed = parse_expression(expression)
    aws_expression = parsed.to_aws()
    _split_s3(job.s3_root)
    sagemaker = clients.client("sagemaker", settings)
    scheduler = clients.client("scheduler", settings)
    _refuse_existing(scheduler, name)  # before the upload: never touch a live schedule's input
    upload_inputs(settings, job, name, params_text)
    body = json.dumps(
        definition.pipeline_definition(job, name, settings.region, settings.project_name)
    )
    try:
        sagemaker.describe_pipeline(PipelineName=name)
        exists = True
    except ClientError as exc:
        if not _pipeline_missing(exc):
            raise map_client_error(exc, f"SageMaker pipeline {name}", "describe") from exc
        exists = False
    try:
        if exists:  # left by an earlier schedule of that name: take it over
            pipeline_arn = sagemaker.update_pipeline(
                PipelineName=name, PipelineDefinition=body, RoleArn=job.role_arn
            )["PipelineArn"]
        else:
            pipeline_arn = sagemaker.create_pipeline(
                PipelineName=name,
                PipelineDisplayName=name,
                PipelineDescription=f"edgekit pipeline run --backend aws on {aws_expression}",
                PipelineDefinition=body,
                RoleArn=job.role_arn,
                ClientRequestToken=str(uuid.uuid4()),
                Tags=[{"Key": "edgekit:schedule", "Value": name}],
            )["PipelineArn"]
    except ClientError as exc:
        raise map_client_error(exc, f"SageMaker pipeline {name}", "create") from exc
    _ensure_group(scheduler)
    try:
        scheduler.create_schedule(
            Name=name,
            GroupName=GROUP,
            ScheduleExpression=aws_expression,
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            Description=f"edgekit pipeline schedule {name}: {expression}",
            State="ENABLED",
            Target={
                "Arn": pipeline_arn,
                "RoleArn": scheduler_role_arn,
                "SageMakerPipelineParameters": {"PipelineParameterList": []},
                "RetryPolicy": {"MaximumRetryAttempts": 0},
            },
            ClientToken=str(uuid.uuid4()),
        )
    except ClientError as exc:
        if error_code(exc) == "ConflictException":
            raise ScheduleError(
                f"an AWS schedule named {name!r} exists in the EventBridge Scheduler group "
                f"{GROUP}; pick another --name or `edgekit pipeline unschedule {name} "
                "--backend aws` first"
            ) from exc
        raise map_client_error(exc, f"EventBridge schedule {name}", "create") from exc
    return ScheduleRow(
        name=name,
        expression=aws_expression,
        backend="aws",
        next_run=to_text(parsed.next_after(dt.datetime.now(dt.UTC))),
        last_run=None,
        status="never",
        output=definition.runs_uri(job, name) + "/",
    )


def _latest_execution(sagemaker: Any, pipeline: str) -> dict[str, Any] | None:
    try:
        found = sagemaker.list_pipeline_executions(
            PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
        )["PipelineExecutionSummaries"]
    except ClientError as exc:
        if _pipeline_missing(exc):
            return None
        raise map_client_error(exc, f"SageMaker pipeline {pipeline}", "list executions") from exc
    if not found:
        return None
    arn = found[0]["PipelineExecutionArn"]
    try:
        return dict(sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn))
    except ClientError as exc:
        raise map_client_error(exc, arn, "describe the pipeline execution") from exc


def _runs_prefix(sagemaker: Any, pipeline: str) -> str | None:
    """The run folders' S3 prefix, read back from the pipeline definition."""
    try:
        body = sagemaker.describe_pipeline(PipelineName=pipeline)["PipelineDefinition"]
        step = json.loads(body)["Steps"][0]
        joined = step["Arguments"]["Environment"][definition.RUN_URI_ENV]["Std:Join"]["Values"]
        return str(joined[0])
    except ClientError as exc:
        if _pipeline_missing(exc):
            return None
        raise map_client_error(exc, f"SageMaker pipeline {pipeline}", "describe") from exc
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # a pipeline edgekit did not write


def aws_rows(settings: Settings, *, now: dt.datetime | None = None) -> list[ScheduleRow]:
    """Every schedule of the ``edgekit`` group with its pipeline's latest execution."""
    scheduler = clients.client("scheduler", settings)
    sagemaker = clients.client("sagemaker", settings)
    moment = now or dt.datetime.now(dt.UTC)
    try:
        summaries = paginate(scheduler, "list_schedules", "Schedules", GroupName=GROUP)
    except ClientError as exc:
        if is_not_found(exc):
            return []
        raise map_client_error(exc, f"schedule group {GROUP}", "list schedules") from exc
    rows = []
    for summary in summaries:
        name = summary["Name"]
        try:
            detail = scheduler.get_schedule(Name=name, GroupName=GROUP)
        except ClientError as exc:
            raise map_client_error(exc, f"EventBridge schedule {name}", "describe") from exc
        expression = detail.get("ScheduleExpression", "?")
        pipeline = detail.get("Target", {}).get("Arn", "").rsplit("/", 1)[-1]
        try:
            upcoming = to_text(parse_expression(expression).next_after(moment))
        except ScheduleError:
            upcoming = None  # an expression edgekit does not compute (L, W, #, at(...))
        if detail.get("State") == "DISABLED":
            upcoming = None
        execution = _latest_execution(sagemaker, pipeline) if pipeline else None
        prefix = _runs_prefix(sagemaker, pipeline) if pipeline else None
        status, last, output, error = "never", None, None, None
        if execution is not None:
            status = execution.get("PipelineExecutionStatus", "?")
            started = execution.get("CreationTime")
            last = to_text(started) if isinstance(started, dt.datetime) else None
            execution_id = execution["PipelineExecutionArn"].rsplit("/", 1)[-1]
            output = f"{prefix}/{execution_id}/" if prefix else None
            if status in _FAILED:
                error = execution.get("FailureReason") or "see the pipeline execution's steps"
        rows.append(
            ScheduleRow(
                name=name,
                expression=expression,
                backend="aws",
                next_run=upcoming,
                last_run=last,
                status=status,
                output=output,
                error=error,
            )
        )
    return rows


def unschedule_aws(settings: Settings, name: str) -> None:
    """Delete the schedule and its pipeline (the run folders in S3 stay)."""
    scheduler = clients.client("scheduler", settings)
    sagemaker = clients.client("sagemaker", settings)
    try:
        scheduler.delete_schedule(Name=name, GroupName=GROUP, ClientToken=str(uuid.uuid4()))
    except ClientError as exc:
        if is_not_found(exc):
            raise ScheduleError(
                f"no AWS schedule named {name!r} in the EventBridge Scheduler group {GROUP}; "
                "`edgekit pipeline schedules --backend aws` lists them"
            ) from exc
        raise map_client_error(exc, f"EventBridge schedule {name}", "delete") from exc
    try:
        sagemaker.delete_pipeline(PipelineName=name, ClientRequestToken=str(uuid.uuid4()))
    except ClientError as exc:
        if not _pipeline_missing(exc):
            raise map_client_error(exc, f"SageMaker pipeline {name}", "delete") from exc


__all__ = ["GROUP", "aws_rows", "schedule_aws", "unschedule_aws", "upload_inputs"]
