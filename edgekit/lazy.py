"""Package attributes loaded on first use (PEP 562 module ``__getattr__``).

A package lists ``name -> module`` for the names whose modules are heavy or pull
in libraries a caller may never need (the model agent never evaluates a model,
the device runtime never runs the broker), and sets
``__getattr__ = lazy_attributes(__name__, table)``; ``from package import name``
then imports the module at that moment. Stdlib only: every layer may use it.

A lazy name may be the name of a submodule too (``edgekit.model.evaluate`` is a
module and the function ``evaluate`` in it). Importing such a submodule makes the
import system set the package attribute to the module object, after which
``from edgekit.model import evaluate`` would give the module. The package's module
type therefore ignores that one assignment, so the name keeps resolving to the
attribute in the table, as an eager ``from .evaluate import evaluate`` in the
package would have it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose submodule imports do not shadow its lazy attribute of that name."""

    def __setattr__(self, name: str, value: Any) -> None:
        table = self.__dict__.get("_lazy_table", {})
        if isinstance(value, types.ModuleType) and table.get(name) == value.__name__:
            return
        super().__setattr__(name, value)


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` on first use."""
    module = sys.modules[package]
    module.__dict__["_lazy_table"] = dict(table)
    module.__class__ = _LazyPackage

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(target), name)

    return __getattr__
