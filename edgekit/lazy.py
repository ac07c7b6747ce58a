"""Package attributes loaded on first use (PEP 562 module ``__getattr__``).

A package lists ``name -> module`` for the names whose modules are heavy or pull
in libraries a caller may never need (the model agent never evaluates a model,
the device runtime never runs the broker), and sets
``__getattr__ = lazy_attributes(__name__, table)``; ``from package import name``
then imports the module at that moment. Stdlib only: every layer may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` on first use."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
