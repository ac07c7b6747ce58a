"""``edgekit deploy``: deploy the components to a thing group and wait for the devices."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgekit.errors import ConfigurationError, DeviceDeploymentError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="deploy the published components to a thing group",
        description="Deploy the latest (or given) versions of the model, agent and inference "
        "components to every core device of a thing group, rolling back on failure.",
    )
    parser.add_argument("--thing-group", help="target thing group (default: Settings thing_group)")
    parser.add_argument(
        "--components",
        nargs="+",
        metavar="NAME=VERSION",
        help="pin component versions (others: the latest published)",
    )
    parser.add_argument(
        "--config",
        action="append",
        metavar="NAME=JSON",
        help="merge configuration, e.g. com.qualityinspection='{\"InferenceInterval\": 0.5}'",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until every device proves it inspects with the deployed package: Greengrass "
        "reports SUCCEEDED and the device's health reports the package's sha256 with at least "
        "--min-results results since the deployment; exit 1 naming every device that does not",
    )
    parser.add_argument(
        "--min-results",
        type=int,
        default=None,
        metavar="K",
        help="results of the new package each device must publish (default 3)",
    )
    parser.add_argument(
        "--no-proof",
        action="store_true",
        help="with --wait: count Greengrass's SUCCEEDED alone (components without health)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    parser.add_argument("--backend", choices=["local", "aws"], help="override EDGEKIT_BACKEND")
    parser.add_argument("--region", help="override EDGEKIT_REGION")
    parser.set_defaults(handler=_deploy)


def _configuration(items: list[str] | None) -> dict[str, dict]:
    config: dict[str, dict] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        try:
            value = json.loads(text) if sep else None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"--config {item!r}: not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigurationError(f"--config {item!r}: write NAME='{{\"Key\": value}}'")
        config.setdefault(name.strip(), {}).update(value)
    return config


def _run(args: argparse.Namespace, settings: Any) -> Any:
    from edgekit.deploy import DEFAULT_MIN_RESULTS, deploy, parse_component_args

    return deploy(
        settings,
        thing_group=args.thing_group,
        components=parse_component_args(args.components),
        configuration=_configuration(args.config),
        wait=args.wait,
        timeout=args.timeout,
        min_results=args.min_results or DEFAULT_MIN_RESULTS,
        prove=not args.no_proof,
    )


def _deploy(args: argparse.Namespace) -> int:
    # Imported when the command runs: `edgekit --help` should not load boto3.
    from edgekit.deploy import proof_table
    from edgekit.settings import Settings

    if args.min_results is not None and args.min_results < 1:
        raise ConfigurationError(f"--min-results {args.min_results}: must be 1 or more")
    if args.min_results is not None and (args.no_proof or not args.wait):
        raise ConfigurationError("--min-results needs --wait (and no --no-proof)")
    settings = Settings.from_env(backend=args.backend, region=args.region)
    try:
        result = _run(args, settings)
    except DeviceDeploymentError as error:
        # Every device's row first; main() then prints the error, naming each failed device.
        print(f"deployment {error.result.deployment_id} to {error.result.target_arn}")
        print(proof_table(error.result.proofs.values()), flush=True)
        raise
    print(f"deployment {result.deployment_id} to {result.target_arn}")
    if args.wait:
        print(result.table())
        criteria = result.criteria
        if criteria is not None:
            print(
                f"proof of inspection: {criteria.model_name} {criteria.model_version}, package "
                f"sha256 {criteria.package_sha256}, key {criteria.key_fingerprint or '-'}, "
                f"at least {criteria.min_results} results per device"
            )
            print(proof_table(result.proofs.values()))
    else:
        for name, version in sorted(result.components.items()):
            print(f"  {name} {version}")
    return 0
