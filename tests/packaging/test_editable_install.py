"""`make demo`'s first install prints no setuptools banner (issue 15, item 3).

setuptools' editable build emits ``Editable installation. ... Please be careful with folders
in your working directory with the same name as your package`` as a UserWarning; pip passes
it on as a ``BuildBackendWarning`` even with ``--quiet``. The Makefile runs every
``pip install -e`` with a warnings filter for exactly that message: these tests check the
filter is there, that it drops that message, and that it lets every other warning through.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text()


def _editable_filter() -> str:
    match = re.search(r'^EDITABLE := PYTHONWARNINGS="([^"]+)"$', MAKEFILE, re.M)
    assert match, "Makefile: no EDITABLE := PYTHONWARNINGS=... for the pip installs"
    return match.group(1)


def test_every_editable_install_in_the_makefile_uses_the_filter() -> None:
    _editable_filter()
    installs = [line for line in MAKEFILE.splitlines() if "pip install" in line and " -e " in line]
    assert installs, "the Makefile installs edgekit editable (make demo, make test)"
    for line in installs:
        assert line.strip().startswith("$(EDITABLE) "), line


def test_the_filter_matches_what_setuptools_says() -> None:
    editable_wheel = pytest.importorskip("setuptools.command.editable_wheel")
    source = inspect.getsource(editable_wheel)
    assert 'InformationOnly.emit("Editable installation."' in source


def test_the_filter_drops_the_banner_and_nothing_else() -> None:
    pytest.importorskip("pip._vendor.pyproject_hooks")
    code = (
        "import warnings\n"
        "from pip._vendor.pyproject_hooks import BuildBackendWarning\n"
        # what pip does with each UserWarning of the build backend
        "warnings.warn_explicit('Editable installation.\\n!!\\n\\n  Please be careful with "
        "folders', BuildBackendWarning, 'editable_wheel.py', 354)\n"
        "warnings.warn_explicit('License classifiers are deprecated.', BuildBackendWarning, "
        "'dist.py', 1)\n"
        "warnings.warn('a real problem', UserWarning)\n"
    )
    env = dict(os.environ, PYTHONWARNINGS=_editable_filter())
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "Editable installation" not in done.stderr
    assert "Please be careful" not in done.stderr
    assert "License classifiers are deprecated." in done.stderr
    assert "a real problem" in done.stderr
