"""Shared fixtures. Tests that need the real photos skip cleanly without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TAG_SCRATCHES = Path(
    os.environ.get("EDGEKIT_TAG_SCRATCHES", REPO.parent / "shared" / "datasets" / "tag-scratches")
)

os.environ.setdefault("EDGEKIT_QUIET", "1")


@pytest.fixture(scope="session")
def tag_scratches() -> Path:
    """The shared Ground Truth data set of real photos, or a clean skip."""
    if not (TAG_SCRATCHES / "labels.csv").is_file():
        pytest.skip(f"real data set not found at {TAG_SCRATCHES}")
    return TAG_SCRATCHES
