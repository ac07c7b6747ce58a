"""Recipe loading, normalization and validation (edgekit.recipes)."""

from __future__ import annotations

import json

import pytest

from edgekit import errors
from edgekit.recipes import (
    RecipeError,
    dump_recipe,
    load_recipe,
    manifest_platforms,
    normalize_recipe,
    parse_recipe,
    platform_matches,
    recipe_problems,
    resolve_lifecycle,
    select_manifest,
    validate_recipe,
)


def good_recipe() -> dict:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Hello",
        "ComponentVersion": "1.0.0",
        "ComponentDescription": "says hello",
        "ComponentPublisher": "edgekit",
        "ComponentConfiguration": {"DefaultConfiguration": {"Message": "world", "n": 3}},
        "ComponentDependencies": {
            "com.example.Lib": {"VersionRequirement": ">=1.0.0 <2.0.0", "DependencyType": "SOFT"},
            "aws.greengrass.Nucleus": {"VersionRequirement": "^2.0.0"},
        },
        "Manifests": [
            {
                "Name": "linux",
                "Platform": {"os": "linux", "architecture": "/amd64|aarch64/"},
                "Lifecycle": {
                    "Setenv": {"A": "1", "B": 2},
                    "Install": {"Script": "pip install x", "Skipif": "onpath x", "Timeout": 300},
                    "Run": {
                        "Script": "python3 {artifacts:path}/hello.py",
                        "RequiresPrivilege": False,
                    },
                },
                "Artifacts": [
                    {"URI": "s3://bucket/path/hello.py", "Permission": {"Read": "ALL"}},
                    {"URI": "s3://bucket/path/model.zip", "Unarchive": "ZIP"},
                ],
            },
            {"Platform": {"os": "*"}, "Selections": ["all"]},
        ],
        "Lifecycle": {"all": {"Run": {"Script": {"linux": "echo a", "all": "echo b"}}}},
    }


YAML_RECIPE = """\
---
RecipeFormatVersion: 2020-01-25
ComponentName: com.example.Hello
ComponentVersion: '1.2.3'
Manifests:
  - Platform:
      os: linux
    Lifecycle:
      Run: |
        python3 -u {artifacts:path}/hello.py "{configuration:/Message}"
    Artifacts:
      - URI: s3://bucket/hello.py
"""


def test_good_recipe_is_valid() -> None:
    validate_recipe(good_recipe())
    assert recipe_problems(good_recipe()) == []


def test_load_json_and_yaml_bytes() -> None:
    recipe = good_recipe()
    assert load_recipe(json.dumps(recipe).encode()) == recipe
    loaded = load_recipe(YAML_RECIPE.encode())
    # An unquoted date stays the text Greengrass expects, not a datetime.date.
    assert loaded["RecipeFormatVersion"] == "2020-01-25"
    validate_recipe(loaded)
    assert load_recipe(recipe) == recipe and load_recipe(recipe) is not recipe
    # A YAML flow mapping starts with "{" too but is not JSON.
    assert load_recipe(b"{ComponentName: com.example.X}") == {"ComponentName": "com.example.X"}


