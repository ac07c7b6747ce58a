"""The device's processes import only what they use.

The model agent and the inference app run on the device for its whole life: a
heavy package imported and never used (pandas, matplotlib, boto3, torch,
sagemaker...) is tens of MB of resident memory for nothing, and
multiprocessing's resource tracker is a whole extra Python process (~15 MB).
Each check runs in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package

HEAVY = ("pandas", "matplotlib", "boto3", "botocore", "torch", "sagemaker", "onnx", "tqdm")
"""Never imported by the agent or the app (onnx the Python package; onnxruntime is fine)."""


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m for m in modules if m.split(".")[0] in HEAVY})


def test_importing_the_agent_and_the_app_imports_no_heavy_package() -> None:
    got = _run(
        """
        import json, sys
        import edgekit.agent.server, edgekit.agent.client, edgekit.cli.cmd_agent
        import edgekit.edge.app, edgekit.edge.inference
        print(json.dumps({"modules": sorted(sys.modules)}))
        """
    )
    assert _heavy(got["modules"]) == []
    assert "onnxruntime" not in got["modules"]  # imported when a model loads


@pytest.fixture(scope="module")
def package() -> Iterator[SignedPackage]:
    work = short_tempdir("ek-lazy-")
    yield signed_package(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.integration
def test_a_shared_memory_predict_imports_no_heavy_package_and_starts_no_tracker(
    package: SignedPackage,
) -> None:
    """Agent and client as on the device: load a package, Predict over shared memory."""
    sock = package.package.parent / "lazy.sock"
    got = _run(
        f"""
        import json, sys
        from multiprocessing import resource_tracker
        import numpy as np
        from edgekit.agent.client import AgentClient
        from edgekit.agent.server import AgentServer

        with AgentServer({str(sock)!r}, {str(package.public_key)!r}) as server:
            with AgentClient({str(sock)!r}) as client:
                client.wait_ready()
                client.load_model("m", {str(package.package)!r})
                x = np.zeros((1, 3, 64, 96), np.float32)
                out = client.predict("m", {{"image": x}}, shared_memory=True)
        print(json.dumps({{
            "modules": sorted(sys.modules),
            "outputs": sorted(out),
            "tracker": resource_tracker._resource_tracker._pid,
        }}))
        """
    )
    assert got["outputs"]  # the Predict ran
    assert _heavy(got["modules"]) == []
    assert got["tracker"] is None, "a resource-tracker process was started"


def test_the_heavy_list_catches_an_import(tmp_path: Path) -> None:
    """The check itself: a module that imports one of them is caught."""
    (tmp_path / "heavy_user.py").write_text("import json\nimport tqdm\n")
    got = _run(
        f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import heavy_user
        print(json.dumps({{"modules": sorted(sys.modules)}}))
        """
    )
    assert "tqdm" in _heavy(got["modules"])
