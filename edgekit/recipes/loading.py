"""Reading recipe text (JSON or YAML) into a dict, and writing it back.

Hostile text is refused before it is expanded: YAML aliases (``*name``, and ``<<`` merge
keys, which are aliases) are refused as the parser meets them, so an "alias bomb" of a
few hundred bytes never grows into gigabytes; and no document may nest more than
:data:`edgekit.recipes.limits.MAX_NESTING_DEPTH` lists/mappings deep.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import yaml

from edgekit.errors import RecipeError
from edgekit.recipes.limits import MAX_NESTING_DEPTH, nesting_problem, too_deep_message

__all__ = ["dump_recipe", "load_recipe"]


class _Refused(yaml.YAMLError):
    """YAML the recipe loader refuses before building it (an alias, too deep)."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _RecipeYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps unquoted dates as text: ``RecipeFormatVersion: 2020-01-25``
    is the string '2020-01-25' for Greengrass, not a date; that refuses aliases and
    nesting deeper than MAX_NESTING_DEPTH while composing, before anything is expanded."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                f"uses the YAML alias *{event.anchor}; aliases (and '<<' merge keys) are "
                "not allowed in a recipe, write the value out instead",
                event.start_mark,
            )
        nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nests:
            self._depth += 1
            if self._depth > MAX_NESTING_DEPTH:
                raise _Refused(too_deep_message(), self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self._depth -= 1


_RecipeYamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _RecipeYamlDumper(yaml.SafeDumper):
    """SafeDumper that writes a value used twice out twice: load_recipe refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_recipe(data: bytes | str | Mapping[str, Any], *, source: str = "recipe") -> dict:
    """Read a recipe from JSON or YAML text (or copy a mapping); no validation.

    Raises RecipeError naming ``source`` and the line of a syntax error.
    """
    if isinstance(data, Mapping):
        problem = nesting_problem(dict(data))
        if problem:
            raise RecipeError(problem, source=source)
        return copy.deepcopy(dict(data))
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RecipeError(
                f"is not UTF-8 text (byte {exc.start}); save the recipe as UTF-8 JSON or YAML",
                source=source,
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise RecipeError(
            f"expected recipe text or a dict, got {type(data).__name__}", source=source
        )
    if not text.strip():
        raise RecipeError("is empty; write the recipe as a JSON or YAML document", source=source)
    json_error: json.JSONDecodeError | None = None
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            json_error = exc  # maybe a YAML flow mapping; YAML gets a try below
        except RecursionError:
            raise RecipeError(too_deep_message(), source=source) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise RecipeError(f"holds a value JSON can't read: {exc}", source=source) from None
    if json_error is not None or not text.lstrip().startswith("{"):
        try:
            loaded = yaml.load(text, Loader=_RecipeYamlLoader)  # noqa: S506 - safe loader subclass
        except _Refused as exc:
            where = f" (line {exc.mark.line + 1} column {exc.mark.column + 1})" if exc.mark else ""
            raise RecipeError(f"{exc.message}{where}", source=source) from None
        except yaml.YAMLError as exc:
            if json_error is not None:
                raise RecipeError(
                    f"is not valid JSON: {json_error.msg} at line {json_error.lineno} column "
                    f"{json_error.colno}",
                    source=source,
                ) from None
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise RecipeError(f"is not valid YAML: {problem}{where}", source=source) from None
        except (ValueError, TypeError, OverflowError) as exc:  # a tagged or huge value
            raise RecipeError(
                f"is not valid YAML: a value can't be read ({exc})", source=source
            ) from None
    if not isinstance(loaded, dict):
        raise RecipeError(
            f"must be a JSON object / YAML mapping at the top level, got {type(loaded).__name__}",
            source=source,
        )
    problem = nesting_problem(loaded) or _non_json_value(loaded)
    if problem:
        raise RecipeError(problem, source=source)
    return loaded


def _non_json_value(value: Any) -> str | None:
    """A message when a value is not JSON data (a YAML !!set, !!binary or !!timestamp)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, str | int | float | bool):
            return (
                f"holds a {type(item).__name__} value ({str(item)[:40]!r}); a recipe holds JSON "
                "data only (strings, numbers, booleans, lists, mappings): drop the YAML tag "
                "(!!set, !!binary, !!timestamp) or quote the value"
            )
    return None


def dump_recipe(recipe: Mapping[str, Any], fmt: str = "JSON") -> bytes:
    """Serialize a recipe as JSON or YAML bytes (key order kept)."""
    if fmt.upper() == "YAML":
        text = yaml.dump(
            dict(recipe), Dumper=_RecipeYamlDumper, sort_keys=False, allow_unicode=True
        )
        return text.encode("utf-8")
    if fmt.upper() == "JSON":
        return json.dumps(recipe, indent=2, ensure_ascii=False).encode("utf-8")
    raise RecipeError(f"unknown recipe format {fmt!r}; use JSON or YAML", source="recipe")
