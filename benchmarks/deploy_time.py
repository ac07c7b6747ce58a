"""Deployment time on the local backend: CreateDeployment -> every device SUCCEEDED.

Starts its own local endpoints (moto, the Greengrass emulator, the MQTT broker)
in a temporary home, runs N detached device runtimes (one process each), and
deploys two components to their thing group: a library with a ZIP artifact
(``{artifacts:decompressedPath}``) and an app that depends on it
(``{other:artifacts:decompressedPath}``, ``{other:configuration:/...}``). The
clock starts at CreateDeployment and stops when ListEffectiveDeployments shows
SUCCEEDED for every device. Everything is stopped and deleted afterwards.

    python benchmarks/deploy_time.py                # 1, 5 and 20 devices
    python benchmarks/deploy_time.py --devices 1 5 --poll 0.25
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _machine import BenchOutput, add_readme_option, markdown_table

from edgekit.awsapi import paginate
from edgekit.settings import Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"
FINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "COMPLETED")


def _zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def publish_components(home: Path, suffix: str) -> tuple[str, str]:
    """A library with a ZIP artifact and an app that depends on it; returns their names."""
    from edgekit import clients

    settings = Settings.from_env(backend="local").replace(local_home=home)
    s3 = clients.client("s3", settings)
    gg = clients.client("greengrassv2", settings)
    bucket = f"edgekit-bench-{suffix}"
    s3.create_bucket(Bucket=bucket)
    lib, app = f"com.bench.Lib{suffix}", f"com.bench.App{suffix}"
    s3.put_object(
        Bucket=bucket,
        Key="lib/model.zip",
        Body=_zip({"model/labels.txt": "scratch\n", "model/weights.bin": "x" * 200_000}),
    )
    recipes = [
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": lib,
            "ComponentVersion": "1.0.0",
            "ComponentConfiguration": {"DefaultConfiguration": {"threshold": "0.5"}},
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Artifacts": [
                        {
                            "URI": f"s3://{bucket}/lib/model.zip",
                            "Unarchive": "ZIP",
                            "Permission": {"Read": "ALL"},
                        }
                    ],
                    "Lifecycle": {
                        "Run": "cat {artifacts:decompressedPath}/model/model/labels.txt "
                        "> {work:path}/labels.txt; exec sleep 3600"
                    },
                }
            ],
        },
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": app,
            "ComponentVersion": "1.0.0",
            "ComponentDependencies": {lib: {"VersionRequirement": "^1.0.0"}},
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {
                        "Install": "echo installed > {work:path}/installed.txt",
                        "Run": "echo {"
                        + lib
                        + ":configuration:/threshold} > {work:path}/threshold.txt; ls {"
                        + lib
                        + ":artifacts:decompressedPath}/model/model > {work:path}/files.txt; "
                        "exec sleep 3600",
                    },
                }
            ],
        },
    ]
    for recipe in recipes:
        gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    return lib, app


def run_round(home: Path, count: int, app: str, poll: float, timeout: float) -> dict[str, Any]:
    from edgekit import clients
    from edgekit.local.device.manager import add_device, remove_device

    gg = clients.client("greengrassv2", Settings.from_env(backend="local").replace(local_home=home))
    tag = uuid.uuid4().hex[:6]
    group = f"bench-{count}-{tag}"
    things = [f"bench-{count}-{tag}-{i:02d}" for i in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda t: add_device(t, group, home, poll=poll, timeout=120), things))
    add_seconds = time.monotonic() - started
    time.sleep(1.0)  # let the new runtimes finish their first polls

    t0 = time.monotonic()
    deployment = gg.create_deployment(
        targetArn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{group}",
        deploymentName=f"bench {count}",
        components={app: {"componentVersion": "1.0.0"}},
    )["deploymentId"]
    done: dict[str, tuple[str, float]] = {}
    while len(done) < count and time.monotonic() - t0 < timeout:
        for thing in things:
            if thing in done:
                continue
            rows = list(
                paginate(
                    gg,
                    "list_effective_deployments",
                    "effectiveDeployments",
                    coreDeviceThingName=thing,
                )
            )
            status = next(
                (r["coreDeviceExecutionStatus"] for r in rows if r["deploymentId"] == deployment),
                "",
            )
            if status in FINAL:
                done[thing] = (status, time.monotonic() - t0)
        time.sleep(0.05)
    total = time.monotonic() - t0
    for thing in things:
        remove_device(thing, home, purge=True)
    times = [t for _, t in done.values()]
    return {
        "devices": count,
        "succeeded": sum(1 for s, _ in done.values() if s == "SUCCEEDED"),
        "all_final_s": total if len(done) == count else float("nan"),
        "median_s": statistics.median(times) if times else float("nan"),
        "add_s": add_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--poll", type=float, default=0.5, help="device poll interval (s)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    parser.add_argument("--quick", action="store_true", help="1 and 5 devices only")
    add_readme_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.devices = [n for n in args.devices if n <= 5] or [1]
    os.environ.setdefault("EDGEKIT_QUIET", "1")

    from edgekit.local import endpoints

    home = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    print(f"home {home}; cpus {os.cpu_count()}; device poll {args.poll} s", flush=True)
    results = []
    try:
        endpoints.up(home, region=REGION, timeout=120)
        _lib, app = publish_components(home, uuid.uuid4().hex[:6])
        for count in args.devices:
            result = run_round(home, count, app, args.poll, args.timeout)
            results.append(result)
            print(
                f"  {count} device(s): all SUCCEEDED after {result['all_final_s']:.2f} s",
                flush=True,
            )
    finally:
        endpoints.down(home)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    out = BenchOutput("deploy_time", args.readme)
    if len(results) > 1 and results[0]["all_final_s"] > 0:
        first, last = results[0], results[-1]
        out.text(
            f"**Measured in this run:** {last['devices']} devices reach SUCCEEDED in "
            f"{last['all_final_s'] / first['all_final_s']:.2f}x the time of "
            f"{first['devices']} ({first['all_final_s']:.2f} s -> {last['all_final_s']:.2f} s)."
        )
    table = markdown_table(
        [
            "devices",
            "succeeded",
            "CreateDeployment -> all SUCCEEDED (s)",
            "median device (s)",
            "starting the runtimes (s)",
        ],
        [
            [
                r["devices"],
                f"{r['succeeded']}/{r['devices']}",
                f"{r['all_final_s']:.2f}",
                f"{r['median_s']:.2f}",
                f"{r['add_s']:.1f}",
            ]
            for r in results
        ],
    )
    out.table(
        table,
        f"Local backend, two components, device poll interval {args.poll} s.",
    )
    out.finish()
    ok = all(r["succeeded"] == r["devices"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
