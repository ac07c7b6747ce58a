"""``edgekit registry``: model versions in a SageMaker model package group."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError

STATUSES = ("Approved", "PendingManualApproval", "Rejected")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="model versions in the SageMaker model registry (list, approve, latest, register)",
        description=(
            "Model packages registered as versions of a SageMaker model package group. "
            "The deploy notebook deploys the latest Approved version."
        ),
    )
    sub = parser.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--group", required=True, help="model package group name")
        p.add_argument("--backend", choices=("local", "aws"), help="default: EDGEKIT_BACKEND")
        p.add_argument("--region", help="default: EDGEKIT_REGION")
        p.add_argument("--home", type=Path, help="local backend state folder")

    listing = sub.add_parser("list", help="list the versions of a group, newest first")
    common(listing)
    listing.add_argument("--status", choices=STATUSES, help="only versions with this status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    for name, verb in (("approve", "approve"), ("reject", "reject")):
        cmd = sub.add_parser(name, help=f"{verb} one version (by number or ARN)")
        common(cmd)
        which = cmd.add_mutually_exclusive_group(required=True)
        which.add_argument("--version", dest="model_version", type=int, metavar="N")
        which.add_argument("--arn", help="model package version ARN")
        cmd.add_argument("--description", help="approval description")
        cmd.set_defaults(
            handler=_set_status, status=STATUSES[0] if name == "approve" else "Rejected"
        )

    latest = sub.add_parser("latest", help="the latest Approved version (what gets deployed)")
    common(latest)
    latest.add_argument("--json", action="store_true", help="print JSON")
    latest.set_defaults(handler=_latest)

    reg = sub.add_parser(
        "register",
        help="verify a package, upload it to S3 and register it as the next version",
    )
    common(reg)
    reg.add_argument("--package", required=True, type=Path, metavar="FILE.tar.gz")
    reg.add_argument("--public-key", required=True, type=Path, metavar="PUBLIC_KEY_PEM")
    reg.add_argument("--bucket", help="default: EDGEKIT_ARTIFACT_BUCKET or the project bucket")
    reg.add_argument("--approve", action="store_true", help="register as Approved")
    reg.add_argument("--description")
    reg.set_defaults(handler=_register)


def _settings(args: argparse.Namespace) -> Any:
    """Settings from the environment and the flags; ``--home`` is the local backend's home."""
    from edgekit.settings import Settings

    return Settings.from_env(backend=args.backend, region=args.region, local_home=args.home)


def _table(versions: list[Any]) -> str:
    rows = [("version", "status", "semver", "AP50", "created", "package")]
    for v in versions:
        rows.append(
            (
                str(v.version),
                v.approval_status,
                v.semver or "-",
                f"{v.ap50:.4f}" if v.ap50 is not None else "-",
                v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-",
                v.package_s3_uri or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _list(args: argparse.Namespace) -> int:
    from edgekit.registry import list_versions

    versions = list_versions(args.group, _settings(args), status=args.status)
    if args.json:
        print(json.dumps([v.to_json() for v in versions], indent=2))
    elif not versions:
        print(
            f"no versions in {args.group}" + (f" with status {args.status}" if args.status else "")
        )
    else:
        print(_table(versions))
    return 0


def _set_status(args: argparse.Namespace) -> int:
    from edgekit.registry import describe_version, find_version, set_approval

    settings = _settings(args)
    if args.arn:
        target = describe_version(args.arn, settings)
        if target.group != args.group:
            raise ConfigurationError(
                f"{args.arn} belongs to group {target.group}, not {args.group}; nothing changed"
            )
    else:
        target = find_version(args.group, args.model_version, settings)
    version = set_approval(target.arn, args.status, settings, description=args.description)
    print(f"{version.arn}: {version.approval_status} (semver {version.semver or '-'})")
    return 0


def _latest(args: argparse.Namespace) -> int:
    from edgekit.registry import latest_approved

    version = latest_approved(args.group, _settings(args))
    if version is None:
        if args.json:
            print("null")
        else:
            print(
                f"no Approved version in {args.group}; approve one with "
                f"`edgekit registry approve --group {args.group} --version N`"
            )
        return 1
    if args.json:
        print(json.dumps(version.to_json(), indent=2))
    else:
        print(_table([version]))
    return 0


def _register(args: argparse.Namespace) -> int:
    from edgekit.registry import APPROVED, PENDING, register_model_version, upload_package

    settings = _settings(args)
    uri, manifest, digest = upload_package(
        settings, args.package, public_key=args.public_key, bucket=args.bucket
    )
    version = register_model_version(
        settings,
        group=args.group,
        package_s3_uri=uri,
        manifest=manifest,
        approval_status=APPROVED if args.approve else PENDING,
        description=args.description,
        sha256=digest,
    )
    print(
        f"registered {manifest.name} {manifest.version} as version {version.version} "
        f"of {version.group} ({version.approval_status})"
    )
    print(f"arn:     {version.arn}")
    print(f"package: {uri}")
    return 0
