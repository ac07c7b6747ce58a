"""The notebooks' parameters: what each ``parameters`` cell declares, and the checks on them.

The cell tagged ``parameters`` (papermill's convention) is the one list of what a notebook
accepts. A scheduled run (``edgekit pipeline run --params FILE.yaml``) or a library call
may set only names declared there: a misspelled name is an error that lists the valid ones
and suggests the nearest, never a value silently dropped. The cell is parsed with
:mod:`ast` (``name = value  # help``), as papermill's ``inspect_notebook`` reads it, without
a kernel.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import textwrap
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's parameters cell."""

    name: str
    default: str  # the value as written in the cell, e.g. ``"local"`` or ``None``
    help: str  # its comment, without the ``#``
    notebook: str  # the notebook's name without ``.ipynb``


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line (without ``#``)."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass  # ast.parse below reports the broken cell
    return found


def parse_parameters_cell(source: str, notebook: str) -> dict[str, NotebookParameter]:
    """The assignments of a parameters cell's ``source``, in order (ConfigurationError if invalid).

    A comment on the assignment's line, and comment-only lines right below it, are its help.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigurationError(
            f"{notebook}: its parameters cell is not valid Python (line {exc.lineno}: {exc.msg})"
        ) from exc
    comments = _comments(source)
    lines = source.splitlines()
    found: dict[str, NotebookParameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        end = node.end_lineno or node.lineno
        notes = [comments[n] for n in range(node.lineno, end + 1) if n in comments]
        follow = end + 1
        while follow <= len(lines) and lines[follow - 1].strip().startswith("#"):
            notes.append(comments.get(follow, ""))
            follow += 1
        found[target.id] = NotebookParameter(
            name=target.id,
            default=ast.get_source_segment(source, value) or ast.unparse(value),
            help=" ".join(note for note in notes if note),
            notebook=notebook,
        )
    return found


def notebook_parameters(path: str | Path) -> dict[str, NotebookParameter]:
    """The parameters declared by the notebook at ``path`` ({} if it has no parameters cell)."""
    source_path = Path(path)
    try:
        nb = json.loads(source_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{source_path}: notebook not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{source_path}: not a notebook (not JSON: {exc})") from exc
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        if cell.get("cell_type") != "code":
            continue
        if PARAMETERS_TAG in (cell.get("metadata") or {}).get("tags", []):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            return parse_parameters_cell(text, source_path.stem)
    return {}


def declared_parameters(notebooks: Iterable[str | Path]) -> dict[str, list[NotebookParameter]]:
    """Each name any of ``notebooks`` declares -> its declaration in each, in first-seen order."""
    declared: dict[str, list[NotebookParameter]] = {}
    for path in notebooks:
        for name, parameter in notebook_parameters(path).items():
            declared.setdefault(name, []).append(parameter)
    return declared


def check_parameters(given: Mapping[Any, Any], valid: Iterable[str], origin: str) -> None:
    """Raise ConfigurationError naming ``origin`` if ``given`` holds a name not in ``valid``.

    The message names every unknown key, suggests the nearest valid name (difflib) and
    lists the valid ones.
    """
    names = sorted(set(valid))
    unknown = [key for key in given if not isinstance(key, str) or key not in names]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise ConfigurationError(
        f"{origin}: unknown {noun} {', '.join(parts)}; the notebooks' parameters are: "
        f"{', '.join(names)}"
    )


def overrides(given: Mapping[str, Any], explicit: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(name, given value, explicit value)`` for each name both set to different values.

    ``explicit`` holds what was set outside ``given`` (a command-line flag, a function
    argument); None there means "not set".
    """
    return [
        (name, given[name], value)
        for name, value in explicit.items()
        if value is not None and name in given and given[name] != value
    ]


def _label(notebook: str) -> str:
    """``01_provision_device`` -> ``01``; a name without a number prefix stays whole."""
    prefix = notebook.split("_", 1)[0]
    return prefix if prefix.isdigit() else notebook


def parameters_help(
    declared: Mapping[str, list[NotebookParameter]],
    extra: Mapping[str, tuple[str, str]] | None = None,
    width: int = 100,
) -> str:
    """A text table: each parameter, its default in each notebook using it, and its help.

    ``extra``: parameters of the caller itself, name -> (default, help).
    """
    rows: list[tuple[str, str, str]] = []
    notebooks: dict[str, None] = {}
    for name, uses in declared.items():
        notebooks.update(dict.fromkeys(use.notebook for use in uses))
        if len({use.default for use in uses}) == 1:
            where = f"{uses[0].default}  ({' '.join(_label(use.notebook) for use in uses)})"
        else:
            where = ", ".join(f"{use.default} ({_label(use.notebook)})" for use in uses)
        rows.append((name, where, next((use.help for use in uses if use.help), "")))
    for name, (default, text) in (extra or {}).items():
        rows.append((name, default, text))
    column = max((len(name) for name, _, _ in rows), default=0)
    indent = " " * (column + 6)
    lines = [f"notebooks: {', '.join(notebooks)}"] if notebooks else []
    for name, where, text in rows:
        lines.append(f"  {name.ljust(column)}  {where}")
        if text:
            lines.extend(
                textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent)
            )
    return "\n".join(lines)
