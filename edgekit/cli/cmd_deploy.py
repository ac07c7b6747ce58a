"""``edgekit deploy``: deploy the components to a thing group and wait for the devices."""

from __future__ import annotations

import argparse
import json

from edgekit.errors import ConfigurationError


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
    parser.add_argument("--wait", action="store_true", help="wait until every device is done")
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


def _deploy(args: argparse.Namespace) -> int:
    # Imported when the command runs: `edgekit --help` should not load boto3.
    from edgekit.deploy import deploy, parse_component_args
    from edgekit.settings import Settings

    settings = Settings.from_env(backend=args.backend, region=args.region)
    result = deploy(
        settings,
        thing_group=args.thing_group,
        components=parse_component_args(args.components),
        configuration=_configuration(args.config),
        wait=args.wait,
        timeout=args.timeout,
    )
    print(f"deployment {result.deployment_id} to {result.target_arn}")
    if args.wait:
        print(result.table())
    else:
        for name, version in sorted(result.components.items()):
            print(f"  {name} {version}")
    return 0
