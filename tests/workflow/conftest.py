"""The local endpoints in a throwaway home, for the workflow integration tests."""

from __future__ import annotations

import pytest

from edgekit.local import endpoints
from edgekit.settings import Settings


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        # A project name of its own: thing names (and the agent sockets named after
        # them) must not meet the devices of another home running at the same time.
        yield Settings(local_home=home, project_name="nbhelpers")
    finally:
        endpoints.down(home)
