"""The device's long-lived processes leave out what they never use (issue 16, item 4).

Every package imported is resident memory for the device's whole life, once per process:
the model agent never decodes an image, so it does not import Pillow (~2.5 MB), even when
it loads and runs a model; the inference app talks to an agent that has the fast socket
only through it, so it never imports grpc (~16 MB): every call but an inline Predict goes
there as a CALL, with the same answers and errors as over gRPC. Sizes are measured by
``benchmarks/device_memory.py``; these tests check the mechanism, each in a fresh
interpreter (what other tests imported does not count).
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

from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
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
def work() -> Iterator[Path]:
    path = short_tempdir("ek-imports-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def package(work: Path) -> SignedPackage:
    return signed_package(work)


@pytest.fixture(scope="module")
def server(work: Path, package: SignedPackage) -> Iterator[AgentServer]:
    srv = AgentServer(work / "a.sock", package.public_key, capture_dir=work / "captures")
    with srv.start():
        yield srv


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


def test_the_app_imports_no_grpc() -> None:
    got = _run(
        """
        import json, sys
        import edgekit.edge.app
        print(json.dumps({"modules": sorted(sys.modules)}))
        """
    )
    assert "grpc" not in _top(got["modules"])


@pytest.mark.integration
def test_the_apps_calls_go_over_the_fast_socket_without_grpc(
    server: AgentServer, package: SignedPackage
) -> None:
    """Every call the inference app makes, in another process, as the app makes them."""
    got = _run(
        f"""
        import json, sys
        import numpy as np
        from edgekit.agent.client import AgentClient
        from edgekit.agent.status import AgentStatusError

        with AgentClient({str(server.socket_path)!r}) as client:
            client.wait_ready(timeout=30)
            before = [m.name for m in client.list_models()]
            info = client.load_model("app", {str(package.package)!r})
            described = client.describe_model("app").inputs[0].shape
            x = client.shared_array((1, 3, 64, 96), np.float32)
            outputs = client.predict("app", {{"image": x}}, shared_memory=True)
            client.capture_data("app", "cap-1", aux_inputs={{"image": ("NONE", b"jpeg")}},
                                aux_outputs={{"result": ("JSON", b"{{}}")}})
            status = client.capture_status("cap-1")
            try:
                client.describe_model("nope")
            except AgentStatusError as exc:
                error = [exc.code, exc.details, exc.method]
            client.unload_model("app")
            after = [m.name for m in client.list_models()]
        print(json.dumps({{
            "modules": sorted(sys.modules), "before": before, "version": info.version,
            "shape": list(described), "outputs": len(outputs), "status": status,
            "error": error, "after": after,
        }}))
        """
    )
    assert "grpc" not in _top(got["modules"])
    assert got["before"] == got["after"] == []
    assert got["version"] == "1.0.0" and got["shape"] == [1, 3, 64, 96] and got["outputs"]
    assert got["status"] in ("IN_PROGRESS", "SUCCESS")
    # the same error as over gRPC
    with (
        AgentClient(server.socket_path, fast_predict=False) as over_grpc,
        pytest.raises(AgentStatusError) as info,
    ):
        over_grpc.describe_model("nope")
    assert got["error"] == [info.value.code, info.value.details, "DescribeModel"]
    assert got["error"][0] == "NOT_FOUND"


@pytest.mark.integration
def test_an_agent_without_the_fast_socket_still_answers_every_call(
    work: Path, package: SignedPackage
) -> None:
    with (
        AgentServer(work / "g.sock", package.public_key, fast_predict=False) as srv,
        AgentClient(srv.socket_path) as client,
    ):
        client.wait_ready(timeout=30)
        assert client.load_model("m", package.package).version == "1.0.0"
        assert [m.name for m in client.list_models()] == ["m"]
        with pytest.raises(AgentStatusError) as info:
            client.describe_model("nope")
    assert info.value.code == "NOT_FOUND"


def test_waiting_for_an_absent_agent_times_out_unavailable(work: Path) -> None:
    with AgentClient(work / "nobody.sock") as client, pytest.raises(AgentStatusError) as info:
        client.wait_ready(timeout=0.2)
    assert info.value.code == "UNAVAILABLE" and "no agent answered on" in info.value.details
