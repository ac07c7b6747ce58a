"""``edgekit rollout``: promote a model package through canary (and shadow) to the fleet.

Exit 0 when promoted to the whole group, 3 when a gate rolled it back, 1 on any other
error. ``edgekit rollout status [ID]`` shows a rollout's record (default: the latest).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: Exit code of a rollout that a gate rolled back.
ROLLED_BACK_EXIT = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="staged rollout of a model package: canary, gates, fleet; rollback on failure",
        description="Deploy a model package to a few canary devices of a thing group, soak, "
        "judge gates on what the devices report (proof of inspection, error rate, p95 latency, "
        "defect-rate change, shadow agreement), then to the rest of the group; a failing gate "
        "rolls the changed devices back to the versions they ran before. Exit 0: promoted; "
        "3: rolled back by a gate; 1: any other error. Running it again resumes the rollout "
        "(or reports it, when finished).",
    )
    parser.add_argument("--model-package", metavar="PKG", help="the signed package (.tar.gz)")
    parser.add_argument("--key-dir", metavar="DIR", help="signing keys of the package")
    parser.add_argument("--thing-group", help="the fleet's thing group (default: Settings)")
    parser.add_argument("--canary", type=int, default=1, metavar="N", help="canary devices (1)")
    parser.add_argument(
        "--canary-group", metavar="GROUP", help="a thing group whose members are the canary"
    )
    parser.add_argument(
        "--soak", type=float, default=60.0, metavar="SECONDS", help="soak per stage (60)"
    )
    parser.add_argument(
        "--shadow", action="store_true", help="first run the candidate in shadow on the canary"
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.05,
        metavar="F",
        help="gate: errors / (results + errors) on every device (default 0.05)",
    )
    parser.add_argument(
        "--max-p95-ms",
        type=float,
        default=None,
        metavar="MS",
        help="gate: absolute p95 latency limit in ms (default: only --max-p95-ratio)",
    )
    parser.add_argument(
        "--max-p95-ratio",
        type=float,
        default=3.0,
        metavar="R",
        help="candidate p95 / current model's p95 (3.0)",
    )
    parser.add_argument(
        "--max-defect-rate-delta",
        type=float,
        default=0.2,
        metavar="F",
        help="gate: |candidate defect rate - current model's| (default 0.2)",
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.8,
        metavar="F",
        help="gate: shadow agreement with the current model (default 0.8)",
    )
    parser.add_argument(
        "--min-results",
        type=int,
        default=3,
        metavar="K",
        help="results each device must publish to prove it inspects (3)",
    )
    parser.add_argument(
        "--warmup-results",
        type=int,
        default=10,
        metavar="N",
        help="each device's first N results of a soak left out of its p95 (10)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds for a stage to prove itself (300)"
    )
    parser.add_argument("--model-group", help="registry group to mark (default: Settings)")
    parser.add_argument("--report", metavar="FILE.json", help="write the report JSON here")
    parser.add_argument("--backend", choices=["local", "aws"], help="override EDGEKIT_BACKEND")
    parser.add_argument("--region", help="override EDGEKIT_REGION")
    parser.set_defaults(handler=_rollout)
    sub = parser.add_subparsers(dest="rollout_command", metavar="COMMAND")
    status = sub.add_parser(
        "status",
        help="show a rollout's record (default: the latest)",
        description="Print a rollout's stages, gates and devices from its record under the "
        "local home (rollouts/<id>.json).",
    )
    status.add_argument("id", nargs="?", help="rollout id or record path")
    status.add_argument("--json", action="store_true", help="print the report JSON")
    status.add_argument("--backend", choices=["local", "aws"], help="override EDGEKIT_BACKEND")
    status.add_argument("--region", help="override EDGEKIT_REGION")
    status.set_defaults(handler=_status)


def _exit_code(status: str) -> int:
    return {"PROMOTED": 0, "ROLLED_BACK": ROLLED_BACK_EXIT}.get(status, 1)


def _rollout(args: argparse.Namespace) -> int:
    # Imported when the command runs: `edgekit --help` should not load boto3.
    from edgekit.errors import ConfigurationError
    from edgekit.rollout import Gates, rollout
    from edgekit.settings import Settings

    if not args.model_package:
        raise ConfigurationError("edgekit rollout needs --model-package PKG (or `status`)")
    settings = Settings.from_env(backend=args.backend, region=args.region)
    gates = Gates(
        max_error_rate=args.max_error_rate,
        max_p95_ms=args.max_p95_ms,
        max_p95_ratio=args.max_p95_ratio,
        max_defect_rate_delta=args.max_defect_rate_delta,
        min_agreement=args.min_agreement,
        min_results=args.min_results,
        warmup_results=args.warmup_results,
    )
    record = rollout(
        settings,
        args.model_package,
        key_dir=args.key_dir,
        thing_group=args.thing_group,
        canary=args.canary,
        canary_group=args.canary_group,
        soak=args.soak,
        shadow=args.shadow,
        gates=gates,
        report=args.report,
        timeout=args.timeout,
        model_group=args.model_group,
    )
    print(summary(record.report()))
    return _exit_code(record.status)


def _status(args: argparse.Namespace) -> int:
    from edgekit.rollout import load_record
    from edgekit.settings import Settings

    settings = Settings.from_env(backend=args.backend, region=args.region)
    record = load_record(settings, args.id)
    if args.json:
        print(json.dumps(record.report(), indent=2, sort_keys=True))
    else:
        print(summary(record.report()))
    return 0


def summary(report: dict[str, Any]) -> str:
    """The report as a few lines: status and gate, stages with their gates, devices."""
    model = report.get("model") or {}
    lines = [
        f"rollout {report['id']}: {report['status']}"
        + (f" (gate {report['gate']}: {report.get('gate_detail')})" if report.get("gate") else ""),
        f"  model {model.get('name')} {model.get('version')} sha256 "
        f"{str(model.get('package_sha256'))[:12]} to thing group {report.get('thing_group')}",
    ]
    if report.get("error"):
        lines.append(f"  stopped by: {report['error']} (run the same command again to resume)")
    for stage in report.get("stages") or []:
        lines.append(
            f"  stage {stage['name']:<8} {stage['status']:<11} {stage.get('target') or ''} "
            f"({', '.join(stage.get('things') or [])})"
        )
        for gate in stage.get("gates") or []:
            lines.append(f"    {gate['name']:<18} {gate['verdict']:<7} {gate.get('detail') or ''}")
    devices = report.get("devices") or {}
    if devices:
        lines.append("  DEVICE               STATE     RESULTS  ERRORS  P95 MS  PACKAGE")
        for thing, row in sorted(devices.items()):
            p95 = row.get("p95_ms")
            lines.append(
                f"  {thing:<20} {str(row.get('state')):<9} {row.get('results', '-')!s:>7} "
                f"{row.get('errors', '-')!s:>7} {'-' if p95 is None else f'{p95:.1f}':>7}  "
                f"{str(row.get('package_sha256'))[:12]}"
            )
    if report.get("record"):
        lines.append(f"  record: {report['record']}")
    return "\n".join(lines)
