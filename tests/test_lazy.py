"""Lazy package attributes: a submodule import never shadows the attribute of its name."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_submodule_import_does_not_shadow_the_function_of_its_name() -> None:
    # What notebook 02 does: something imports the submodule edgekit.model.evaluate first.
    out = _run(
        "import edgekit.model.evaluate\n"
        "from edgekit.model.evaluate import evaluation_data\n"
        "from edgekit.model import evaluate\n"
        "import edgekit.model as m\n"
        "print(callable(evaluate), evaluate is m.evaluate, type(evaluate).__name__)"
    )
    assert out == "True True function"


def test_lazy_names_load_on_first_use_and_unknown_names_fail() -> None:
    out = _run(
        "import sys\n"
        "import edgekit.model as m\n"
        "before = 'edgekit.model.evaluate' in sys.modules\n"
        "m.evaluate\n"
        "after = 'edgekit.model.evaluate' in sys.modules\n"
        "try:\n"
        "    m.nothing_here\n"
        "except AttributeError as exc:\n"
        "    print(before, after, exc)\n"
    )
    assert out == "False True module 'edgekit.model' has no attribute 'nothing_here'"
