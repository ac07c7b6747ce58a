"""The vocabulary of a recipe: field names, enumerations, limits and patterns.

Constants only; the modules that read, normalize and check recipes share them.
"""

from __future__ import annotations

import re

RECIPE_FORMAT_VERSION = "2020-01-25"
COMPONENT_TYPES = (
    "aws.greengrass.generic",
    "aws.greengrass.lambda",
    "aws.greengrass.plugin",
    "aws.greengrass.nucleus",
)
LIFECYCLE_STEPS = ("Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover")
# Lifecycle steps recipes written for Greengrass carry and the service accepts (the GDK
# recipe schema allows any lifecycle key), but the nucleus never runs: the device logs
# a warning in the component's log and ignores them.
IGNORED_LIFECYCLE_STEPS = ("Upgrade", "Uninstall")
STEP_FIELDS = ("Script", "Skipif", "RequiresPrivilege", "Timeout", "Setenv")
ARTIFACT_PERMISSIONS = ("NONE", "OWNER", "ALL")
UNARCHIVE_TYPES = ("NONE", "ZIP")
ARTIFACT_SCHEMES = ("s3", "docker", "greengrass")
DEPENDENCY_TYPES = ("HARD", "SOFT")
PLUGIN_COMPONENT_TYPE = "aws.greengrass.plugin"
# The Greengrass quota on a component recipe; the GDK CLI enforces it as 16,000 bytes.
RECIPE_MAX_BYTES = 16_000

TOP_LEVEL_KEYS = (
    "RecipeFormatVersion",
    "ComponentName",
    "ComponentVersion",
    "ComponentDescription",
    "ComponentPublisher",
    "ComponentType",
    "ComponentSource",
    "ComponentConfiguration",
    "ComponentDependencies",
    "Manifests",
    "Lifecycle",
)
MANIFEST_KEYS = ("Name", "Platform", "Lifecycle", "Selections", "Artifacts")
ARTIFACT_KEYS = ("URI", "Unarchive", "Permission", "Digest", "Algorithm")
PERMISSION_KEYS = ("Read", "Execute")
DEPENDENCY_KEYS = ("VersionRequirement", "DependencyType")
CONFIGURATION_KEYS = ("DefaultConfiguration",)
LIFECYCLE_KEYS = ("Setenv", *LIFECYCLE_STEPS, *IGNORED_LIFECYCLE_STEPS)

NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.]+$")
# Names NAME_RE lets through that are path segments of their own ({work:path} etc.).
RESERVED_NAMES = frozenset({".", ".."})
LAMBDA_ARN_RE = re.compile(r"^arn:aws(-(cn|us-gov|iso(-[a-z])?))?:lambda:.*$")
SKIPIF_RE = re.compile(r"^(onpath|exists)\s+\S.*$", re.DOTALL)
# Characters java.net.URI (how the service parses an artifact URI) refuses unescaped.
URI_ILLEGAL_RE = re.compile(r'[\s"<>\\^`{|}\x00-\x1f\x7f]')
URI_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A recipe variable: {[component:]namespace:rest}, see the recipe reference.
VARIABLE_RE = re.compile(
    r"\{(?:(?P<dep>[A-Za-z0-9._-]+):)?(?P<ns>artifacts|work|configuration|kernel|iot):"
    r"(?P<rest>[^{}\s]*)\}"
)
VARIABLE_FORMS = {
    "artifacts": ("path", "decompressedPath"),
    "work": ("path",),
    "kernel": ("rootPath",),
    "iot": ("thingName",),
}
MAX_VERSION_PART = 999_999
