"""The built wheel, installed into a fresh virtual environment outside the checkout, runs the
README's command-line flow and writes the notebooks.

Builds the sdist and the wheel from a copy of the source tree (so nothing is written into the
checkout), installs the wheel into a new venv (its dependencies come from the configured package
indexes), and from a folder outside the checkout, on a private EDGEKIT_LOCAL_HOME, runs:
local up, provision (1 device), compile, keygen, package, components publish, deploy --wait,
collects results, reads a component log, writes the notebooks, and finally local down. Every
process it started is gone at the end. Skips cleanly when this machine cannot build or cannot
reach a package index.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
DIST = "edgekit_inspection"
# What the source tree of a build is: the package and the folders its symlinks point at.
SOURCES = ("edgekit", "component", "cloudformation", "notebooks", "pyproject.toml", "README.md")
RESOURCES = {
    "edgekit/_resources/cloudformation/greengrass-device.yaml",
    "edgekit/_resources/component/com.qualityinspection/recipe.yaml",
    "edgekit/_resources/component/com.qualityinspection.agent/recipe.yaml",
    "edgekit/_resources/component/com.qualityinspection.model/recipe.yaml",
    "edgekit/_resources/component/shared/install_env.py",
    "edgekit/_resources/notebooks/01_provision_device.ipynb",
    "edgekit/_resources/notebooks/02_compile_and_package.ipynb",
    "edgekit/_resources/notebooks/03_deploy_components.ipynb",
    "edgekit/_resources/notebooks/04_visualize_results.ipynb",
    "edgekit/_resources/notebooks/99_cleanup.ipynb",
}
# pip's words for "the package index cannot be reached" (then the test skips, not fails).
OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Max retries exceeded",
    "No matching distribution found",
    "Could not find a version that satisfies",
)
INSTALL_TIMEOUT = 420
STEP_TIMEOUT = 240


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run(
    args: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str], timeout: float = STEP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc


def _check(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n--- stdout\n{_tail(proc.stdout)}\n"
        f"--- stderr\n{_tail(proc.stderr)}"
    )
    return proc.stdout


def _processes_under(root: Path) -> list[int]:
    """Processes whose command line names a path under ``root`` (all started by this test)."""
    marker = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def _stop_leftovers(root: Path) -> list[int]:
    """SIGTERM, then SIGKILL, every process still running from ``root``; their pids."""
    leftovers = _processes_under(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_under(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while _processes_under(root) and time.monotonic() < deadline:
            time.sleep(0.1)
    return leftovers


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A short folder outside the checkout (sockets have a 108-byte path limit); removed after."""
    root = Path(tempfile.mkdtemp(prefix="ek-wheel-")).resolve()
    assert not root.is_relative_to(REPO.resolve())
    try:
        yield root
    finally:
        _stop_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(workdir: Path) -> Path:
    """The wheel built from the source tree; its twin built from the sdist must match it."""
    try:
        import setuptools
    except ImportError:
        pytest.skip("setuptools is not installed: cannot build the wheel here")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} is older than pyproject's >=77")
    src = workdir / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    out = workdir / "dist"
    build_sdist = (
        "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    )
    _check(_run([sys.executable, "-c", build_sdist, out], cwd=src, env=env))
    (sdist,) = out.glob(f"{DIST}-*.tar.gz")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    _check(_run([*pip_wheel, "-w", workdir / "from-tree", "."], cwd=src, env=env))
    _check(_run([*pip_wheel, "-w", workdir / "from-sdist", sdist], cwd=workdir, env=env))
    (built,) = (workdir / "from-tree").glob(f"{DIST}-*-py3-none-any.whl")
    (twin,) = (workdir / "from-sdist").glob(f"{DIST}-*-py3-none-any.whl")

    with zipfile.ZipFile(built) as zf, zipfile.ZipFile(twin) as zf2:
        names, names2 = set(zf.namelist()), set(zf2.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "edgekit = edgekit.cli:main" in zf.read(entry_points).decode()
        for name in RESOURCES:  # copies of the files, not symlinks
            assert zf.read(name) == (src / name).read_bytes(), name
    assert names >= RESOURCES, f"missing from the wheel: {sorted(RESOURCES - names)}"
    assert {n for n in names if "/_resources/" in n} == {
        n for n in names2 if "/_resources/" in n
    }, "the wheel built from the sdist has other resources than the one built from the tree"
    assert {n for n in names if ".dist-info/" not in n} == {
        n for n in names2 if ".dist-info/" not in n
    }
    return built


@pytest.fixture(scope="module")
def venv(workdir: Path, wheel: Path) -> Path:
    """A fresh virtual environment (no system site-packages) with the wheel installed."""
    root = workdir / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _check(_run([sys.executable, "-m", "venv", root], cwd=workdir, env=env, timeout=120))
    python = root / "bin" / "python"
    install = _run(
        [python, "-m", "pip", "install", "--quiet", wheel],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT,
    )
    if install.returncode != 0 and any(word in install.stderr for word in OFFLINE):
        pytest.skip(f"cannot install the wheel's dependencies here:\n{_tail(install.stderr, 5)}")
    _check(install)
    return root


def test_wheel_runs_the_readme_flow_outside_the_checkout(workdir: Path, venv: Path) -> None:
    bin_dir = venv / "bin"
    edgekit = bin_dir / "edgekit"
    python = bin_dir / "python"
    cwd = workdir / "work"
    cwd.mkdir()
    home = workdir / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EDGEKIT_", "AWS_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        EDGEKIT_LOCAL_HOME=str(home),
        EDGEKIT_QUIET="1",
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )

    # The package and its resources come from the venv, not from the checkout.
    where = _check(
        _run(
            [
                python,
                "-c",
                "import edgekit, edgekit.resources as r; "
                "print(edgekit.__file__); print(r.components_dir()); print(r.notebooks_dir())",
            ],
            cwd=cwd,
            env=env,
        )
    ).split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    try:
        _check(_run([edgekit, "local", "up"], cwd=cwd, env=env))
        # eval "$(edgekit local env)"
        env.update(
            json.loads(
                _check(_run([edgekit, "local", "env", "--format", "json"], cwd=cwd, env=env))
            )
        )
        _check(_run([edgekit, "provision", "--devices", "1"], cwd=cwd, env=env))
        _check(
            _run(
                [edgekit, "compile", "--target", "onnxruntime-int8", "--out", "build/int8"],
                cwd=cwd,
                env=env,
            )
        )
        _check(_run([edgekit, "keygen", "--out", "keys"], cwd=cwd, env=env))
        _check(
            _run(
                [
                    edgekit,
                    "package",
                    "--model",
                    "build/int8",
                    "--name",
                    "tag-scratch-detector",
                    "--version",
                    "1.0.0",
                    "--key",
                    "keys/private_key.pem",
                    "--out",
                    "build/model-1.0.0.tar.gz",
                ],
                cwd=cwd,
                env=env,
            )
        )
        published = _check(_run([edgekit, "components", "publish"], cwd=cwd, env=env))
        for component in (
            "com.qualityinspection.model",
            "com.qualityinspection.agent",
            "com.qualityinspection ",
        ):
            assert component in published, published
        deployed = _check(_run([edgekit, "deploy", "--wait"], cwd=cwd, env=env))
        assert "edgekit-core-1" in deployed and "SUCCEEDED" in deployed, deployed

        # Results from the device, as notebook 04 collects them.
        collect = (
            "import json; from edgekit.results import collect; "
            "t = collect(max_messages=3, timeout=90); "
            "print(json.dumps([r['thing_name'] for r in t.results]))"
        )
        things = json.loads(
            _check(_run([python, "-c", collect], cwd=cwd, env=env)).splitlines()[-1]
        )
        assert things == ["edgekit-core-1"] * 3
        logs = _check(
            _run(
                [edgekit, "local", "device", "logs", "edgekit-core-1", "com.qualityinspection"],
                cwd=cwd,
                env=env,
            )
        )
        assert "tag-scratch-detector 1.0.0" in logs, _tail(logs)

        # edgekit notebooks DIR: the six notebooks, as in the source tree, ready for JupyterLab.
        wrote = _check(_run([edgekit, "notebooks", "nb"], cwd=cwd, env=env))
        names = sorted(p.name for p in (cwd / "nb").iterdir())
        assert names == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
        assert len(names) == 6 and wrote.count("written") == 6, wrote
        for name in names:
            data = (cwd / "nb" / name).read_bytes()
            assert data == (REPO / "notebooks" / name).read_bytes(), name
            assert json.loads(data)["nbformat"] == 4
        again = _run([edgekit, "notebooks", "nb"], cwd=cwd, env=env)
        assert again.returncode == 0 and again.stdout.count("unchanged") == 6
    finally:
        down = _run([edgekit, "local", "down"], cwd=cwd, env=env, timeout=120)
        leftovers = _stop_leftovers(workdir)
    _check(down)
    assert not leftovers, f"processes still running after `edgekit local down`: {leftovers}"
