"""``edgekit registry``: model versions in a SageMaker model package group."""

from __future__ import annotations

import argparse
import json
import sys
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
        p.add_argument(
            "--group",
            help="model package group (default: the settings' model_name, EDGEKIT_MODEL_NAME, "
            "else tag-scratch-detector: the group notebook 03 registers in)",
        )
        p.add_argument("--backend", choices=("local", "aws"), help="default: EDGEKIT_BACKEND")
        p.add_argument("--region", help="default: EDGEKIT_REGION")
        p.add_argument("--home", type=Path, help="local backend state folder")

    listing = sub.add_parser(
        "list",
        help="list the versions of a group, newest first",
        description="One row per version: status, semver, AP50, created, and its package in "
        "S3, or why it is missing (say, its bucket went with `edgekit deprovision`).",
    )
    common(listing)
    listing.add_argument("--status", choices=STATUSES, help="only versions with this status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    for name, status, description in (
        (
            "approve",
            "Approved",
            "Set one version's status to Approved: the deploy notebook (and `registry latest`) "
            "deploys the latest Approved version, and so does the deploy-on-approval state "
            "machine when `edgekit stack deploy-approval` made one. Without --version or "
            "--arn: the newest PendingManualApproval version.",
        ),
        (
            "reject",
            "Rejected",
            "Set one version's status to Rejected. Without --version or --arn: the newest "
            "PendingManualApproval version.",
        ),
    ):
        cmd = sub.add_parser(
            name, help=f"{name} one version (by number or ARN)", description=description
        )
        common(cmd)
        which = cmd.add_mutually_exclusive_group()
        which.add_argument(
            "--version", dest="model_version", type=int, metavar="N", help="version number"
        )
        which.add_argument("--arn", help="model package version ARN")
        cmd.add_argument("--description", help="approval description")
        cmd.set_defaults(handler=_set_status, status=status)

    latest = sub.add_parser(
        "latest",
        help="the latest Approved version (what gets deployed)",
        description="Print the latest Approved version; exit 1 if there is none.",
    )
    common(latest)
    latest.add_argument("--json", action="store_true", help="print JSON")
    latest.set_defaults(handler=_latest)

    reg = sub.add_parser(
        "register",
        help="verify a package, upload it to S3 and register it as the next version",
        description="Check the package's signature with --public-key, upload it to S3 "
        "(content-addressed) and register it as the next version (PendingManualApproval "
        "unless --approve).",
    )
    common(reg)
    reg.add_argument(
        "--package", required=True, type=Path, metavar="FILE.tar.gz", help="model package"
    )
    reg.add_argument(
        "--public-key",
        type=Path,
        metavar="PUBLIC_KEY_PEM",
        help="the signer's public key (public_key.pem written by edgekit keygen; default: "
        "the one in <local home>/keys, which keygen, package and the notebooks use without "
        "a folder)",
    )
    reg.add_argument("--bucket", help="default: EDGEKIT_ARTIFACT_BUCKET or the project bucket")
    reg.add_argument("--approve", action="store_true", help="register as Approved")
    reg.add_argument("--description", help="version description")
    reg.set_defaults(handler=_register)


def _settings(args: argparse.Namespace) -> Any:
    """Settings from the environment and the flags; ``--home`` is the local backend's home.

    Without ``--group``, ``args.group`` becomes the settings' model package group, as in the
    notebooks (``settings.model_name``).
    """
    from edgekit.settings import Settings

    settings = Settings.from_env(backend=args.backend, region=args.region, local_home=args.home)
    if args.group is None:
        args.group = settings.model_name
    return settings


def _table(versions: list[Any], states: dict[str, str] | None = None) -> str:
    from edgekit.registry import PACKAGE_PRESENT

    rows = [("version", "status", "semver", "AP50", "created", "package")]
    for v in versions:
        rows.append(
            (
                str(v.version),
                v.approval_status,
                v.semver or "-",
                f"{v.ap50:.4f}" if v.ap50 is not None else "-",
                v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-",
                _package_cell(v.package_s3_uri, (states or {}).get(v.arn, PACKAGE_PRESENT)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _package_cell(uri: str | None, state: str) -> str:
    from edgekit.registry import PACKAGE_PRESENT

    if state == PACKAGE_PRESENT:
        return uri or "-"
    return f"{state}: {uri}" if uri else state


def _list(args: argparse.Namespace) -> int:
    from edgekit.registry import PACKAGE_PRESENT, list_versions, package_states

    settings = _settings(args)
    versions = list_versions(args.group, settings, status=args.status)
    states = package_states(versions, settings)
    if args.json:
        print(
            json.dumps(
                [{**v.to_json(), "package_state": states[v.arn]} for v in versions], indent=2
            )
        )
    elif not versions:
        print(
            f"no versions in {args.group}" + (f" with status {args.status}" if args.status else "")
        )
    else:
        print(_table(versions, states))
        missing = [v for v in versions if states[v.arn] != PACKAGE_PRESENT]
        if missing:
            print(
                f"{len(missing)} version(s) point at a package that is not in S3 (deploying "
                "them fails); register the package again with `edgekit registry register`",
                file=sys.stderr,
            )
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
    elif args.model_version is not None:
        target = find_version(args.group, args.model_version, settings)
    else:
        target = _newest_pending(args.group, settings)
    version = set_approval(target.arn, args.status, settings, description=args.description)
    print(f"{version.arn}: {version.approval_status} (semver {version.semver or '-'})")
    return 0


def _latest(args: argparse.Namespace) -> int:
    from edgekit.registry import latest_approved

    settings = _settings(args)  # first: it fills in the default --group
    version = latest_approved(args.group, settings)
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


def _newest_pending(group: str, settings: Any) -> Any:
    from edgekit.registry import PENDING, latest_with_status

    newest = latest_with_status(group, PENDING, settings)
    if newest is None:
        raise ConfigurationError(
            f"model package group {group} has no PendingManualApproval version; register "
            "one with `edgekit registry register --package FILE.tar.gz`, or name a version "
            "with --version N (`edgekit registry list` shows them)"
        )
    return newest


def _register(args: argparse.Namespace) -> int:
    from edgekit.package.keys import PUBLIC_KEY_NAME, default_key_dir
    from edgekit.registry import APPROVED, PENDING, register_model_version, upload_package

    settings = _settings(args)
    public_key = args.public_key
    if public_key is None:
        public_key = default_key_dir(settings) / PUBLIC_KEY_NAME
        if not public_key.is_file():
            raise ConfigurationError(
                f"--public-key not given and {public_key} does not exist: pass the signer's "
                "public key (public_key.pem written by `edgekit keygen`)"
            )
    uri, manifest, digest = upload_package(
        settings, args.package, public_key=public_key, bucket=args.bucket
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
