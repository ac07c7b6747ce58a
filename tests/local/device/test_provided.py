"""Built-in public components on the device: which versions a deployment may ask for."""

from __future__ import annotations

import pytest

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.provided import builtin_recipe, provided_versions
from edgekit.recipes.provided import PUBLIC_COMPONENTS

STREAM_MANAGER = "aws.greengrass.StreamManager"


def test_a_patch_of_a_published_line_is_accepted_as_the_control_plane_accepts_it() -> None:
    component = PUBLIC_COMPONENTS[STREAM_MANAGER]
    major, minor, _ = component.versions[-1].split(".")
    patch = f"{major}.{minor}.99"
    assert patch not in component.versions
    assert component.publishes(patch)  # the control plane lets it through...
    recipe = builtin_recipe(STREAM_MANAGER, patch)  # ...so the device must run it
    assert recipe is not None
    assert recipe["ComponentVersion"] == patch


def test_a_line_aws_never_published_fails_the_deployment_naming_the_versions() -> None:
    with pytest.raises(DeploymentFailure, match=r"no public version 97\.0\.0"):
        builtin_recipe(STREAM_MANAGER, "97.0.0")


def test_stand_ins_and_other_names_have_no_builtin_recipe() -> None:
    assert builtin_recipe("aws.greengrass.Nucleus", "2.14.0") is None
    assert builtin_recipe("aws.greengrass.labs.Anything", "1.0.0") is None
    assert provided_versions("com.example.Hello") is None
