"""edgekit.local.device.configuration: deployment configuration updates (merge/reset)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgekit.local.device.configuration import (
    MAX_CONFIGURATION_DEPTH,
    changed_paths,
    nesting_depth,
    resolve_configuration,
)
from edgekit.local.device.failures import DeploymentFailure

DASHBOARD_DEFAULTS = {
    "name": None,
    "mode": "REQUEST",
    "network": {"useHttps": True, "port": {"http": 80, "https": 443}},
    "tags": [],
}


def test_configuration_merge_then_reset_follows_the_greengrass_example() -> None:
    first = resolve_configuration(
        None,
        DASHBOARD_DEFAULTS,
        {
            "merge": '{"name":"Factory 2A","network":{"useHttps":false,"port":{"http":8080}},'
            '"tags":["/boiler/1/temperature","/boiler/1/pressure"]}'
        },
        "com.example.IndustrialDashboard",
    )
    assert first == {
        "name": "Factory 2A",
        "mode": "REQUEST",
        "network": {"useHttps": False, "port": {"http": 8080, "https": 443}},
        "tags": ["/boiler/1/temperature", "/boiler/1/pressure"],
    }
    second = resolve_configuration(
        first,
        DASHBOARD_DEFAULTS,
        {"reset": ["/network/useHttps", "/tags"], "merge": '{"tags":["/boiler/3/temperature"]}'},
        "com.example.IndustrialDashboard",
    )
    assert second["network"] == {"useHttps": True, "port": {"http": 8080, "https": 443}}
    assert second["tags"] == ["/boiler/3/temperature"]
    assert second["name"] == "Factory 2A"


def test_reset_everything_and_reset_of_a_key_without_default() -> None:
    current = {"mode": "PUSH", "extra": {"a": 1}, "name": "x"}
    assert resolve_configuration(current, DASHBOARD_DEFAULTS, {"reset": [""]}, "c") == (
        DASHBOARD_DEFAULTS
    )
    after = resolve_configuration(current, DASHBOARD_DEFAULTS, {"reset": ["/extra"]}, "c")
    assert "extra" not in after and after["mode"] == "PUSH"


def test_configuration_errors_name_the_component() -> None:
    with pytest.raises(Exception, match="com.x.Y.*not valid JSON"):
        resolve_configuration({}, {}, {"merge": "{nope"}, "com.x.Y")
    with pytest.raises(Exception, match="JSON pointer"):
        resolve_configuration({}, {}, {"reset": ["noslash"]}, "c")


def test_changed_paths_reports_top_most_differences() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    new = {"a": 1, "b": {"c": 5, "d": 3}, "f": 0}
    assert changed_paths(old, new) == [["b", "c"], ["e"], ["f"]]


def _nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("current", "defaults", "update", "what"),
    [
        (None, None, {"merge": json.dumps(_nested(600))}, "configurationUpdate.merge"),
        (None, None, {"merge": _nested(MAX_CONFIGURATION_DEPTH + 1)}, "configurationUpdate.merge"),
        # too deep for the JSON parser itself (RecursionError inside json.loads)
        (None, None, {"merge": "[" * 100_000 + "]" * 100_000}, "configurationUpdate.merge"),
        (None, _nested(MAX_CONFIGURATION_DEPTH + 1), None, "DefaultConfiguration"),
        # a configuration saved deeper than the limit (by an older runtime) with no reset
        (_nested(MAX_CONFIGURATION_DEPTH + 1), None, None, "resulting configuration"),
    ],
)
def test_configuration_nested_too_deeply_fails_with_the_component_named(
    current: Any, defaults: Any, update: Any, what: str
) -> None:
    with pytest.raises(DeploymentFailure) as caught:
        resolve_configuration(current, defaults, update, "com.example.Deep")
    message = str(caught.value)
    assert "com.example.Deep" in message and what in message
    assert "flatten" in message
    assert "COMPONENT_CONFIGURATION_NOT_VALID" in caught.value.error_stack


def test_configuration_at_the_depth_limit_is_accepted() -> None:
    deep = _nested(MAX_CONFIGURATION_DEPTH)
    assert nesting_depth(deep) == MAX_CONFIGURATION_DEPTH
    result = resolve_configuration(None, {"a": 1}, {"merge": json.dumps(deep)}, "c")
    assert nesting_depth(result) == MAX_CONFIGURATION_DEPTH


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ([], 1), ({}, 1), ({"a": [1, {"b": 2}]}, 3), ([[[[]]]], 4), (_nested(5000), 5000)],
)
def test_nesting_depth_counts_objects_and_lists_without_recursion(value: Any, depth: int) -> None:
    assert nesting_depth(value) == depth
