"""The README's command-line walkthrough, run verbatim.

The block under "## Using it from the command line" runs as written, with bash, in a
fresh folder (where ``.venv`` links to this checkout's venv) and a private local home. It
must deploy the package it just built: `edgekit deploy --wait` proves, on every device,
the sha256 of ``build/model-1.0.0.tar.gz`` (issue 11: the walkthrough used to publish the
shipped model instead, and nothing told the two apart).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.files import sha256_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Using it from the command line"
#: The whole walkthrough (a 2-device fleet, an int8 compile with its parity check) runs in
#: about a minute on the CI machine; this bounds it.
BUDGET_S = 170


def walkthrough(readme: str) -> str:
    """The first ```bash block after the section heading, exactly as written."""
    start = readme.index(SECTION)
    match = re.search(r"```bash\n(.*?)```", readme[start:], re.S)
    assert match, f"README.md: no ```bash block under {SECTION!r}"
    return match.group(1)


def test_the_block_is_found_and_publishes_what_it_packages() -> None:
    script = walkthrough((REPO / "README.md").read_text())
    package = re.search(r"edgekit package .*?--out (\S+)", script, re.S)
    assert package, "the walkthrough packages no model"
    publish = re.search(r"edgekit components publish(.*)", script)
    assert publish and f"--model-package {package.group(1)}" in publish.group(1), (
        "the walkthrough must publish the package it built, not the shipped model"
    )
    assert script.rstrip().endswith("edgekit local down")


def test_the_readme_walkthrough_runs_verbatim_and_proves_the_built_package(
    tmp_path: Path,
) -> None:
    script = walkthrough((REPO / "README.md").read_text())
    work = tmp_path / "walk"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "walkthrough.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEKIT_", "AWS_", "MOTO_"))}
    env.update(EDGEKIT_LOCAL_HOME=str(tmp_path / "home"), EDGEKIT_QUIET="1")
    try:
        run = subprocess.run(
            ["bash", "-eo", "pipefail", "walkthrough.sh"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUDGET_S,
        )
    finally:
        subprocess.run(
            [str(work / ".venv" / "bin" / "edgekit"), "local", "down"],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=60,
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    sha = sha256_file(work / "build" / "model-1.0.0.tar.gz")
    assert f"from build/model-1.0.0.tar.gz: sha256 {sha}" in run.stdout  # publish says it
    assert f"package sha256 {sha}" in run.stdout  # what deploy --wait proved
    devices = sorted(set(re.findall(r"^(edgekit-core-\d+)\s+HEALTHY", run.stdout, re.M)))
    assert len(devices) == 2, run.stdout
    for device in devices:
        row = re.search(rf"^{device}\s+SUCCEEDED\s+PROVEN\s+{sha[:12]}\s+(\d+)", run.stdout, re.M)
        assert row, f"{device} did not prove {sha[:12]}:\n{run.stdout}"
        assert int(row.group(1)) >= 3
    # The device log tells the packages apart too.
    assert f"sha256 {sha}, verified with key" in run.stdout
