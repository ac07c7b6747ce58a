"""Schedules on AWS: the SageMaker pipeline definition and the EventBridge Scheduler calls,
checked against botocore's service models (Stubber validates every request) and run
against moto (pipeline, schedule, an execution as the schedule would start it)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters

from edgekit.errors import ScheduleError
from edgekit.schedule import aws
from edgekit.schedule import aws_definition as definition
from edgekit.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/edgekit-notebook-job"
SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/edgekit-scheduler"
IMAGE = "885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:2-cpu"
JOB = definition.NotebookJob(role_arn=ROLE, image_uri=IMAGE, s3_root="s3://artifacts/sched")


def _input_shape(service: str, operation: str) -> Any:
    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model(operation).input_shape


def test_the_notebook_job_step_is_a_valid_create_training_job_request() -> None:
    doc = definition.pipeline_definition(JOB, "nightly", "us-east-1", "edgekit")
    assert doc["Version"] == "2020-12-01"
    [step] = doc["Steps"]
    assert (step["Name"], step["Type"]) == ("RunNotebooks", "Training")
    arguments = definition.resolve(step["Arguments"], "exec123")
    # the pipeline names the job; everything else is what CreateTrainingJob takes
    validate_parameters(
        {**arguments, "TrainingJobName": "nightly-x"},
        _input_shape("sagemaker", "CreateTrainingJob"),
    )
    env = arguments["Environment"]
    assert env["SM_INPUT_NOTEBOOK_NAME"] == definition.RUNNER_NOTEBOOK
    assert env["SM_INIT_SCRIPT"] == definition.INIT_SCRIPT
    assert env[definition.RUN_URI_ENV] == "s3://artifacts/sched/nightly/runs/exec123"
    assert (
        arguments["OutputDataConfig"]["S3OutputPath"] == "s3://artifacts/sched/nightly/jobs/exec123"
    )
    assert arguments["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "amazon_sagemaker_scheduler"
    ]
    channel = arguments["InputDataConfig"][0]
    assert channel["ChannelName"] == "sagemaker_headless_execution_pipelinestep"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://artifacts/sched/nightly/input"


def test_the_runner_notebook_runs_the_pipeline_on_aws_and_uploads_the_run() -> None:
    import nbformat

    nb = nbformat.from_dict(definition.runner_notebook())
    nbformat.validate(nb)
    source = nb.cells[1].source
    compile(source, "run_pipeline.ipynb", "exec")
    assert 'run_pipeline(out_dir=out, backend="aws", parameters=params)' in source
    assert "finally:" in source and "upload_file" in source
    assert definition.init_script("edgekit-inspection[aws]==1.0").splitlines()[-1] == (
        'pip install --quiet "edgekit-inspection[aws]==1.0"'
    )
    assert "pip" not in definition.init_script("")


def _stubbed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Stubber]:
    made = {
        name: boto3.client(name, region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")
        for name in ("s3", "sagemaker", "scheduler")
    }  # fmt: skip
    monkeypatch.setattr(aws.clients, "client", lambda service, _settings: made[service])
    return {name: Stubber(client) for name, client in made.items()}


def test_schedule_aws_calls_validate_against_the_service_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(backend="aws", region="us-east-1")
    stubs = _stubbed(settings, monkeypatch)
    for name in (definition.RUNNER_NOTEBOOK, definition.INIT_SCRIPT, definition.PARAMS_FILE):
        stubs["s3"].add_response(
            "put_object",
            {},
            {"Bucket": "artifacts", "Key": f"sched/nightly/input/{name}", "Body": ANY},
        )
    stubs["scheduler"].add_client_error(
        "get_schedule", "ResourceNotFoundException", http_status_code=404
    )
    stubs["sagemaker"].add_client_error(
        "describe_pipeline", "ResourceNotFound", http_status_code=404
    )
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/nightly"
    stubs["sagemaker"].add_response(
        "create_pipeline",
        {"PipelineArn": arn},
        {
            "PipelineName": "nightly",
            "PipelineDisplayName": "nightly",
            "PipelineDescription": ANY,
            "PipelineDefinition": ANY,
            "RoleArn": ROLE,
            "ClientRequestToken": ANY,
            "Tags": [{"Key": "edgekit:schedule", "Value": "nightly"}],
        },
    )
    stubs["scheduler"].add_response(
        "create_schedule_group",
        {"ScheduleGroupArn": "arn:aws:scheduler:::group"},
        {"Name": "edgekit"},
    )
    stubs["scheduler"].add_response(
        "create_schedule",
        {"ScheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/edgekit/nightly"},
        {
            "Name": "nightly",
            "GroupName": "edgekit",
            "ScheduleExpression": "cron(0 2 ? * 2-6 *)",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Description": ANY,
            "State": "ENABLED",
            "Target": {
                "Arn": arn,
                "RoleArn": SCHEDULER_ROLE,
                "SageMakerPipelineParameters": {"PipelineParameterList": []},
                "RetryPolicy": {"MaximumRetryAttempts": 0},
            },
            "ClientToken": ANY,
        },
    )
    for stub in stubs.values():
        stub.activate()
    row = aws.schedule_aws(
        settings,
        "0 2 * * 1-5",
        name="nightly",
        job=JOB,
        scheduler_role_arn=SCHEDULER_ROLE,
        params_text="device_count: 2\n",
    )
    for stub in stubs.values():
        stub.assert_no_pending_responses()
    assert (row.expression, row.output) == (
        "cron(0 2 ? * 2-6 *)",
        "s3://artifacts/sched/nightly/runs/",
    )


def test_schedule_pipeline_execution_and_unschedule_on_moto(moto_settings: Settings) -> None:
    settings = moto_settings
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="artifacts")
    row = aws.schedule_aws(
        settings,
        "rate(1 day)",
        name="daily",
        job=JOB,
        scheduler_role_arn=SCHEDULER_ROLE,
        params_text="device_count: 1\n",
    )
    assert row.backend == "aws" and row.status == "never"
    s3 = boto3.client("s3", region_name="us-east-1")
    body = s3.get_object(Bucket="artifacts", Key="sched/daily/input/run_pipeline.ipynb")["Body"]
    assert json.loads(body.read())["nbformat"] == 4
    [listed] = aws.aws_rows(settings)
    assert (listed.name, listed.expression, listed.status) == ("daily", "rate(1 day)", "never")
    assert listed.next_run is not None

    with pytest.raises(ScheduleError, match="an AWS schedule named 'daily' exists"):
        aws.schedule_aws(settings, "rate(1 day)", name="daily", job=JOB, scheduler_role_arn=ROLE)

    # What the schedule's target does at a fire time: StartPipelineExecution.
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    target = boto3.client("scheduler", region_name="us-east-1").get_schedule(
        Name="daily", GroupName="edgekit"
    )["Target"]
    assert target["Arn"].endswith(":pipeline/daily") and target["RoleArn"] == SCHEDULER_ROLE
    started = sagemaker.start_pipeline_execution(PipelineName="daily", ClientRequestToken="t" * 32)
    execution_id = started["PipelineExecutionArn"].rsplit("/", 1)[-1]
    [ran] = aws.aws_rows(settings)
    assert ran.last_run is not None and ran.status != "never"
    assert ran.output == f"s3://artifacts/sched/daily/runs/{execution_id}/"

    aws.unschedule_aws(settings, "daily")
    assert aws.aws_rows(settings) == []
    with pytest.raises(ScheduleError, match="no AWS schedule named 'daily'"):
        aws.unschedule_aws(settings, "daily")


def test_a_failed_execution_shows_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    settings = Settings(backend="aws", region="us-east-1")
    stubs = _stubbed(settings, monkeypatch)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/nightly"
    execution = f"{arn}/execution/abc123"
    started = dt.datetime(2026, 12, 7, 6, 0, 5, tzinfo=dt.UTC)
    stubs["scheduler"].add_response(
        "list_schedules",
        {"Schedules": [{"Name": "nightly", "GroupName": "edgekit"}]},
        {"GroupName": "edgekit"},
    )
    stubs["scheduler"].add_response(
        "get_schedule",
        {
            "Name": "nightly",
            "ScheduleExpression": "cron(0 6 ? * 2-6 *)",
            "State": "ENABLED",
            "Target": {"Arn": arn, "RoleArn": SCHEDULER_ROLE},
        },
        {"Name": "nightly", "GroupName": "edgekit"},
    )
    stubs["sagemaker"].add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": [{"PipelineExecutionArn": execution}]},
        {
            "PipelineName": "nightly",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    stubs["sagemaker"].add_response(
        "describe_pipeline_execution",
        {
            "PipelineExecutionArn": execution,
            "PipelineExecutionStatus": "Failed",
            "FailureReason": "Step failure: Step type Training failed: AlgorithmError",
            "CreationTime": started,
        },
        {"PipelineExecutionArn": execution},
    )
    body = json.dumps(definition.pipeline_definition(JOB, "nightly", "us-east-1", "edgekit"))
    stubs["sagemaker"].add_response(
        "describe_pipeline", {"PipelineDefinition": body}, {"PipelineName": "nightly"}
    )
    for stub in stubs.values():
        stub.activate()
    [row] = aws.aws_rows(settings, now=started)
    assert (row.status, row.last_run) == ("Failed", "2026-12-07T06:00:05+00:00")
    assert row.error == "Step failure: Step type Training failed: AlgorithmError"
    assert row.output == "s3://artifacts/sched/nightly/runs/abc123/"
    assert row.next_run == "2026-12-08T06:00:00+00:00"
