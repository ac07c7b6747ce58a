"""nbval runs each notebook with its default parameters, on a throwaway local home.

The kernels nbval starts inherit this process's environment.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("EDGEKIT_QUIET", "1")
if "EDGEKIT_LOCAL_HOME" not in os.environ:
    os.environ["EDGEKIT_LOCAL_HOME"] = tempfile.mkdtemp(prefix="edgekit-nbval-home-")


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """Stop whatever the notebooks started on the throwaway home (endpoints, devices)."""
    home = os.environ.get("EDGEKIT_LOCAL_HOME", "")
    if home.startswith(tempfile.gettempdir()):
        from edgekit.local.endpoints import down

        down(home)
