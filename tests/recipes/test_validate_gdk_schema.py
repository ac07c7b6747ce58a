"""edgekit.recipes against the Greengrass recipe schema and the recipe reference.

One test per rule. Each docstring states the fact the rule comes from: the recipe
JSON Schema the Greengrass service library and the GDK CLI validate with (keys
lower-cased first), the service's recipe parser, or the component recipe
reference. Where edgekit is stricter on purpose, the docstring says why.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from edgekit.components.templates import ROLES, Template
from edgekit.recipes import (
    RECIPE_MAX_BYTES,
    RecipeError,
    dump_recipe,
    normalize_recipe,
    parse_recipe,
    recipe_problems,
    validate_recipe,
)
from edgekit.settings import Settings


def minimal() -> dict:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Hello",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Run": {"Script": "python3 {artifacts:path}/hello.py"}},
                "Artifacts": [{"URI": "s3://bucket/hello/hello.py"}],
            }
        ],
    }


def fields(recipe: dict) -> list[str]:
    return [field for field, _ in recipe_problems(recipe)]


def first_error(recipe: dict) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        validate_recipe(recipe, source="r.yaml")
    return info.value


# --- top level -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["RecipeFormatVersion", "ComponentName", "ComponentVersion", "Manifests"]
)
def test_required_top_level_fields(key: str) -> None:
    """Schema: the four required top-level fields are RecipeFormatVersion,
    ComponentName, ComponentVersion and Manifests."""
    recipe = minimal()
    recipe.pop(key)
    err = first_error(recipe)
    assert err.field == key and "required" in err.reason


def test_no_other_top_level_fields() -> None:
    """Schema: the top level admits no properties besides the eleven documented ones."""
    recipe = minimal()
    recipe["ComponentAuthor"] = "me"
    err = first_error(recipe)
    assert err.field == "ComponentAuthor" and "spelling" in err.reason


def test_recipe_format_version_is_the_string_2020_01_25() -> None:
    """Schema: RecipeFormatVersion is a string with the single value 2020-01-25. A plain YAML
    loader reads an unquoted 2020-01-25 as a date, which is not that string."""
    recipe = minimal()
    recipe["RecipeFormatVersion"] = datetime.date(2020, 1, 25)
    err = first_error(recipe)
    assert err.field == "RecipeFormatVersion" and "quote it" in err.reason
    recipe["RecipeFormatVersion"] = "2021-01-01"
    assert fields(recipe) == ["RecipeFormatVersion"]


def test_component_name_pattern_and_length() -> None:
    """Schema: ComponentName matches ^[a-zA-Z0-9-_.]+$ and is at most 128 characters."""
    recipe = minimal()
    recipe["ComponentName"] = "a" * 128
    validate_recipe(recipe)
    recipe["ComponentName"] = "a" * 129
    assert fields(recipe) == ["ComponentName"]
    for bad in ("com/example", "com example", "", "é"):
        recipe["ComponentName"] = bad
        assert fields(recipe) == ["ComponentName"], bad


def test_component_version_length_and_parts() -> None:
    """Schema: ComponentVersion is a string of at most 64 characters; the service's parser
    takes a semantic version whose major, minor and patch are at most 999999."""
    recipe = minimal()
    recipe["ComponentVersion"] = "999999.999999.999999"
    validate_recipe(recipe)
    recipe["ComponentVersion"] = "1.0.1000000"
    assert "999999" in first_error(recipe).reason
    recipe["ComponentVersion"] = "1.0.0-" + "a" * 59  # 65 characters
    assert "64" in first_error(recipe).reason


def test_prerelease_versions_are_valid_for_own_components() -> None:
    """The service accepts pre-release versions in CreateComponentVersion: AWS's Greengrass
    testing framework publishes its test components as ``<version>-<test id>``."""
    recipe = minimal()
    for version in ("1.0.0-6edabeb86a6bfcbb28c8", "2.1.0-rc.1", "1.0.0-alpha+build.5"):
        recipe["ComponentVersion"] = version
        validate_recipe(recipe)


@pytest.mark.parametrize("key", ["ComponentDescription", "ComponentPublisher"])
def test_description_and_publisher_are_strings(key: str) -> None:
    """Schema: ComponentDescription and ComponentPublisher are strings; an empty YAML value
    (null) is not a string."""
    recipe = minimal()
    recipe[key] = None
    err = first_error(recipe)
    assert err.field == key and "leave the field out" in err.reason


def test_component_type_values_in_any_case() -> None:
    """Schema: ComponentType is one of aws.greengrass.generic/lambda/plugin/nucleus, matched
    case-insensitively (the schema's pattern and the service's enum parsing ignore case)."""
    recipe = minimal()
    recipe["ComponentType"] = "AWS.Greengrass.Generic"
    validate_recipe(recipe)
    assert normalize_recipe(recipe)["ComponentType"] == "aws.greengrass.generic"
    recipe["ComponentType"] = "aws.greengrass.docker"
    assert fields(recipe) == ["ComponentType"]


def test_component_source_is_a_lambda_arn() -> None:
    """Schema: ComponentSource matches ^arn:aws(-(cn|us-gov|iso(-[a-z])?))?:lambda:.*$."""
    recipe = minimal()
    for arn in (
        "arn:aws:lambda:eu-west-1:123456789012:function:f:1",
        "arn:aws-cn:lambda:cn-north-1:123456789012:function:f",
        "arn:aws-iso-b:lambda:us-isob-east-1:123456789012:function:f",
    ):
        recipe["ComponentSource"] = arn
        validate_recipe(recipe)
    recipe["ComponentSource"] = "arn:aws:s3:::bucket"
    assert fields(recipe) == ["ComponentSource"]


# --- configuration and dependencies ----------------------------------------------


def test_default_configuration_may_be_empty() -> None:
    """Schema: DefaultConfiguration has no type constraint; an empty YAML value (null, e.g.
    every key commented out) means no defaults. edgekit still wants a mapping otherwise,
    as the reference describes it ({configuration:/key} looks keys up in an object)."""
    recipe = minimal()
    recipe["ComponentConfiguration"] = {"DefaultConfiguration": None}
    validate_recipe(recipe)
    recipe["ComponentConfiguration"] = {"DefaultConfiguration": ["a"]}
    assert fields(recipe) == ["ComponentConfiguration.DefaultConfiguration"]


def test_default_configuration_holds_json_only() -> None:
    """Reference: Greengrass stores configuration as JSON; NaN is not JSON."""
    recipe = minimal()
    recipe["ComponentConfiguration"] = {"DefaultConfiguration": {"Threshold": float("nan")}}
    assert fields(recipe) == ["ComponentConfiguration.DefaultConfiguration"]


def test_component_configuration_fields_are_typo_checked() -> None:
    """Deliberately stricter: the schema lets unknown keys next to DefaultConfiguration
    through and the device ignores them, so a misspelling would silently drop the defaults."""
    recipe = minimal()
    recipe["ComponentConfiguration"] = {"DefaultConfig": {"a": 1}}
    assert fields(recipe) == ["ComponentConfiguration.DefaultConfig"]


def test_dependency_requires_a_version_requirement() -> None:
    """Schema: each ComponentDependencies entry is an object that requires a string
    VersionRequirement; the reference: an npm-style semantic version range."""
    recipe = minimal()
    recipe["ComponentDependencies"] = {"com.example.Lib": {"DependencyType": "SOFT"}}
    assert fields(recipe) == ["ComponentDependencies.com.example.Lib.VersionRequirement"]
    recipe["ComponentDependencies"]["com.example.Lib"]["VersionRequirement"] = 1.0
    assert "quote it" in first_error(recipe).reason
    recipe["ComponentDependencies"]["com.example.Lib"]["VersionRequirement"] = "~1.2 || >=3"
    validate_recipe(recipe)


def test_dependency_type_hard_or_soft_in_any_case() -> None:
    """Schema: DependencyType is SOFT or HARD, matched case-insensitively."""
    recipe = minimal()
    recipe["ComponentDependencies"] = {
        "com.example.Lib": {"VersionRequirement": "^1.0.0", "DependencyType": "soft"}
    }
    validate_recipe(recipe)
    dep = normalize_recipe(recipe)["ComponentDependencies"]["com.example.Lib"]
    assert dep["DependencyType"] == "SOFT"
    recipe["ComponentDependencies"]["com.example.Lib"]["DependencyType"] = "WEAK"
    err = first_error(recipe)
    assert err.field == "ComponentDependencies.com.example.Lib.DependencyType"


def test_dependency_names_are_component_names() -> None:
    """Deliberately stricter: the schema only checks entries whose key matches the component
    name pattern; any other key can never name a component, so edgekit reports it."""
    recipe = minimal()
    recipe["ComponentDependencies"] = {"com example": {"VersionRequirement": "^1.0.0"}}
    assert fields(recipe) == ["ComponentDependencies.com example"]


# --- manifests and platforms -------------------------------------------------------


def test_manifests_is_a_list_possibly_empty() -> None:
    """Schema: Manifests is an array with no minimum length; null is not an array."""
    recipe = minimal()
    recipe["Manifests"] = []
    validate_recipe(recipe)
    recipe["Manifests"] = None
    err = first_error(recipe)
    assert err.field == "Manifests" and "list" in err.reason


def test_platform_values_are_strings() -> None:
    """Schema: every Platform attribute value is a string (the service's ComponentPlatform
    attributes are string to string); alternatives are written as /regex/."""
    recipe = minimal()
    recipe["Manifests"][0]["Platform"] = {"os": ["linux", "darwin"]}
    err = first_error(recipe)
    assert err.field == "Manifests[0].Platform.os" and "/linux|darwin/" in err.reason
    recipe["Manifests"][0]["Platform"] = {"os": "/linux|darwin/", "com.example.Radio": "lora"}
    validate_recipe(recipe)
    recipe["Manifests"][0]["Platform"] = {"architecture": 64}
    assert fields(recipe) == ["Manifests[0].Platform.architecture"]


def test_platform_exact_values_start_with_a_letter_or_digit() -> None:
    """Reference: a Platform value is an exact value that starts with a letter or a number,
    ``*``, or a regular expression between slashes."""
    recipe = minimal()
    recipe["Manifests"][0]["Platform"] = {"os": "-linux"}
    assert fields(recipe) == ["Manifests[0].Platform.os"]
    recipe["Manifests"][0]["Platform"] = {"os": "*", "architecture": "/.+/"}
    validate_recipe(recipe)


def test_manifest_for_all_platforms_comes_last() -> None:
    """Reference: a device uses the first manifest it matches, so a manifest that applies
    to all platforms must be the last one in the list."""
    recipe = minimal()
    catch_all = {"Lifecycle": {"Run": "echo any"}}
    recipe["Manifests"].insert(0, catch_all)
    err = first_error(recipe)
    assert err.field == "Manifests[0]" and "move this manifest last" in err.reason
    recipe["Manifests"][0] = {"Platform": {"os": "*"}, "Lifecycle": {"Run": "echo any"}}
    assert fields(recipe) == ["Manifests[0].Platform"]
    recipe["Manifests"].reverse()
    validate_recipe(recipe)


def test_unknown_manifest_keys_are_typos() -> None:
    """Deliberately stricter: a manifest holds Name, Platform, Lifecycle, Selections and
    Artifacts; the schema ignores other keys, so a misspelt Artifacts would ship none."""
    recipe = minimal()
    recipe["Manifests"][0]["Artifact"] = recipe["Manifests"][0].pop("Artifacts")
    assert fields(recipe) == ["Manifests[0].Artifact"]


def test_selections_list_or_string() -> None:
    """Schema: a manifest's Selections is an array of strings or a single string."""
    recipe = minimal()
    recipe["Manifests"][0]["Selections"] = ["linux", "all"]
    validate_recipe(recipe)
    recipe["Manifests"][0]["Selections"] = "linux"
    validate_recipe(recipe)
    recipe["Manifests"][0]["Selections"] = ["linux", 3]
    assert fields(recipe) == ["Manifests[0].Selections[1]"]