def test_dump_round_trips_in_both_formats() -> None:
    recipe = good_recipe()
    for fmt in ("JSON", "YAML"):
        assert load_recipe(dump_recipe(recipe, fmt)) == recipe


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b'{"RecipeFormatVersion": "2020-01-25",', "not valid JSON"),
        (b"ComponentName: [unclosed", "not valid YAML"),
        (b"- just\n- a list\n", "top level"),
        (b"   \n", "empty"),
        (b"\xff\xfe\x00bad", "UTF-8"),
    ],
)
def test_load_errors_name_the_source(text: bytes, needle: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(text, source="recipe.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("recipe.yaml: ")
    assert isinstance(info.value, errors.RecipeError)


def test_yaml_error_reports_line() -> None:
    with pytest.raises(RecipeError, match="line 3"):
        load_recipe(b"a: 1\nb: 2\n  c: 3\n", source="r.yaml")


def test_keys_are_case_insensitive_and_normalized() -> None:
    recipe = {
        "recipeFormatVersion": "2020-01-25",
        "componentname": "com.example.X",
        "COMPONENTVERSION": "1.0.0",
        "manifests": [
            {
                "platform": {"os": "linux"},
                "lifecycle": {"run": {"script": "echo", "requiresprivilege": "true"}},
                "artifacts": [{"uri": "s3://b/k.py", "permission": {"execute": "OWNER"}}],
            }
        ],
    }
    validate_recipe(recipe)
    norm = normalize_recipe(recipe)
    assert norm["ComponentName"] == "com.example.X"
    manifest = norm["Manifests"][0]
    assert manifest["Lifecycle"]["Run"]["Script"] == "echo"
    assert manifest["Artifacts"][0]["Permission"] == {"Execute": "OWNER"}
    assert manifest["Artifacts"][0]["URI"] == "s3://b/k.py"


def _field_of(recipe: dict) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        validate_recipe(recipe, source="my-recipe")
    return info.value


@pytest.mark.parametrize(
    ("mutate", "field", "needle"),
    [
        (lambda r: r.pop("RecipeFormatVersion"), "RecipeFormatVersion", "required"),
        (lambda r: r.update(RecipeFormatVersion="2021-01-01"), "RecipeFormatVersion", "2020-01-25"),
        (lambda r: r.pop("ComponentName"), "ComponentName", "required"),
        (lambda r: r.update(ComponentName="bad name!"), "ComponentName", "letters, digits"),
        (lambda r: r.update(ComponentName="x" * 129), "ComponentName", "128"),
        (lambda r: r.update(ComponentVersion=1.0), "ComponentVersion", "quote it"),
        (lambda r: r.update(ComponentVersion="1.0"), "ComponentVersion", "MAJOR.MINOR.PATCH"),
        (lambda r: r.update(ComponentVersion="1.0.0-01"), "ComponentVersion", "semantic version"),
        (lambda r: r.update(ComponentVersion="1000000.0.0"), "ComponentVersion", "999999"),
        (lambda r: r.update(ComponentType="custom"), "ComponentType", "aws.greengrass.generic"),
        (lambda r: r.update(ComponentSource="not-an-arn"), "ComponentSource", "Lambda"),
        (lambda r: r.update(Manifest=[]), "Manifest", "spelling"),
        (lambda r: r.pop("Manifests"), "Manifests", "required"),
        (lambda r: r.update(Manifests={"a": 1}), "Manifests", "list"),
        (
            lambda r: r["ComponentConfiguration"].update(DefaultConfiguration=[1]),
            "ComponentConfiguration.DefaultConfiguration",
            "mapping",
        ),
        (
            lambda r: r["ComponentDependencies"]["com.example.Lib"].pop("VersionRequirement"),
            "ComponentDependencies.com.example.Lib.VersionRequirement",
            "required",
        ),
        (
            lambda r: r["ComponentDependencies"]["com.example.Lib"].update(
                VersionRequirement=">=abc"
            ),
            "ComponentDependencies.com.example.Lib.VersionRequirement",
            "not a version",
        ),
        (
            lambda r: r["ComponentDependencies"]["com.example.Lib"].update(DependencyType="WEAK"),
            "ComponentDependencies.com.example.Lib.DependencyType",
            "HARD, SOFT",
        ),
        (
            lambda r: r["Manifests"][0]["Platform"].update(os="-linux"),
            "Manifests[0].Platform.os",
            "letter or digit",
        ),
        (
            lambda r: r["Manifests"][0]["Platform"].update(architecture="/[unclosed/"),
            "Manifests[0].Platform.architecture",
            "regular expression",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"].update(Runn="echo"),
            "Manifests[0].Lifecycle.Runn",
            "spelling",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"].update(Startup="echo"),
            "Manifests[0].Lifecycle.Startup",
            "not both",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"]["Install"].pop("Script"),
            "Manifests[0].Lifecycle.Install.Script",
            "required",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"]["Install"].update(Skipif="when x"),
            "Manifests[0].Lifecycle.Install.Skipif",
            "onpath",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"]["Install"].update(Timeout="soon"),
            "Manifests[0].Lifecycle.Install.Timeout",
            "seconds",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"]["Run"].update(RequiresPrivilege="yes"),
            "Manifests[0].Lifecycle.Run.RequiresPrivilege",
            "true or false",
        ),
        (
            lambda r: r["Manifests"][0]["Lifecycle"]["Setenv"].update(C=[1]),
            "Manifests[0].Lifecycle.Setenv.C",
            "string, number or boolean",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][1].pop("URI"),
            "Manifests[0].Artifacts[1].URI",
            "required",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][1].update(URI="https://x/y.zip"),
            "Manifests[0].Artifacts[1].URI",
            "s3://",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][1].update(URI="s3://bucket-only/"),
            "Manifests[0].Artifacts[1].URI",
            "BUCKET/KEY",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][1].update(URI="s3://other/hello.py"),
            "Manifests[0].Artifacts[1].URI",
            "unique file name",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][1].update(Unarchive="TAR"),
            "Manifests[0].Artifacts[1].Unarchive",
            "ZIP",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][0]["Permission"].update(Write="ALL"),
            "Manifests[0].Artifacts[0].Permission.Write",
            "Read, Execute",
        ),
        (
            lambda r: r["Manifests"][0]["Artifacts"][0]["Permission"].update(Execute="GROUP"),
            "Manifests[0].Artifacts[0].Permission.Execute",
            "NONE, OWNER, ALL",
        ),
        (
            lambda r: r["Lifecycle"]["all"]["Run"].update(Script={"linux": 3}),
            "Lifecycle.all.Run.Script.linux",
            "string",
        ),
    ],
)
def test_invalid_recipes_name_the_field(mutate, field: str, needle: str) -> None:
    recipe = good_recipe()
    mutate(recipe)
    err = _field_of(recipe)
    assert err.field == field, err.problems
    assert needle in err.reason, err.reason
    assert str(err).startswith(f"my-recipe: {field}: ")


