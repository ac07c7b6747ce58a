"""Greengrass v2 component recipes: the one place that says what a recipe means.

Owns recipe semantics for every caller (the local control plane, the local device
runtime, ``edgekit components publish``):

* ``loading``     read JSON/YAML recipe text into a dict, write it back (no YAML
  aliases, no nesting deeper than ``limits.MAX_NESTING_DEPTH``)
* ``limits``      nesting limits of recipes and configurations, checked iteratively
* ``normalize``   keys and enumerated values in their documented spelling
* ``validate``    every problem as ``(field path, message)`` (``checks`` holds the
  field-level rules, ``schema`` the vocabulary)
* ``platforms``   platform matching and manifest selection (first match wins)
* ``lifecycle``   the lifecycle a device runs: manifest Lifecycle or global Lifecycle
  filtered by ``Selections``
* ``artifacts``   artifact URIs and file names
* ``semver``      semantic versions and npm-style ranges
* ``resolution``  choosing component versions for a set of requirements

Must not import ``edgekit.local`` (the emulator and the device use this package, not
the other way round), boto3/botocore, or anything that talks to a service. Errors are
``edgekit.errors.RecipeError`` (``semver.VersionError`` for bad versions and ranges).
"""

from __future__ import annotations

from edgekit.errors import RecipeError
from edgekit.recipes.artifacts import artifact_file_name, iter_artifacts, parse_s3_uri
from edgekit.recipes.lifecycle import resolve_lifecycle, selection_keywords
from edgekit.recipes.limits import (
    MAX_NESTING_DEPTH,
    nesting_depth,
    nesting_problem,
    too_deep_message,
)
from edgekit.recipes.loading import dump_recipe, load_recipe
from edgekit.recipes.normalize import normalize_recipe
from edgekit.recipes.platforms import (
    manifest_platforms,
    matches_every_platform,
    platform_matches,
    select_manifest,
    select_manifest_index,
)
from edgekit.recipes.resolution import (
    Requirement,
    best_version,
    newest_first,
    resolve_versions,
    satisfies_all,
)
from edgekit.recipes.schema import (
    ARTIFACT_PERMISSIONS,
    COMPONENT_TYPES,
    LIFECYCLE_STEPS,
    RECIPE_FORMAT_VERSION,
    RECIPE_MAX_BYTES,
)
from edgekit.recipes.semver import (
    Version,
    VersionError,
    max_satisfying,
    parse_range,
    parse_version,
    version_matches,
)
from edgekit.recipes.validate import parse_recipe, recipe_problems, validate_recipe

__all__ = [
    "ARTIFACT_PERMISSIONS",
    "COMPONENT_TYPES",
    "LIFECYCLE_STEPS",
    "MAX_NESTING_DEPTH",
    "RECIPE_FORMAT_VERSION",
    "RECIPE_MAX_BYTES",
    "RecipeError",
    "Requirement",
    "Version",
    "VersionError",
    "artifact_file_name",
    "best_version",
    "dump_recipe",
    "iter_artifacts",
    "load_recipe",
    "manifest_platforms",
    "matches_every_platform",
    "max_satisfying",
    "nesting_depth",
    "nesting_problem",
    "newest_first",
    "normalize_recipe",
    "parse_range",
    "parse_recipe",
    "parse_s3_uri",
    "parse_version",
    "platform_matches",
    "recipe_problems",
    "resolve_lifecycle",
    "resolve_versions",
    "satisfies_all",
    "select_manifest",
    "select_manifest_index",
    "selection_keywords",
    "too_deep_message",
    "validate_recipe",
    "version_matches",
]