# --- lifecycle ---------------------------------------------------------------------


def test_lifecycle_step_string_or_mapping_with_script() -> None:
    """Schema: a lifecycle step is a string, or an object whose Script is required (for
    components other than aws.greengrass.plugin)."""
    recipe = minimal()
    recipe["Manifests"][0]["Lifecycle"] = {"Install": "pip install x", "Run": {"Timeout": 5}}
    err = first_error(recipe)
    assert err.field == "Manifests[0].Lifecycle.Run.Script" and "required" in err.reason
    recipe["Manifests"][0]["Lifecycle"]["Run"] = None
    assert fields(recipe) == ["Manifests[0].Lifecycle.Run"]


def test_plugin_steps_may_omit_script() -> None:
    """Schema: the 'steps need Script' rule applies only when ComponentType is not
    aws.greengrass.plugin (plugins run inside the nucleus)."""
    recipe = minimal()
    recipe["ComponentType"] = "aws.greengrass.plugin"
    recipe["Manifests"][0]["Lifecycle"] = {"Run": {"Setenv": {"A": "1"}}}
    validate_recipe(recipe)


def test_step_field_types() -> None:
    """Schema: Skipif matches (onpath|exists) followed by whitespace and an argument;
    RequiresPrivilege is a boolean or a string; Timeout an integer or a string; Setenv
    values are strings, numbers or booleans."""
    recipe = minimal()
    recipe["Manifests"][0]["Lifecycle"] = {
        "Install": {
            "Script": "pip install x",
            "Skipif": "exists /opt/x",
            "RequiresPrivilege": "true",
            "Timeout": "300",
            "Setenv": {"A": "1", "B": 2, "C": True},
        },
        "Run": "x",
    }
    validate_recipe(recipe)
    step = recipe["Manifests"][0]["Lifecycle"]["Install"]
    step.update(Skipif="ifexists /opt/x", Timeout=1.5, RequiresPrivilege=1)
    step["Setenv"]["D"] = ["x"]
    prefix = "Manifests[0].Lifecycle.Install."
    assert sorted(fields(recipe)) == [
        prefix + "RequiresPrivilege",
        prefix + "Setenv.D",
        prefix + "Skipif",
        prefix + "Timeout",
    ]


