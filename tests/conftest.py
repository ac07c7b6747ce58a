"""Shared fixtures. Tests that need the real photos skip cleanly without them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TAG_SCRATCHES = Path(
    os.environ.get("EDGEKIT_TAG_SCRATCHES", REPO.parent / "shared" / "datasets" / "tag-scratches")
)

os.environ.setdefault("EDGEKIT_QUIET", "1")
# Keep tests (and the notebook kernels nbval starts, which inherit this) out of the
# user's own local home: keys, endpoints and devices go to a throwaway folder.
if "EDGEKIT_LOCAL_HOME" not in os.environ:
    os.environ["EDGEKIT_LOCAL_HOME"] = tempfile.mkdtemp(prefix="edgekit-test-home-")


@pytest.fixture(scope="session")
def tag_scratches() -> Path:
    """The shared Ground Truth data set of real photos, or a clean skip."""
    if not (TAG_SCRATCHES / "labels.csv").is_file():
        pytest.skip(f"real data set not found at {TAG_SCRATCHES}")
    return TAG_SCRATCHES
