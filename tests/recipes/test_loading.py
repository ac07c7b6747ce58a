"""Reading recipe text: hostile YAML and JSON are refused before they are expanded.

Issue 12, item 5 (a 599-byte alias bomb took 98 s and wrote 698 MB) and item 12
(nesting 1,500 deep crashed the parser with RecursionError).
"""

from __future__ import annotations

import json
import time

import pytest

from edgekit.errors import RecipeError
from edgekit.recipes import load_recipe, parse_recipe
from edgekit.recipes.limits import MAX_NESTING_DEPTH, nesting_depth

pytestmark = pytest.mark.timeout(20)

HEADER = """\
RecipeFormatVersion: '2020-01-25'
ComponentName: com.example.Bomb
ComponentVersion: '1.0.0'
"""

# The classic "billion laughs": 9 levels, 9 aliases each (about 387 million leaves).
BOMB = (
    HEADER
    + "ComponentConfiguration:\n  DefaultConfiguration:\n"
    + '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"    {c}: &{c} [{','.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "Manifests:\n  - Lifecycle:\n      Run: echo hi\n"
)


def test_alias_bomb_is_refused_quickly_and_names_the_recipe() -> None:
    assert len(BOMB.encode()) < 1000
    started = time.monotonic()
    with pytest.raises(RecipeError, match=r"inlineRecipe.*alias") as info:
        parse_recipe(BOMB.encode(), source="inlineRecipe")
    assert time.monotonic() - started < 2
    assert info.value.source == "inlineRecipe"
    assert "line" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "x: &x {a: 1}\ny: *x\n",
        HEADER + "x: &x {a: 1}\ny:\n  <<: *x\n",  # a merge key is an alias too
    ],
    ids=["alias", "merge-key"],
)
def test_every_alias_is_refused(text: str) -> None:
    with pytest.raises(RecipeError, match="alias"):
        load_recipe(text, source="recipe.yaml")


def test_an_anchor_without_alias_is_harmless() -> None:
    assert load_recipe(HEADER + "x: &x {a: 1}\n")["x"] == {"a": 1}


def _flow(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "Deep: " + _flow(1500) + "\n",  # YAML flow
        HEADER + "Deep: " + "{a: " * 1500 + "1" + "}" * 1500 + "\n",
        json.dumps({"RecipeFormatVersion": "2020-01-25"})[:-1] + ', "Deep": ' + _flow(1500) + "}",
        json.dumps({"RecipeFormatVersion": "2020-01-25"})[:-1]
        + ', "Deep": '
        + _flow(100_000)
        + "}",
        HEADER
        + "Deep:\n"
        + "".join(" " * i + f"k{i}:\n" for i in range(1, 300))
        + "  " * 300
        + "1\n",
    ],
    ids=["yaml-flow", "yaml-mapping", "json", "json-100k", "yaml-block"],
)
def test_deep_nesting_is_a_recipe_error(text: str) -> None:
    with pytest.raises(RecipeError, match="nested more than"):
        load_recipe(text, source="recipe.yaml")


def test_nesting_up_to_the_limit_is_fine() -> None:
    text = HEADER + "Deep: " + _flow(MAX_NESTING_DEPTH - 1) + "\n"
    assert nesting_depth(load_recipe(text)) == MAX_NESTING_DEPTH


def test_nesting_depth_is_iterative() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    assert nesting_depth(value) == 100_000
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3
    assert nesting_depth("text") == 0


def test_oversize_text_is_refused_before_it_is_read() -> None:
    text = HEADER + "Manifests: []\n" + "# padding\n" * 2000
    with pytest.raises(RecipeError, match="16"):
        parse_recipe(text.encode(), source="inlineRecipe")


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "a: " + "9" * 5000 + "\n",
        json.dumps({"RecipeFormatVersion": "2020-01-25"})[:-1] + ', "a": ' + "9" * 5000 + "}",
        HEADER + "a: !!timestamp 2020-99-99\n",
        HEADER + "a: !!int abc\n",
        HEADER + "a: !!float abc\n",
        HEADER + "a: !!set {x}\n",
        HEADER + "a: !!binary aGVsbG8=\n",
        HEADER + "a: [1, !!timestamp 2020-01-01]\n",
    ],
    ids=[
        "yaml-huge-int",
        "json-huge-int",
        "bad-date",
        "bad-int",
        "bad-float",
        "set",
        "bytes",
        "date",
    ],
)
def test_values_that_are_not_json_data_are_a_recipe_error(text: str) -> None:
    with pytest.raises(RecipeError, match="recipe.yaml"):
        load_recipe(text, source="recipe.yaml")


def test_a_dumped_recipe_with_shared_values_loads_again() -> None:
    from edgekit.recipes import dump_recipe

    lifecycle = {"Run": "echo hi"}
    doc = {"Manifests": [{"Lifecycle": lifecycle}, {"Lifecycle": lifecycle}]}
    text = dump_recipe(doc, "YAML")
    assert b"&" not in text and b"*" not in text
    assert load_recipe(text) == doc