def test_step_fields_and_step_names_are_typo_checked() -> None:
    """Deliberately stricter: the schema ignores unknown keys in a lifecycle and in a step,
    and the device ignores them too: a 'Start' step (as in one of the reference's own
    examples) or a 'SkipIf_' check would silently never apply."""
    recipe = minimal()
    recipe["Manifests"][0]["Lifecycle"] = {"Start": "echo", "Install": {"Script": "x", "If": "y"}}
    assert sorted(fields(recipe)) == [
        "Manifests[0].Lifecycle.Install.If",
        "Manifests[0].Lifecycle.Start",
    ]


def test_run_or_startup_not_both() -> None:
    """Reference: you can define only one Startup or Run lifecycle step (the GDK CLI warns)."""
    recipe = minimal()
    recipe["Manifests"][0]["Lifecycle"]["Startup"] = "echo"
    assert fields(recipe) == ["Manifests[0].Lifecycle.Startup"]


def test_setenv_is_a_mapping() -> None:
    """Deliberately stricter: the schema also lets Setenv be a plain string, which the
    device ignores; the reference documents it as a dictionary of variables."""
    recipe = minimal()
    recipe["Manifests"][0]["Lifecycle"]["Setenv"] = "A=1"
    assert fields(recipe) == ["Manifests[0].Lifecycle.Setenv"]


