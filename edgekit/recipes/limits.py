"""Limits on the shape of recipe and configuration documents, checked without recursion.

Greengrass documents no nesting limit; the nucleus parses with Jackson (1000 levels by
default) and Python's own parsers and ``copy``/``json`` recurse, so a document nested a
few hundred levels deep crashes a device with RecursionError. edgekit refuses more than
:data:`MAX_NESTING_DEPTH` levels wherever such a document enters: recipes
(:func:`edgekit.recipes.load_recipe`) and a deployment's configuration ``merge``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_NESTING_DEPTH", "nesting_depth", "nesting_problem", "too_deep_message"]

# Real recipes and configurations stay far below this; the device runtime, which
# recurses over configurations, stays far below Python's recursion limit. The control
# plane and the device share it, so nothing the control plane accepts fails on a device.
MAX_NESTING_DEPTH = 64


def nesting_depth(value: Any, *, stop_after: int | None = None) -> int:
    """How many mappings/lists deep ``value`` goes (a scalar is 0, ``[]`` is 1).

    Iterative, so it works on any depth; ``stop_after`` returns early once the depth
    is known to exceed it.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def too_deep_message(limit: int = MAX_NESTING_DEPTH) -> str:
    """The message for a document nested deeper than ``limit``."""
    return (
        f"is nested more than {limit} levels deep (lists and mappings); flatten it "
        "(store deep data as an artifact or a JSON string)"
    )


def nesting_problem(value: Any, limit: int = MAX_NESTING_DEPTH) -> str | None:
    """:func:`too_deep_message` when ``value`` is nested deeper than ``limit``, else None."""
    if nesting_depth(value, stop_after=limit) > limit:
        return too_deep_message(limit)
    return None
