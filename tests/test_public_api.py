"""The public API resolves, and importing edgekit stays light."""

from __future__ import annotations

import subprocess
import sys

import edgekit


def test_every_public_name_resolves() -> None:
    for name in edgekit.__all__:
        assert getattr(edgekit, name) is not None, name


def test_import_is_light() -> None:
    code = (
        "import sys, edgekit; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'boto3', 'grpc') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