def test_global_lifecycle_with_selection_keys() -> None:
    """Reference: a global lifecycle may use selection keys at the top, at the bottom (in
    Script) or at several levels; each Script value is still a string."""
    recipe = minimal()
    del recipe["Manifests"][0]["Lifecycle"]
    recipe["Manifests"][0]["Selections"] = ["key1"]
    recipe["Lifecycle"] = {
        "key1": {"Install": {"Skipif": "onpath git", "Script": "command1"}},
        "all": {"Install": {"Script": {"key3": "command3", "all": "command5"}}},
        "Run": {"Script": {"key1": "a", "all": "b"}},
    }
    validate_recipe(recipe)
    recipe["Lifecycle"]["all"]["Install"]["Script"]["key3"] = ["command3"]
    assert fields(recipe) == ["Lifecycle.all.Install.Script.key3"]


# --- recipe variables ----------------------------------------------------------------


def test_recipe_variables_name_only_direct_dependencies() -> None:
    """Reference: a recipe variable's component name (``{name:configuration:/x}``,
    ``{name:artifacts:path}``, ``{name:work:path}``) may only be a direct dependency; the
    device leaves any other variable as literal text in the script."""
    recipe = minimal()
    run = "cat {com.example.Lib:work:path}/x {com.example.Other:configuration:/Port}"
    recipe["Manifests"][0]["Lifecycle"]["Run"] = {"Script": run}
    recipe["ComponentDependencies"] = {"com.example.Lib": {"VersionRequirement": "^1.0.0"}}
    err = first_error(recipe)
    assert err.field == "Manifests[0].Lifecycle.Run.Script"
    assert "com.example.Other" in err.reason and "ComponentDependencies" in err.reason
    assert len(err.problems) == 1
    recipe["ComponentDependencies"]["com.example.Other"] = {"VersionRequirement": "^2.0.0"}
    validate_recipe(recipe)


