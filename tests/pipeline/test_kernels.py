"""A successful pipeline run prints only what matters (issue 15, item 3).

`edgekit.pipeline.run_pipeline` executes a small notebook the way `make demo` does, in a
subprocess whose stdout and stderr (the kernel's too: it inherits them) are captured:

- no ``Kernel is running over TCP without encryption`` warning (the kernel talks over IPC);
- no ``KeyboardInterrupt caught in kernel`` and no SIGINT at shutdown: a process the last
  cell started in the kernel's process group records any SIGINT it receives; before the
  fix jupyter_client's shutdown sent one to the whole group (ipykernel then ends such
  processes with SIGTERM, its own clean-up, which stays).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from edgekit.kernels import NoInterruptKernelManager, kernel_config, papermill_options

pytestmark = pytest.mark.slow

NOISE = (
    "Kernel is running over TCP without encryption",
    "KeyboardInterrupt",
)

CHILD = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    marker = pathlib.Path(sys.argv[1])
    def record(signum, frame):
        marker.write_text("SIGINT")
    signal.signal(signal.SIGINT, record)
    # ipykernel ends the processes its cells started with SIGTERM when it shuts down: fine
    marker.with_suffix(".ready").write_text("ready")
    time.sleep(60)
    """
)


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('marker = ""\nchild_script = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
        ),
        nbformat.v4.new_code_cell(
            textwrap.dedent(
                """
                import pathlib, subprocess, sys, time
                # in the kernel's process group, as any process a cell starts
                child = subprocess.Popen([sys.executable, child_script, marker])
                pathlib.Path(marker).with_suffix(".pid").write_text(str(child.pid))
                ready = pathlib.Path(marker).with_suffix(".ready")
                while not ready.exists():
                    time.sleep(0.05)
                print("child ready")
                """
            )
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "tiny.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_a_pipeline_run_prints_no_kernel_noise_and_sends_no_sigint(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks)
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    marker = tmp_path / "signal.txt"
    code = textwrap.dedent(
        f"""
        from edgekit.pipeline import run_pipeline
        run = run_pipeline(
            out_dir={str(tmp_path / "run")!r},
            notebooks_dir={str(notebooks)!r},
            stages=("tiny",),
            parameters={{"marker": {str(marker)!r}, "child_script": {str(child)!r}}},
        )
        print("ok" if run.ok else "FAILED")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    env["EDGEKIT_LOCAL_HOME"] = str(tmp_path / "home")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        pid_file = marker.with_suffix(".pid")
        if pid_file.is_file():  # the child sleeps on when nothing signalled it: end it
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert done.stdout.strip().splitlines()[-1] == "ok", output
    executed = nbformat.read(str(tmp_path / "run" / "tiny.ipynb"), as_version=4)
    assert "child ready" in json.dumps(executed.cells[-1].outputs)
    for line in NOISE:
        assert line not in output, f"{line!r} in a successful run's output:\n{output}"
    assert not marker.exists(), f"the kernel's process group got {marker.read_text()} at shutdown"


def test_kernels_use_ipc_sockets_with_their_own_names() -> None:
    if sys.platform == "win32":  # pragma: no cover
        assert kernel_config() == {} or "KernelManager" not in kernel_config()
        return
    first = kernel_config()["KernelManager"]
    second = kernel_config()["KernelManager"]
    assert first["transport"] == second["transport"] == "ipc"
    assert first["ip"] != second["ip"]  # two kernels at once never share socket files
    assert len(first["ip"]) + 3 < 104  # Unix socket path limit, with the "-<port>" suffix
    assert papermill_options()["kernel_manager_class"] is NoInterruptKernelManager
