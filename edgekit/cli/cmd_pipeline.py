"""``edgekit pipeline run``: the notebooks end to end, for schedules and CI;
``edgekit pipeline deploy-approved``: the deploy-on-approval state machine, by hand.

The parameters file may set only what the notebooks' parameters cells declare
(``pipeline run --help`` lists them). A flag typed on the command line (``--backend``,
``--out``) wins over the same setting in the file (``backend``, ``output_dir``), and
the command says so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgekit.handover import RESULTS

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
            "`edgekit stack deploy-approval`): it deploys the latest Approved model version. "
            "With --wait, follow it from its execution history and exit non-zero naming the "
            "failed state and its cause."
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
    for device in output.get("devices") or []:
        print(f"{device.get('thing')}  {device.get('state')}")
    return 0