def test_recipe_variable_forms() -> None:
    """Reference: the variables are {configuration:/json/pointer}, {artifacts:path},
    {artifacts:decompressedPath}, {work:path} (each optionally after a dependency name),
    {kernel:rootPath} and {iot:thingName}; JSON pointers start with '/'."""
    recipe = minimal()
    good = (
        "{artifacts:path} {artifacts:decompressedPath} {work:path} {kernel:rootPath} "
        "{iot:thingName} {configuration:/a/0} {com.example.Hello:configuration:/x} "
        "awk '{print $1}' ${HOME} {iot.thingName}"
    )
    recipe["Manifests"][0]["Lifecycle"]["Run"] = {"Script": good, "Setenv": {"P": "{work:path}"}}
    validate_recipe(recipe)
    for bad in (
        "{configuration:Message}",
        "{artifacts:decompressedpath}",
        "{work:folder}",
        "{com.example.Lib:iot:thingName}",
    ):
        recipe["Manifests"][0]["Lifecycle"]["Run"] = {"Script": "echo", "Setenv": {"X": bad}}
        recipe["ComponentDependencies"] = {"com.example.Lib": {"VersionRequirement": "^1.0.0"}}
        assert fields(recipe) == ["Manifests[0].Lifecycle.Run.Setenv.X"], bad


# --- artifacts ----------------------------------------------------------------------


def test_artifact_requires_uri() -> None:
    """Schema: every artifact object requires a string URI."""
    recipe = minimal()
    recipe["Manifests"][0]["Artifacts"] = [{"Unarchive": "ZIP"}]
    assert fields(recipe) == ["Manifests[0].Artifacts[0].URI"]


