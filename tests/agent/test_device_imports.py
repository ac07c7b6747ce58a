"""The device's long-lived processes leave out what they never use (issue 16, item 4).

Every package imported is resident memory for the device's whole life, once per process:
the model agent never decodes an image, so it does not import Pillow (~2.5 MB), even when
it loads and runs a model. Sizes are measured by ``benchmarks/device_memory.py``; these
tests check the mechanism, each in a fresh interpreter (what other tests imported does
not count).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package


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


def _top(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture(scope="module")
def package() -> Iterator[SignedPackage]:
    work = short_tempdir("ek-imports-")
    yield signed_package(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.integration
def test_the_agent_loads_and_runs_a_model_without_pillow(package: SignedPackage) -> None:
    """The agent's modules (serve, CLI) and a verified load and run of a package."""
    got = _run(
        f"""
        import json, sys
        import numpy as np
        import edgekit.agent.server, edgekit.agent.edge_manager_serve, edgekit.cli.cmd_agent
        from edgekit.package import load_model

        model = load_model({str(package.package)!r}, name="m",
                           public_key={str(package.public_key)!r})
        outputs = model.run({{"image": np.zeros((1, 3, 64, 96), np.float32)}})
        print(json.dumps({{"modules": sorted(sys.modules), "outputs": len(outputs)}}))
        """
    )
    assert got["outputs"]  # the model ran
    assert "PIL" not in _top(got["modules"])


def test_pillow_is_still_there_for_whoever_resizes_an_image() -> None:
    """The image paths import it when they run (the app, training, compile)."""
    got = _run(
        """
        import json, sys
        import numpy as np
        from edgekit.model.metadata import Preprocessing
        from edgekit.model.postprocess import as_rgb_array, resize

        before = "PIL" in sys.modules
        pre = Preprocessing(input_name="image", width=8, height=4)
        image = resize(as_rgb_array(np.zeros((16, 16, 3), np.uint8)), pre)
        print(json.dumps({"before": before, "after": "PIL" in sys.modules,
                          "shape": list(image.shape)}))
        """
    )
    assert got == {"before": False, "after": True, "shape": [4, 8, 3]}
