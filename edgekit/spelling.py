"""How a message names a parameter: the way the user typed it.

A library function checks ``device_count``; its user typed ``device_count=0`` in a notebook
or ``--devices 0`` on the command line. Messages name the parameter through
:func:`parameter_text`, and the ``edgekit`` command says, once, which flag sets which
parameter (:func:`command_line_spelling`), so every message reads as the user wrote it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_FLAGS: ContextVar[Mapping[str, str] | None] = ContextVar("edgekit_flags", default=None)
_UNSET: Any = object()


def parameter_text(parameter: str, value: Any = _UNSET) -> str:
    """``parameter`` (set to ``value``) as the user typed it.

    ``device_count=0`` in a notebook or library call; under a command with a flag for it,
    that flag: ``--devices 0``, or ``--force`` for a switch.
    """
    flags = _FLAGS.get()
    flag = flags.get(parameter) if flags else None
    if flag is None:
        return parameter if value is _UNSET else f"{parameter}={value!r}"
    if "{}" not in flag:
        return flag
    return flag.replace(" {}", "") if value is _UNSET else flag.format(value)


@contextmanager
def command_line_spelling(flags: Mapping[str, str]) -> Iterator[None]:
    """Within the block, :func:`parameter_text` names parameter P as ``flags[P]``.

    ``flags`` maps a parameter to its flag: ``"--force"`` for a switch, ``"--devices {}"``
    for a flag with a value.
    """
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)