def test_artifact_uri_must_parse_as_a_uri() -> None:
    """The service parses an artifact URI as a java.net.URI: spaces and characters such as
    '"', '<', '>', '{', '}', '|', '\\', '^' and '`' must be percent-encoded, and a '%' must
    start an escape."""
    recipe = minimal()
    artifact = recipe["Manifests"][0]["Artifacts"][0]
    for bad in ("s3://bucket/my file.py", "s3://bucket/a{b}.py", "s3://bucket/100%.py"):
        artifact["URI"] = bad
        err = first_error(recipe)
        assert err.field == "Manifests[0].Artifacts[0].URI", bad
        assert "not a valid URI" in err.reason
    artifact["URI"] = "s3://bucket/my%20file.py"
    validate_recipe(recipe)


def test_unarchive_none_or_zip_in_any_case() -> None:
    """Schema: Unarchive is ZIP or NONE, matched case-insensitively."""
    recipe = minimal()
    artifact = recipe["Manifests"][0]["Artifacts"][0]
    artifact.update(URI="s3://bucket/models.zip", Unarchive="zip")
    validate_recipe(recipe)
    assert normalize_recipe(recipe)["Manifests"][0]["Artifacts"][0]["Unarchive"] == "ZIP"
    artifact["Unarchive"] = "TAR"
    assert fields(recipe) == ["Manifests[0].Artifacts[0].Unarchive"]


def test_permission_read_execute_in_any_case() -> None:
    """Schema: Permission has Read and Execute, each NONE, OWNER or ALL, matched
    case-insensitively; the reference: there is no Write permission."""
    recipe = minimal()
    artifact = recipe["Manifests"][0]["Artifacts"][0]
    artifact["Permission"] = {"read": "all", "Execute": "Owner"}
    validate_recipe(recipe)
    perm = normalize_recipe(recipe)["Manifests"][0]["Artifacts"][0]["Permission"]
    assert perm == {"Read": "ALL", "Execute": "OWNER"}
    artifact["Permission"] = {"Read": "EVERYONE", "Write": "OWNER"}
    assert sorted(fields(recipe)) == [
        "Manifests[0].Artifacts[0].Permission.Read",
        "Manifests[0].Artifacts[0].Permission.Write",
    ]
    artifact["Permission"] = None
    assert fields(recipe) == ["Manifests[0].Artifacts[0].Permission"]


def test_digest_and_algorithm_are_strings() -> None:
    """Schema: Digest and Algorithm are (read-only) strings; the service fills them in."""
    recipe = minimal()
    recipe["Manifests"][0]["Artifacts"][0].update(Digest="abc=", Algorithm="SHA-256")
    validate_recipe(recipe)
    recipe["Manifests"][0]["Artifacts"][0]["Digest"] = 12
    assert fields(recipe) == ["Manifests[0].Artifacts[0].Digest"]


def test_artifact_file_names_unique_per_manifest() -> None:
    """Reference: each artifact must have a unique file name within each manifest."""
    recipe = minimal()
    recipe["Manifests"][0]["Artifacts"].append({"URI": "s3://other/v2/hello.py"})
    assert fields(recipe) == ["Manifests[0].Artifacts[1].URI"]


# --- the document as a whole ------------------------------------------------------------


def test_keys_are_case_insensitive() -> None:
    """Schema: the service and the GDK CLI lower-case every key before validating, so
    ``componentName`` is ``ComponentName``."""
    recipe = json.loads(json.dumps(minimal()).replace('"Manifests"', '"MANIFESTS"'))
    recipe["componentversion"] = recipe.pop("ComponentVersion")
    validate_recipe(recipe)
    assert "Manifests" in normalize_recipe(recipe)


def test_keys_must_be_text() -> None:
    """Deliberately stricter: JSON keys are strings. YAML reads an unquoted ``on:`` or
    ``no:`` key as a boolean, which edgekit's JSON would send as "true"/"false"."""
    recipe = minimal()
    recipe["ComponentConfiguration"] = {"DefaultConfiguration": {True: "x", "ok": {1: "y"}}}
    assert sorted(fields(recipe)) == [
        "ComponentConfiguration.DefaultConfiguration.True",
        "ComponentConfiguration.DefaultConfiguration.ok.1",
    ]