def test_all_problems_are_collected() -> None:
    recipe = good_recipe()
    recipe["ComponentName"] = "bad name"
    recipe["Manifests"][0]["Artifacts"][0]["Unarchive"] = "RAR"
    err = _field_of(recipe)
    assert [f for f, _ in err.problems] == ["ComponentName", "Manifests[0].Artifacts[0].Unarchive"]
    assert "also:" in str(err)


def test_versions_may_carry_prerelease() -> None:
    """The service takes pre-release versions for your own components as well (AWS's
    test framework publishes ``<version>-<test id>``); ``private`` no longer matters."""
    recipe = good_recipe()
    recipe["ComponentVersion"] = "1.0.0-rc.1"
    validate_recipe(recipe)
    validate_recipe(recipe, private=False)


def test_docker_artifacts_are_accepted() -> None:
    recipe = good_recipe()
    recipe["Manifests"][0]["Artifacts"].append({"URI": "docker:registry/image:1.0"})
    validate_recipe(recipe)


def test_parse_recipe_returns_normalized() -> None:
    recipe = parse_recipe(YAML_RECIPE.replace("Manifests:", "manifests:"), source="r.yaml")
    assert "Manifests" in recipe and recipe["ComponentVersion"] == "1.2.3"


def test_manifest_platforms() -> None:
    assert manifest_platforms(good_recipe()) == [
        {"name": "linux", "attributes": {"os": "linux", "architecture": "/amd64|aarch64/"}},
        {"name": "*", "attributes": {"os": "*"}},
    ]


@pytest.mark.parametrize(
    ("platform", "device", "expected"),
    [
        (None, {"os": "linux"}, True),
        ({"os": "linux"}, {"os": "linux", "architecture": "amd64"}, True),
        ({"os": "windows"}, {"os": "linux"}, False),
        (
            {"os": "linux", "architecture": "aarch64"},
            {"os": "linux", "architecture": "amd64"},
            False,
        ),
        ({"os": "*", "runtime": "*"}, {"os": "darwin"}, True),
        ({"os": "/linux|darwin/"}, {"os": "darwin"}, True),
        ({"os": "/lin/"}, {"os": "linux"}, False),  # a regex must match the whole label
        ({"architecture": "//"}, {"os": "linux"}, False),
        ({"os": ["windows", "linux"]}, {"os": "linux"}, True),
        ({"os": "all", "architecture": "any"}, {"os": "linux", "architecture": "arm"}, True),
        ({"com.example.Radio": "lora"}, {"os": "linux"}, False),
    ],
)
def test_platform_matches(platform, device, expected) -> None:
    assert platform_matches(platform, device) is expected


