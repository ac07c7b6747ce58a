"""``edgekit pipeline run``: the notebooks end to end, for schedules and CI;
``edgekit pipeline deploy-approved``: the deploy-on-approval state machine, by hand;
``edgekit pipeline schedule | schedules | unschedule``: scheduled runs (`edgekit.schedule`).

The parameters file may set only what the notebooks' parameters cells declare
(``pipeline run --help`` lists them). A flag typed on the command line (``--backend``,
``--out``) wins over the same setting in the file (``backend``, ``output_dir``), and
the command says so on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from edgekit.handover import RESULTS
from edgekit.local.home import add_home_option

#: Flag -> the parameter it sets (the flag wins over the parameters file).
FLAG_PARAMETERS = {"--backend": "backend", "--out": "output_dir"}


class _HelpWithParameters(argparse.Action):
    """``-h``: the usual help, then every notebook parameter (read only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, *_: Any) -> None:
        from edgekit.pipeline import PIPELINE_PARAMETERS, pipeline_parameters
        from edgekit.workflow.params import parameters_help

        declared = pipeline_parameters(getattr(namespace, "notebooks", None))
        parser.epilog = (
            "parameters (--params FILE.yaml; from the notebooks' parameters cells: name, "
            "default and the notebooks using it):\n"
            + parameters_help(declared, PIPELINE_PARAMETERS)
            + "\n\nA run sets output_dir to its run folder, interactive to false and "
            "figures_dir to <run folder>/figures unless FILE.yaml sets them. A flag on the "
            "command line (--backend, --out) wins over the same setting in FILE.yaml "
            "(backend, output_dir), and the command says so."
        )
        parser.print_help()
        parser.exit()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="run the notebooks end to end with papermill",
        description="Run notebooks 01-04 (and 05 with --rollout) in order, for schedules and CI.",
    )
    sub = parser.add_subparsers(dest="pipeline_command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="execute the notebooks in order and write an HTML report",
        description=(
            "Execute the notebooks in order with papermill into a run folder (executed "
            "notebooks, their HTML, report.html) and exit non-zero naming the failing "
            "notebook and cell."
        ),
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "-h",
        "--help",
        action=_HelpWithParameters,
        help="show this help and the notebooks' parameters, and exit",
    )
    run.add_argument(
        "--backend",
        choices=["local", "aws"],
        default=None,
        help="default: backend in --params, else local",
    )
    run.add_argument("--params", metavar="FILE.yaml", help="notebook parameters (YAML mapping)")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default: output_dir in --params, else <runs-root>/<timestamp>)",
    )
    run.add_argument(
        "--runs-root",
        metavar="DIR",
        default="runs",
        help="where timestamped runs go when --out is not given (default: runs)",
    )
    run.add_argument(
        "--notebooks",
        metavar="DIR",
        help="notebooks folder (default: the ones installed with edgekit)",
    )
    run.add_argument("--log-output", action="store_true", help="stream cell output to stderr")
    run.add_argument(
        "--rollout",
        action="store_true",
        default=None,
        help="also run notebook 05: a staged rollout with gates (or `rollout: true` in --params)",
    )
    run.set_defaults(handler=_run)

    approved = sub.add_parser(
        "deploy-approved",
        help="start the deploy-on-approval state machine by hand and show its progress",
        description=(
            "Start an execution of the deploy-on-approval state machine (the stack of "
            "`edgekit stack deploy-approval`): it deploys the latest Approved model version "
            "and ends SUCCEEDED when every device of the thing group proves, in its health "
            "shadow, that it inspects with the approved package. With --wait, follow it from "
            "its execution history and exit non-zero naming the failed state and its cause."
        ),
    )
    approved.add_argument(
        "--backend",
        choices=["local", "aws"],
        default=None,
        help="where the stack is (default: EDGEKIT_BACKEND, else local)",
    )
    approved.add_argument("--stack", help="stack name (default: <project>-deploy-on-approval)")
    approved.add_argument("--wait", action="store_true", help="follow the execution to its end")
    approved.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds --wait follows it (default 1800)"
    )
    approved.set_defaults(handler=_deploy_approved)
    _register_schedules(sub)


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The --params file, checked against the notebooks; the flags typed win, and say so."""
    from edgekit.pipeline import PIPELINE_PARAMETERS, load_parameters, pipeline_parameters
    from edgekit.workflow.params import check_parameters, overrides

    params = load_parameters(args.params)
    if args.params is None:
        return params
    declared = pipeline_parameters(args.notebooks)
    check_parameters(params, [*declared, *PIPELINE_PARAMETERS], args.params)
    typed = {"backend": args.backend, "output_dir": args.out}
    flags = {name: flag for flag, name in FLAG_PARAMETERS.items()}
    for name, value, flag_value in overrides(params, typed):
        print(
            f"edgekit pipeline run: {flags[name]} {flag_value} overrides {name}: {value} "
            f"in {args.params}",
            file=sys.stderr,
        )
    for name, flag_value in typed.items():
        if flag_value is not None:
            params.pop(name, None)  # the flag says it; run_pipeline takes it from there
    return params


def _run(args: argparse.Namespace) -> int:
    # Imported when the command runs: papermill and nbconvert take a while to load.
    from edgekit.pipeline import run_pipeline

    result = run_pipeline(
        out_dir=args.out,
        runs_root=args.runs_root,
        backend=args.backend,
        parameters=_parameters(args),
        notebooks_dir=args.notebooks,
        log_output=args.log_output,
        rollout=args.rollout,
    )
    for stage in result.stages:
        print(f"{stage.name:32s} {'ok' if stage.ok else 'FAILED':6s} {stage.seconds:6.1f} s")
    results = result.out_dir / RESULTS
    if results.is_file():
        with results.open(encoding="utf-8") as lines:
            count = sum(1 for line in lines if line.strip())
        print(f"results: {count} messages from the devices in {results.resolve()}")
    print(f"report: {result.report.resolve()}")
    return 0


def _deploy_approved(args: argparse.Namespace) -> int:
    from edgekit.progress import progress
    from edgekit.settings import Settings
    from edgekit.workflow.approval import follow_execution, start_execution, state_machine_arn
    from edgekit.workflow.approval_definition import state_count

    settings = Settings.from_env()
    if args.backend is not None:
        settings = settings.replace(backend=args.backend)
    machine = state_machine_arn(settings, stack=args.stack)
    execution = start_execution(settings, machine)
    print(f"started {execution}")
    if not args.wait:
        return 0
    with progress(total=state_count(), desc="deploy on approval", unit="state") as bar:
        seen: set[str] = set()

        def entered(name: str) -> None:
            bar.set_postfix_str(name)
            if name not in seen:  # a polling loop enters its states again
                seen.add(name)
                bar.update(1)

        outcome = follow_execution(settings, execution, timeout=args.timeout, on_state=entered)
    output = outcome.output or {}
    print(
        f"{outcome.status}: {output.get('component', '?')} {output.get('componentVersion', '?')} "
        f"(model sha256 {output.get('sha256', '?')}) deployed by {output.get('deploymentId', '?')}"
    )
    proofs = {p.get("thing"): p for p in output.get("proofs") or [] if isinstance(p, dict)}
    for device in output.get("devices") or []:
        proof = proofs.get(device.get("thing")) or {}
        line = f"{device.get('thing')}  {device.get('state')}"
        if proof:
            line += (
                f"  {proof.get('state')}: {proof.get('results', '?')} results with the "
                f"approved package, health at {proof.get('reportedAt', '?')}"
            )
        print(line)
    return 0


# --- scheduled runs (edgekit.schedule) -------------------------------------------------------


def _register_schedules(sub: argparse._SubParsersAction) -> None:
    schedule = sub.add_parser(
        "schedule",
        help="run the notebooks on a schedule (local scheduler, or SageMaker on AWS)",
        description=(
            "Schedule `edgekit pipeline run`. --backend local: the scheduler `edgekit local "
            "up` starts runs it into --runs-root (missed fire times make one catch-up run). "
            "--backend aws: a SageMaker pipeline with a notebook-job step, started by an "
            "EventBridge Scheduler schedule; runs land in --s3-uri. See docs/scheduled-runs.md."
        ),
    )
    schedule.add_argument(
        "--cron",
        required=True,
        metavar="EXPR",
        help="UTC: 5-field cron 'M H DOM MON DOW', AWS 'cron(M H DOM MON DOW YEAR)' or "
        "'rate(N minutes|hours|days)'",
    )
    schedule.add_argument("--name", help="schedule name (default: pipeline, pipeline-2, ...)")
    schedule.add_argument("--params", metavar="FILE.yaml", help="notebook parameters (YAML)")
    schedule.add_argument(
        "--backend",
        choices=["local", "aws"],
        default=None,
        help="where the schedule and its runs live (default: backend in --params, else local)",
    )
    schedule.add_argument("--notebooks", metavar="DIR", help="notebooks folder (local runs)")
    schedule.add_argument(
        "--runs-root",
        metavar="DIR",
        default="runs",
        help="local runs go to DIR/<UTC time>-<name>/ (default: runs)",
    )
    aws = schedule.add_argument_group("AWS (--backend aws)")
    aws.add_argument(
        "--role",
        metavar="ARN",
        help="the notebook job's SageMaker execution role (default: $EDGEKIT_SAGEMAKER_ROLE_ARN)",
    )
    aws.add_argument(
        "--scheduler-role",
        metavar="ARN",
        help="the role EventBridge Scheduler assumes to start the pipeline (default: --role)",
    )
    aws.add_argument(
        "--s3-uri",
        metavar="S3URI",
        help="s3://bucket/prefix for inputs and runs (default: "
        "s3://$EDGEKIT_ARTIFACT_BUCKET/<project>/schedules)",
    )
    aws.add_argument(
        "--image", metavar="URI", help="notebook-job image (SageMaker Distribution) in the region"
    )
    aws.add_argument("--instance-type", default="ml.m5.large", help="default ml.m5.large")
    aws.add_argument(
        "--install",
        default=None,
        metavar="REQUIREMENT",
        help="pip requirement that installs edgekit in the job ('' if the image has it)",
    )
    add_home_option(schedule)
    schedule.set_defaults(handler=_schedule)

    listing = sub.add_parser(
        "schedules",
        help="list the schedules: next run, last run, its status and where its output is",
        description="List the schedules of one backend with their last run; a failed run "
        "shows the failing notebook and the error line.",
    )
    listing.add_argument(
        "--backend",
        choices=["local", "aws"],
        default="local",
        help="local: this home's schedules (default); aws: the EventBridge group 'edgekit'",
    )
    add_home_option(listing)
    listing.set_defaults(handler=_schedules)

    remove = sub.add_parser(
        "unschedule",
        help="remove a schedule (a run in progress finishes)",
        description="Remove a local schedule, or an AWS schedule and its SageMaker pipeline "
        "(run folders stay where they are).",
    )
    remove.add_argument("name", metavar="NAME", help="the schedule's name (see `schedules`)")
    remove.add_argument(
        "--backend", choices=["local", "aws"], default="local", help="where it is (default local)"
    )
    add_home_option(remove)
    remove.set_defaults(handler=_unschedule)


def _schedule_settings(args: argparse.Namespace, backend: str) -> Any:
    from edgekit.settings import Settings

    return Settings.from_env(backend=backend, local_home=getattr(args, "home", None))


def _schedule(args: argparse.Namespace) -> int:
    from edgekit.errors import ScheduleError
    from edgekit.pipeline import load_parameters
    from edgekit.schedule.cron import parse_expression

    expression = parse_expression(args.cron)
    backend = args.backend or load_parameters(args.params).get("backend") or "local"
    settings = _schedule_settings(args, backend)
    if backend == "local":
        from edgekit.schedule.local import local_rows, schedule_local, scheduler_running

        made = schedule_local(
            settings,
            args.cron,
            name=args.name,
            params=args.params,
            notebooks=args.notebooks,
            runs_root=args.runs_root,
        )
        row = next(r for r in local_rows(settings) if r.name == made.name)
        print(f"scheduled {made.name}: {made.expression} (UTC) locally; next run {row.next_run}")
        print(f"runs go to {made.runs_root}/<UTC time>-{made.name}/")
        if not scheduler_running(settings):
            print(
                "the local scheduler is not running: `edgekit local up` starts it (missed "
                "fire times then make one run)",
                file=sys.stderr,
            )
        return 0
    from pathlib import Path

    from edgekit.schedule.aws import schedule_aws
    from edgekit.schedule.aws_definition import DEFAULT_INSTALL, NotebookJob
    from edgekit.schedule.local import check_params_file

    role = args.role or os.environ.get("EDGEKIT_SAGEMAKER_ROLE_ARN")
    bucket = os.environ.get("EDGEKIT_ARTIFACT_BUCKET")
    s3_uri = args.s3_uri or (f"s3://{bucket}/{settings.project_name}/schedules" if bucket else None)
    given = (("--role", role), ("--s3-uri", s3_uri), ("--image", args.image))
    missing = [flag for flag, value in given if not value]
    if missing:
        raise ScheduleError(
            f"--backend aws needs {', '.join(missing)}: the SageMaker execution role, the "
            "S3 folder for inputs and runs, and the notebook-job image (docs/scheduled-runs.md)"
        )
    check_params_file(args.params, args.notebooks)
    job = NotebookJob(
        role_arn=role,
        image_uri=args.image,
        s3_root=s3_uri,
        instance_type=args.instance_type,
        install=DEFAULT_INSTALL if args.install is None else args.install,
    )
    row = schedule_aws(
        settings,
        args.cron,
        name=args.name or "pipeline",
        job=job,
        scheduler_role_arn=args.scheduler_role or role,
        params_text=Path(args.params).read_text() if args.params else "",
    )
    print(f"scheduled {row.name}: {expression.to_aws()} (UTC) on AWS; next run {row.next_run}")
    print(f"runs go to {row.output}<execution id>/")
    return 0


def _schedules(args: argparse.Namespace) -> int:
    settings = _schedule_settings(args, args.backend)
    if args.backend == "local":
        from edgekit.schedule.local import local_rows, scheduler_running

        rows = local_rows(settings)
        if rows and not scheduler_running(settings):
            print("the local scheduler is not running: `edgekit local up`", file=sys.stderr)
    else:
        from edgekit.schedule.aws import aws_rows

        rows = aws_rows(settings)
    if not rows:
        print(f"no {args.backend} schedules")
        return 0
    table = [("NAME", "CRON", "BACKEND", "NEXT RUN", "LAST RUN", "STATUS", "OUTPUT")]
    for row in rows:
        table.append(
            (
                row.name,
                row.expression,
                row.backend,
                _minute(row.next_run),
                _minute(row.last_run),
                row.status,
                row.output or "-",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    for row in rows:
        if row.status.lower() in ("failed", "stopped") and row.error:
            code = f" (exit {row.exit_code})" if row.exit_code is not None else ""
            where = f" in {row.notebook}" if row.notebook else ""
            print(f"{row.name}: last run failed{code}{where}: {row.error}")
    return 0


def _minute(text: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MMZ`` (UTC), or ``-``."""
    if not text:
        return "-"
    return text[:16].replace("T", " ") + "Z"


def _unschedule(args: argparse.Namespace) -> int:
    settings = _schedule_settings(args, args.backend)
    if args.backend == "local":
        from edgekit.schedule.local import unschedule_local

        gone = unschedule_local(settings, args.name)
        running = " (its run in progress finishes)" if gone.running else ""
        print(f"unscheduled {gone.name}{running}")
        return 0
    from edgekit.schedule.aws import unschedule_aws

    unschedule_aws(settings, args.name)
    print(f"unscheduled {args.name} (EventBridge schedule and SageMaker pipeline deleted)")
    return 0
