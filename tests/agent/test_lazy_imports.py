"""The device's processes import only what they use.

The model agent and the inference app run on the device for its whole life: a
heavy package imported and never used (pandas, matplotlib, boto3, torch,
sagemaker...) is tens of MB of resident memory for nothing, and
multiprocessing's resource tracker is a whole extra Python process (~15 MB).
Each check runs in a fresh interpreter, so what other tests imported does not count.

The agent never decodes an image, so it does not import Pillow (~2.5 MB), even when it
loads and runs a model; the inference app talks to an agent that has the fast socket
only through it, so it never imports grpc (~16 MB): every call but an inline Predict goes
there as a CALL, with the same answers and errors as over gRPC. Sizes are measured by
``benchmarks/device_memory.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage

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


def _top(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


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


@pytest.mark.integration
def test_a_shared_memory_predict_imports_no_heavy_package_and_starts_no_tracker(
    pkg: SignedPackage,
) -> None:
    """Agent and client as on the device: load a package, Predict over shared memory."""
    sock = pkg.package.parent / "lazy.sock"
    got = _run(
        f"""
        import json, sys
        from multiprocessing import resource_tracker
        import numpy as np
        from edgekit.agent.client import AgentClient
        from edgekit.agent.server import AgentServer

        with AgentServer({str(sock)!r}, {str(pkg.public_key)!r}) as server:
            with AgentClient({str(sock)!r}) as client:
                client.wait_ready()
                client.load_model("m", {str(pkg.package)!r})
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


@pytest.fixture(scope="module")
def server(workdir: Path, pkg: SignedPackage) -> Iterator[AgentServer]:
    srv = AgentServer(workdir / "a.sock", pkg.public_key, capture_dir=workdir / "captures")
    with srv.start():
        yield srv


@pytest.mark.integration
def test_the_agent_loads_and_runs_a_model_without_pillow(pkg: SignedPackage) -> None:
    """The agent's modules (serve, CLI) and a verified load and run of a package."""
    got = _run(
        f"""
        import json, sys
        import numpy as np
        import edgekit.agent.server, edgekit.agent.edge_manager_serve, edgekit.cli.cmd_agent
        from edgekit.package import load_model

        model = load_model({str(pkg.package)!r}, name="m",
                           public_key={str(pkg.public_key)!r})
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
    server: AgentServer, pkg: SignedPackage
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
            info = client.load_model("app", {str(pkg.package)!r})
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
    workdir: Path, pkg: SignedPackage
) -> None:
    with (
        AgentServer(workdir / "g.sock", pkg.public_key, fast_predict=False) as srv,
        AgentClient(srv.socket_path) as client,
    ):
        client.wait_ready(timeout=30)
        assert client.load_model("m", pkg.package).version == "1.0.0"
        assert [m.name for m in client.list_models()] == ["m"]
        with pytest.raises(AgentStatusError) as info:
            client.describe_model("nope")
    assert info.value.code == "NOT_FOUND"


def test_waiting_for_an_absent_agent_times_out_unavailable(workdir: Path) -> None:
    with AgentClient(workdir / "nobody.sock") as client, pytest.raises(AgentStatusError) as info:
        client.wait_ready(timeout=0.2)
    assert info.value.code == "UNAVAILABLE" and "no agent answered on" in info.value.details


def test_a_call_to_an_agent_that_is_down_is_unavailable_without_loading_grpc(
    workdir: Path,
) -> None:
    """While the agent restarts nothing listens on either socket: the app's calls fail
    UNAVAILABLE, as over gRPC, and grpc stays out of the app for good."""
    got = _run(
        f"""
        import json, sys
        from edgekit.agent.client import AgentClient
        from edgekit.agent.status import AgentStatusError

        with AgentClient({str(workdir / "down.sock")!r}) as client:
            try:
                client.list_models()
            except AgentStatusError as exc:
                error = [exc.code, exc.method, exc.details]
        print(json.dumps({{"modules": sorted(sys.modules), "error": error}}))
        """
    )
    assert got["error"][:2] == ["UNAVAILABLE", "ListModels"]
    assert "no agent answers on" in got["error"][2]
    assert "grpc" not in _top(got["modules"])
