"""``edgekit pipeline run``: the notebooks end to end, for schedules and CI."""

from __future__ import annotations

import argparse

from edgekit.handover import RESULTS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pipeline", help="run the notebooks end to end with papermill")
    sub = parser.add_subparsers(dest="pipeline_command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order and write an HTML report")
    run.add_argument("--backend", choices=["local", "aws"], default="local")
    run.add_argument("--params", metavar="FILE.yaml", help="notebook parameters (YAML mapping)")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<timestamp>)")
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


def _run(args: argparse.Namespace) -> int:
    # Imported when the command runs: papermill and nbconvert take a while to load.
    from edgekit.pipeline import load_parameters, run_pipeline

    result = run_pipeline(
        out_dir=args.out,
        runs_root=args.runs_root,
        backend=args.backend,
        parameters=load_parameters(args.params),
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
