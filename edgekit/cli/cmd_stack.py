"""``edgekit stack deploy | outputs | status | delete | deploy-approval``: CloudFormation stacks.

``deploy`` defaults to the device's stack; ``deploy-approval`` deploys the second one, the
deploy-on-approval state machine and its EventBridge rule (``edgekit.workflow.approval``).

The backend (``EDGEKIT_BACKEND``: local or aws) decides where the calls land; the
calls are the same. ``deploy`` fills the device template's ProjectName, ThingGroupName
and TopicPrefix from the settings unless ``--param`` overrides them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def register(subparsers: argparse._SubParsersAction) -> None:
    stack = subparsers.add_parser(
        "stack",
        help="deploy, inspect and delete the CloudFormation stack of a Greengrass device",
        description="Create or update a stack through change sets, read its outputs, delete it.",
    )
    stack.set_defaults(handler=lambda args: _help(stack))
    commands = stack.add_subparsers(dest="stack_command", metavar="COMMAND")

    deploy = commands.add_parser(
        "deploy",
        help="create or update a stack (a no-op when nothing changed)",
        description=(
            "Deploy TEMPLATE (default: the shipped Greengrass device template) as stack NAME "
            "and print its outputs."
        ),
    )
    deploy.add_argument("--name", required=True, help="stack name")
    deploy.add_argument(
        "--template",
        type=Path,
        default=None,
        metavar="PATH",
        help="template file (default: the device stack shipped with edgekit)",
    )
    deploy.add_argument(
        "--param",
        dest="params",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="template parameter (repeatable)",
    )
    deploy.add_argument(
        "--tag",
        dest="tags",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="stack tag (repeatable)",
    )
    deploy.add_argument("--json", action="store_true", help="print the outputs as JSON")
    deploy.set_defaults(handler=_deploy)

    outputs = commands.add_parser(
        "outputs",
        help="print a stack's outputs",
        description="Print the outputs of an existing stack as a table or JSON.",
    )
    outputs.add_argument("--name", required=True, help="stack name")
    outputs.add_argument("--json", action="store_true", help="print the outputs as JSON")
    outputs.set_defaults(handler=_outputs)

    status = commands.add_parser(
        "status",
        help="print a stack's status (exit 1 if absent)",
        description="Print the stack's status, and its failed events if it failed; exit 1 if "
        "the stack does not exist.",
    )
    status.add_argument("--name", required=True, help="stack name")
    status.set_defaults(handler=_status)

    delete = commands.add_parser(
        "delete",
        help="delete a stack (empties its buckets and detaches its IoT policies first)",
        description="Delete the stack and wait; its buckets are emptied and its IoT policies "
        "detached first so CloudFormation can delete them. A missing stack is fine.",
    )
    delete.add_argument("--name", required=True, help="stack name")
    delete.add_argument(
        "--keep-objects",
        action="store_true",
        help="do not empty the stack's buckets (the delete then fails if they hold objects)",
    )
    delete.set_defaults(handler=_delete)

    approval = commands.add_parser(
        "deploy-approval",
        help="create or update the deploy-on-approval stack (state machine + EventBridge rule)",
        description=(
            "Deploy cloudformation/deploy-on-approval.yaml: approving a version of the model "
            "package group then deploys it to the thing group, with nothing of yours running "
            "(docs/deploy-on-approval.md). The definition is uploaded to the artifact bucket."
        ),
    )
    approval.add_argument("--name", help="stack name (default: <project>-deploy-on-approval)")
    approval.add_argument(
        "--group",
        dest="model_package_group",
        help="model package group (default: the settings' model_name)",
    )
    approval.add_argument(
        "--thing-group", help="thing group to deploy to (default: the settings' thing_group)"
    )
    approval.add_argument(
        "--bucket", help="bucket for the definition (default: the components' artifact bucket)"
    )
    approval.add_argument(
        "--package-bucket",
        help="bucket of the registered model packages the workflow reads (default: --bucket)",
    )
    approval.add_argument(
        "--poll-seconds", type=int, default=15, help="seconds between looks at the devices"
    )
    approval.add_argument(
        "--max-polls",
        type=int,
        default=80,
        help="looks at the devices before it gives up (Greengrass, then each device's proof)",
    )
    approval.add_argument(
        "--min-results",
        type=int,
        default=None,
        metavar="K",
        help="results each device must publish with the approved package to count as proven "
        "(default 3, as `edgekit deploy --wait`)",
    )
    approval.add_argument("--json", action="store_true", help="print the outputs as JSON")
    approval.set_defaults(handler=_deploy_approval)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _print_outputs(outputs: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(outputs, indent=2, sort_keys=True))
        return
    width = max((len(k) for k in outputs), default=0)
    for key in sorted(outputs):
        print(f"{key.ljust(width)}  {outputs[key]}")


def _deploy(args: argparse.Namespace) -> int:
    from edgekit.settings import Settings
    from edgekit.stack import DEFAULT_TEMPLATE, deploy_stack, device_parameters

    settings = Settings.from_env()
    given = dict(args.params)
    if args.template is None:
        template = DEFAULT_TEMPLATE
        parameters = device_parameters(settings, **given)
    else:
        template = args.template
        parameters = given
    result = deploy_stack(
        args.name, template, parameters, settings=settings, tags=dict(args.tags) or None
    )
    if not args.json:
        print(f"stack {result.name}: {result.status}" + ("" if result.changed else " (no changes)"))
    _print_outputs(result.outputs, args.json)
    return 0


def _outputs(args: argparse.Namespace) -> int:
    from edgekit.settings import Settings
    from edgekit.stack import stack_outputs

    _print_outputs(stack_outputs(args.name, settings=Settings.from_env()), args.json)
    return 0


def _status(args: argparse.Namespace) -> int:
    from edgekit.settings import Settings
    from edgekit.stack import stack_status

    status = stack_status(args.name, settings=Settings.from_env())
    print(status or "absent")
    return 0 if status else 1


def _delete(args: argparse.Namespace) -> int:
    from edgekit.settings import Settings
    from edgekit.stack import delete_stack

    deleted = delete_stack(
        args.name, settings=Settings.from_env(), empty_buckets=not args.keep_objects
    )
    print(f"stack {args.name}: " + ("deleted" if deleted else "does not exist (nothing to do)"))
    return 0


def _deploy_approval(args: argparse.Namespace) -> int:
    from edgekit.settings import Settings
    from edgekit.workflow.approval import deploy_approval_stack

    result = deploy_approval_stack(
        Settings.from_env(),
        name=args.name,
        model_package_group=args.model_package_group,
        thing_group=args.thing_group,
        bucket=args.bucket,
        package_bucket=args.package_bucket,
        poll_seconds=args.poll_seconds,
        max_polls=args.max_polls,
        **({} if args.min_results is None else {"min_results": args.min_results}),
    )
    if not args.json:
        print(f"stack {result.name}: {result.status}" + ("" if result.changed else " (no changes)"))
    _print_outputs(result.outputs, args.json)
    return 0