def test_recipe_size_quota() -> None:
    """Greengrass quota: a recipe is at most 16 kB (the GDK CLI refuses more than 16,000
    bytes). A dict is measured as edgekit sends it (dump_recipe JSON); text as given."""
    recipe = minimal()
    recipe["ComponentDescription"] = "x" * (RECIPE_MAX_BYTES - len(dump_recipe(recipe)) - 40)
    validate_recipe(recipe)
    recipe["ComponentDescription"] += "x" * 80
    err = first_error(recipe)
    assert err.field is None and "16 kB" in err.reason
    text = dump_recipe(minimal()) + b" " * RECIPE_MAX_BYTES
    with pytest.raises(RecipeError, match="16 kB"):
        parse_recipe(text, source="inlineRecipe")


# --- the component templates ------------------------------------------------------------


@pytest.fixture(scope="module")
def publish_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every placeholder, with the longest values a publish can produce (63-character
    bucket, 6-digit version parts) and a real public key."""
    from edgekit.package import generate_keypair
    from edgekit.package.keys import PUBLIC_KEY_NAME

    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder)
    settings = Settings()
    bucket = "b" * 63
    version = "999999.999999.999999"
    return {
        "ARTIFACT_PREFIX": f"s3://{bucket}/components/com.qualityinspection.agent/{version}",
        "COMPONENT_VERSION": version,
        "MODEL_COMPONENT": settings.model_component,
        "AGENT_COMPONENT": settings.agent_component,
        "INFERENCE_COMPONENT": settings.inference_component,
        "MODEL_NAME": settings.model_name,
        "MODEL_VERSION": "1.0.0",
        "PACKAGE_FILE": f"{settings.model_name}-1.0.0.tar.gz",
        "PACKAGE_SHA256": "0" * 64,
        "CAPTURE_BUCKET": bucket,
        "PUBLIC_KEY": (folder / PUBLIC_KEY_NAME).read_text().strip(),
        "ADDITIONAL_PUBLIC_KEYS": "",
        "PYTHON": "/usr/local/bin/python3.11",
        "WHEEL_FILE": "edgekit-0.1.0-py3-none-any.whl",
        "MODEL_VERSION_REQUIREMENT": f">={version} <1000000.0.0",
        "AGENT_VERSION_REQUIREMENT": f">={version} <1000000.0.0",
        "RESULTS_TOPIC": settings.results_topic,
        "HEALTH_TOPIC": settings.health_topic,
        "IMAGES_FOLDER": "sample-images",
        "IMAGES_ZIP": "sample-images.zip",
        "MODEL_RUNTIMES": "onnxruntime-int8 openvino-int8",
    }


@pytest.mark.parametrize("role", ROLES)
def test_rendered_templates_pass_every_rule(role: str, publish_values: dict[str, str]) -> None:
    """Every component recipe edgekit publishes passes the validator, as a dict (what
    publish sends, JSON) and as the YAML and JSON text the service would receive."""
    template = Template.load(role)
    recipe = template.render(publish_values)
    validate_recipe(recipe, source=str(template.path))
    assert recipe_problems(recipe) == []
    for fmt in ("JSON", "YAML"):
        parsed = parse_recipe(dump_recipe(recipe, fmt), source=f"{role} {fmt}")
        assert parsed == normalize_recipe(recipe)
    assert len(dump_recipe(recipe, "JSON")) < RECIPE_MAX_BYTES


def test_templates_use_documented_spellings() -> None:
    """The templates write keys and enumerated values in their documented spelling, so
    normalizing a rendered recipe changes nothing."""
    for role in ROLES:
        document = Template.load(role).document
        assert normalize_recipe(document) == document, role
        assert Path(Template.load(role).path).suffix in (".yaml", ".yml", ".json")
