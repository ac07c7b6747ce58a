"""Deploy on approval on the local backend: registry approval -> every device inspecting.

Starts its own local endpoints in a temporary home, N device runtimes in one thing group,
publishes the three components (model 1.0.0) and deploys the deploy-on-approval stack
(``edgekit stack deploy-approval``, polling every second). Then registers model 1.1.0
and approves it with plain boto3 (``update_model_package``); the clock starts there and
stops when every device's health reports inspecting with the new package's sha256 (the
proof of `edgekit deploy --wait`). It also reports when the state machine ended SUCCEEDED
(each device's proof, read from its health shadow, after Greengrass SUCCEEDED). Everything is
stopped and deleted afterwards.

    python benchmarks/deploy_on_approval.py                 # 2 and 10 devices
    python benchmarks/deploy_on_approval.py --devices 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

from edgekit.settings import Settings

GROUP = "bench-approval"
MODEL_GROUP = "bench-approval-model"


def run(devices: int, timeout: float, keep_home: bool) -> dict[str, Any]:
    from edgekit import clients
    from edgekit.compile.testing import build_tiny_model
    from edgekit.components import build_components, publish_components
    from edgekit.components.build import signing_keys
    from edgekit.deploy.proof import current_model
    from edgekit.files import sha256_file
    from edgekit.local import endpoints
    from edgekit.local.device import add_device
    from edgekit.package import build_package
    from edgekit.registry import customer_metadata
    from edgekit.results import subscriber_for
    from edgekit.workflow.approval import deploy_approval_stack, executions, follow_execution

    home = Path(tempfile.mkdtemp(prefix="ek-appr-"))
    settings = Settings(backend="local", local_home=home, thing_group=GROUP)
    things = [f"ap-{i:02d}" for i in range(devices)]
    try:
        endpoints.up(home, timeout=120)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda t: add_device(t, GROUP, home, timeout=120), things))
        work = home / "bench"
        private, _ = signing_keys(None, settings)

        def package(version: str, bias: float) -> Any:
            model = build_tiny_model(work / f"m-{version}.onnx", heatmap_bias=bias)
            return build_package(
                model,
                name=settings.model_name,
                version=version,
                key=private,
                out=work / f"m-{version}.tar.gz",
            )

        first = package("1.0.0", -8.0).path
        publish_components(
            settings, build_components(settings, out_dir=work / "b", model_package=first)
        )
        machine = deploy_approval_stack(
            settings, model_package_group=MODEL_GROUP, poll_seconds=1, max_polls=600, progress=False
        ).outputs["StateMachineArn"]
        built = package("1.1.0", -8.0)
        sha = sha256_file(built.path)
        s3, sm = clients.client("s3", settings), clients.client("sagemaker", settings)
        s3.create_bucket(Bucket="bench-packages")
        key = f"packages/{sha[:16]}/{built.path.name}"
        s3.upload_file(str(built.path), "bench-packages", key)
        uri = f"s3://bench-packages/{key}"
        sm.create_model_package_group(ModelPackageGroupName=MODEL_GROUP)
        arn = sm.create_model_package(
            ModelPackageGroupName=MODEL_GROUP,
            ModelApprovalStatus="PendingManualApproval",
            SourceUri=uri,
            CustomerMetadataProperties=customer_metadata(built, sha256=sha, package_s3_uri=uri),
        )["ModelPackageArn"]

        inspecting: dict[str, float] = {}
        everyone = threading.Event()

        def health(message: Any) -> None:
            if not message.topic.startswith(settings.health_topic):
                return
            body = json.loads(message.payload)
            thing = body.get("thing_name")
            model = current_model(body) or {}
            if thing in things and model.get("package_sha256") == sha and thing not in inspecting:
                inspecting[thing] = time.monotonic()
                if len(inspecting) == len(things):
                    everyone.set()

        with subscriber_for(settings) as subscriber:
            subscriber.subscribe("#", health)
            start = time.monotonic()
            sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
            execution = executions(settings, machine)[0]["executionArn"]
            outcome = follow_execution(settings, execution, timeout=timeout, poll=0.25)
            workflow = time.monotonic() - start
            if not everyone.wait(max(1.0, timeout - workflow)):
                raise SystemExit(
                    f"only {sorted(inspecting)} of {devices} devices inspected with {sha} "
                    f"within {timeout:.0f} s"
                )
        last = max(inspecting.values()) - start
        return {
            "devices": devices,
            "workflow": workflow,
            "first": min(inspecting.values()) - start,
            "all": last,
            "status": outcome.status,
        }
    finally:
        endpoints.down(home)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-home", action="store_true")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("EDGEKIT_QUIET", "1")
    rows = []
    for count in args.devices:
        row = run(count, args.timeout, args.keep_home)
        print(
            f"  {count} devices: workflow {row['status']} after {row['workflow']:.1f} s, "
            f"every device inspecting after {row['all']:.1f} s",
            flush=True,
        )
        rows.append(row)
    out = BenchOutput("deploy_on_approval", args.readme)
    out.table(
        markdown_table(
            [
                "devices",
                "approve -> workflow SUCCEEDED (s)",
                "-> first device inspecting (s)",
                "-> every device inspecting (s)",
            ],
            [
                [r["devices"], f"{r['workflow']:.1f}", f"{r['first']:.1f}", f"{r['all']:.1f}"]
                for r in rows
            ],
        ),
        'From `update_model_package(ModelApprovalStatus="Approved")` (plain boto3) on the '
        "local backend: the EventBridge rule starts the state machine, which creates the "
        "model component version and the deployment and polls every second, and ends "
        "SUCCEEDED when every device's health shadow proves it inspects with the approved "
        "package (3 results); a device counts as inspecting here when its health message "
        "names the approved package's sha256.",
    )
    out.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
