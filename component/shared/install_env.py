#!/usr/bin/env python3
"""Build a component's Python environment on the device (the recipes' Install step).

Run by the interpreter the component is configured with (``PythonExecutable``):

    python3 install_env.py --venv {work:path}/venv --wheel {artifacts:path}/edgekit-*.whl \
        --require numpy onnxruntime grpc ... [--runtimes 'onnxruntime-int8 openvino-int8']

``--runtimes`` lists model package runtimes (a manifest's ``runtime`` field; the
agent's ``ModelRuntimes`` configuration): each adds the module its runtime needs to
the required ones (:data:`RUNTIME_MODULES`), so OpenVINO is installed only on a
device whose packages run on it.

1. If ``<venv>/.edgekit-env`` records this wheel (SHA-256), this interpreter and these
   requirements, nothing is done (a re-install after a restart takes milliseconds).
2. Otherwise a venv is created with ``--system-site-packages`` and without pip, and a
   ``.pth`` file adds this interpreter's own site-packages too (so a venv made from
   another venv sees that venv's packages, as ``--system-site-packages`` alone would not).
3. The edgekit wheel is installed with ``pip install --no-index --no-deps``: offline.
4. The required modules are imported in the new venv. Only if some are missing,
   ``pip install`` fetches them from the package index (a real device with internet);
   if that fails too the step fails, naming the missing modules.

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

MARKER = ".edgekit-env"
# Import name -> the distribution to install when it is missing (device with internet).
DISTRIBUTIONS = {
    "numpy": "numpy>=1.26",
    "PIL": "pillow>=10.0",
    "onnxruntime": "onnxruntime>=1.18",
    "grpc": "grpcio>=1.60",
    "google.protobuf": "protobuf>=5",
    "awsiot": "awsiotsdk>=1.21",
    "awscrt": "awscrt",
    "cryptography": "cryptography>=42",
    "yaml": "pyyaml>=6.0",
    "boto3": "boto3>=1.34",
    "openvino": "openvino>=2025.0",
}
# A package manifest's runtime (before any '-variant') -> the module it needs; the same
# names as edgekit.runtimes.BUILTIN_RUNTIMES (this script cannot import edgekit: it runs
# before edgekit is installed).
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
RUNTIME_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*(-[a-z0-9_]+)*$")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def venv_python(root: Path) -> Path:
    return root / "bin" / "python"


def missing_modules(python: Path, modules: list[str]) -> list[str]:
    """The modules of ``modules`` that ``python`` cannot import."""
    code = (
        "import importlib, json, sys\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        bad.append(name)\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run(
        [str(python), "-c", code, *modules], check=True, capture_output=True, text=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def ensure_pip(python: Path) -> None:
    """pip in the venv: the base interpreter's (through the .pth) or a bundled one."""
    probe = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0:
        run([str(python), "-m", "ensurepip", "--default-pip"])


def runtime_modules(runtimes: list[str]) -> list[str]:
    """The modules the model runtimes in ``runtimes`` need (each item may hold several names,
    separated by spaces or commas, as a recipe passes one configuration value)."""
    modules: list[str] = []
    for value in (v for item in runtimes for v in re.split(r"[\s,]+", item) if v):
        if not RUNTIME_NAME.match(value):
            raise SystemExit(
                f"--runtimes: {value!r} is not a runtime name (a package manifest's 'runtime', "
                "e.g. onnxruntime-int8 or openvino-int8); fix the ModelRuntimes configuration"
            )
        name = value.split("-", 1)[0]
        if name not in RUNTIME_MODULES:
            raise SystemExit(
                f"--runtimes: {value!r} names no runtime this installer knows "
                f"({', '.join(sorted(RUNTIME_MODULES))}); fix the ModelRuntimes configuration"
            )
        if RUNTIME_MODULES[name] not in modules:
            modules.append(RUNTIME_MODULES[name])
    return modules


def requirements(require: list[str], runtimes: list[str]) -> list[str]:
    """``require`` plus the modules of ``runtimes``, without duplicates, in order."""
    merged = list(require)
    merged += [m for m in runtime_modules(runtimes) if m not in merged]
    return merged


def build(root: Path, wheel: Path, require: list[str]) -> None:
    if root.exists():
        shutil.rmtree(root)
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(root)
    python = venv_python(root)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user and Path(user).is_dir():
        parents.append(user)
    Path(purelib, "edgekit-base-interpreter.pth").write_text("\n".join(parents) + "\n")
    ensure_pip(python)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "install", "--no-index", "--no-deps", "--no-warn-script-location", str(wheel)])
    missing = missing_modules(python, require)
    if missing:
        wanted = [DISTRIBUTIONS.get(m, m) for m in missing]
        print(f"missing in this interpreter: {', '.join(missing)}; installing {wanted}")
        try:
            run([*pip, "install", "--no-warn-script-location", *wanted])
        except subprocess.CalledProcessError as exc:
            raise SystemExit(
                f"cannot install {', '.join(wanted)} (pip exit {exc.returncode}); install them "
                f"for {sys.executable} or give the device internet access"
            ) from None
        still = missing_modules(python, require)
        if still:
            raise SystemExit(f"modules still missing after pip install: {', '.join(still)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True, type=Path)
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--require", nargs="*", default=[], help="modules that must import")
    parser.add_argument(
        "--runtimes",
        nargs="*",
        default=[],
        help="model package runtimes (onnxruntime, openvino-int8, ...): their modules must import",
    )
    args = parser.parse_args(argv)
    require = requirements(args.require, args.runtimes)
    root: Path = args.venv.absolute()
    wheel: Path = args.wheel.absolute()
    if not wheel.is_file():
        raise SystemExit(f"{wheel}: wheel not found (was the artifact downloaded?)")
    stamp = json.dumps(
        {
            "wheel": sha256(wheel),
            "python": sys.executable,
            "version": sysconfig.get_python_version(),
            "require": sorted(require),
        },
        sort_keys=True,
    )
    marker = root / MARKER
    if venv_python(root).exists() and marker.is_file() and marker.read_text() == stamp:
        print(f"component environment {root} is up to date")
        return 0
    build(root, wheel, require)
    marker.write_text(stamp)
    print(f"component environment {root} ready ({wheel.name}, {sys.executable})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    sys.exit(main())
