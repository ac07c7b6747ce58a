"""edgekit.local.device.configuration: deployment configuration updates (merge/reset)."""

from __future__ import annotations

import pytest

from edgekit.local.device.configuration import changed_paths, resolve_configuration

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
