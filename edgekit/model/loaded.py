"""The one record of a loaded model: which package, which version, how to decode it, how to run it.

The agent (which runs models) and the inference app on a device (which asks
the agent to run them) describe a loaded model with this same class: the
agent fills ``session`` with the runtime session it created from the package
(see :mod:`edgekit.runtimes`); the inference app leaves it None, because the
model runs in the agent's process, and fills ``info`` with the decoding facts
from the package manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelError
from edgekit.model.metadata import ModelInfo
from edgekit.runtimes import RuntimeSession


@dataclass
class LoadedModel:
    name: str
    """The name the model is loaded under (the agent API's model name)."""
    version: str
    package: Path
    """Where the package was loaded from (a temporary unpacked copy is removed after load)."""
    source: str = ""
    """What the caller asked to load (the agent's LoadModel url); the package path if empty."""
    runtime: str = ""
    """The package manifest's ``runtime`` value."""
    info: ModelInfo | None = None
    """Pre/post-processing, labels and threshold, when the loader read them."""
    session: RuntimeSession | None = field(default=None, repr=False)
    """The runtime session, when this process runs the model."""
    manifest: Any = field(default=None, repr=False)
    """The package manifest (``edgekit.package.Manifest``), when the loader verified it."""

    def __post_init__(self) -> None:
        if not self.source:
            self.source = str(self.package)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """(output name, array) for every graph output, in graph order."""
        if self.session is None:
            raise ModelError(
                f"model {self.name!r} ({self.package}) runs in another process (the agent); "
                "send it a Predict request instead"
            )
        names = [o.name for o in self.session.outputs]
        return list(zip(names, self.session.run(feeds, names), strict=True))