def test_select_manifest_takes_the_first_match() -> None:
    recipe = good_recipe()
    assert select_manifest(recipe, {"os": "linux", "architecture": "amd64"})["Name"] == "linux"
    assert select_manifest(recipe, {"os": "windows"}) == recipe["Manifests"][1]
    recipe["Manifests"].pop()
    assert select_manifest(recipe, {"os": "windows"}) is None


def test_resolve_lifecycle_with_selections() -> None:
    recipe = {
        "Manifests": [
            {"Platform": {"os": "linux"}, "Selections": ["linux"]},
            {"Platform": {"os": "darwin"}, "Lifecycle": {"Run": "own"}},
            {"Platform": {"os": "windows"}},
        ],
        "Lifecycle": {
            "Setenv": {"A": "1"},
            "Install": {"Script": {"linux": "apt-get install x", "all": "echo none"}},
            "Run": {"Script": {"windows": "start.bat", "linux": "./start.sh"}},
        },
    }
    linux, darwin, windows = recipe["Manifests"]
    assert resolve_lifecycle(recipe, linux) == {
        "Setenv": {"A": "1"},
        "Install": {"Script": "apt-get install x"},
        "Run": {"Script": "./start.sh"},
    }
    assert resolve_lifecycle(recipe, darwin) == {"Run": "own"}
    # No selections: only the "all" sections; Run has no "all" entry, so its Script drops out.
    assert resolve_lifecycle(recipe, windows) == {
        "Setenv": {"A": "1"},
        "Install": {"Script": "echo none"},
        "Run": {},
    }
    top_level = {
        "Manifests": [{"Selections": ["key2"]}],
        "Lifecycle": {"key1": {"Run": "one"}, "key2": {"Run": "two"}, "all": {"Run": "all"}},
    }
    assert resolve_lifecycle(top_level, top_level["Manifests"][0]) == {"Run": "two"}


# --- issue 12, item 11: names that are path segments of their own -----------------------


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused(name: str) -> None:
    from edgekit.recipes import recipe_problems

    doc = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": "echo hi"}}],
    }
    assert any(f == "ComponentName" and repr(name) in m for f, m in recipe_problems(doc))
    doc["ComponentName"] = "com.example.Ok"
    doc["ComponentDependencies"] = {name: {"VersionRequirement": "^1.0.0"}}
    assert any(f == f"ComponentDependencies.{name}" for f, _ in recipe_problems(doc))


@pytest.mark.parametrize("name", ["...", ".hidden", "a..b", "com.example."])
def test_other_dotted_names_stay_valid(name: str) -> None:
    from edgekit.recipes import recipe_problems

    doc = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": "echo hi"}}],
    }
    assert not [p for p in recipe_problems(doc) if p[0] == "ComponentName"]


@pytest.mark.parametrize("key", ["Upgrade", "Uninstall", "upgrade", "uninstall"])
def test_upgrade_and_uninstall_are_accepted_in_both_lifecycles(key: str) -> None:
    """AWS (and the GDK recipe schema) accept them; the device ignores them (issue 13 gap 3)."""
    recipe = good_recipe()
    recipe["Manifests"][0]["Lifecycle"][key] = {"Script": "echo {artifacts:path}"}
    recipe["Lifecycle"]["all"][key] = "echo global"
    assert recipe_problems(recipe) == []
    normalized = normalize_recipe(recipe)
    assert key.capitalize() in normalized["Manifests"][0]["Lifecycle"]


def test_ignored_steps_are_still_checked_as_steps() -> None:
    recipe = good_recipe()
    recipe["Manifests"][0]["Lifecycle"]["Upgrade"] = {"Script": "x", "Skipif": "when x"}
    fields = [f for f, _ in recipe_problems(recipe)]
    assert "Manifests[0].Lifecycle.Upgrade.Skipif" in fields
