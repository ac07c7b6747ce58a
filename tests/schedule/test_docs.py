"""docs/ci-on-commit.md and docs/scheduled-runs.md say what the code does."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from edgekit.cli import build_parser
from edgekit.schedule.cron import parse_expression

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_github_workflow_runs_the_pipeline_with_oidc_credentials() -> None:
    text = (DOCS / "ci-on-commit.md").read_text()
    [workflow] = [yaml.safe_load(b) for b in _blocks(text, "yaml")]
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["pipeline"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
    [run] = [s["run"] for s in steps if "edgekit pipeline run" in s.get("run", "")]
    argv = shlex.split(run.replace("${{ github.run_id }}", "1"))[1:]
    args = build_parser().parse_args(argv)  # a command the CLI accepts
    assert (args.backend, args.params, args.out) == ("aws", "ci/params.yaml", "runs/ci-1")
    [policy] = [json.loads(b) for b in _blocks(text, "json")]
    assert policy["Statement"][0]["Action"] == "sts:AssumeRoleWithWebIdentity"


def test_the_scheduling_examples_parse_and_convert_as_documented() -> None:
    text = (DOCS / "scheduled-runs.md").read_text()
    assert "`0 6 * * 1-5` becomes `cron(0 6 ? * 2-6 *)`" in text
    assert parse_expression("0 6 * * 1-5").to_aws() == "cron(0 6 ? * 2-6 *)"
    for command in _blocks(text, "bash"):
        for line in command.replace("\\\n", " ").splitlines():
            if line.startswith("edgekit "):
                argv = shlex.split(line.split("#")[0])[1:]
                args = build_parser().parse_args(argv)
                if getattr(args, "cron", None):
                    parse_expression(args.cron)
