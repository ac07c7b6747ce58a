"""Recipes of the AWS-provided components edgekit implements on the local device.

``edgekit.recipes.provided`` says which public components exist and which the device
runs itself (``BUILT_IN``). For each of those, a provider here writes the recipe the
device runs: the component's documented ``DefaultConfiguration`` and a lifecycle that
starts edgekit's implementation with this device's Python. The device then treats it as
any component (lifecycle, logs, status, configuration updates, dependencies).

Providers live in their own subsystems and are imported only when a deployment asks
for their component (``_PROVIDERS``: component name -> ``module:function``; the
function takes the requested version and returns the recipe as a dict).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgekit.local.device.failures import DeploymentFailure
from edgekit.recipes.provided import is_built_in, is_stand_in, public_component

__all__ = ["builtin_recipe", "is_stand_in", "provided_versions"]

RecipeProvider = Callable[[str], dict[str, Any]]

_PROVIDERS: dict[str, str] = {
    "aws.greengrass.SageMakerEdgeManager": "edgekit.agent.edge_manager:builtin_recipe",
    "aws.greengrass.StreamManager": "edgekit.local.streammanager.recipe:builtin_recipe",
}


def _provider(name: str) -> RecipeProvider:
    target = _PROVIDERS.get(name)
    if target is None:
        raise DeploymentFailure(
            f"{name} is listed as built into the edgekit device but has no recipe provider; "
            "this is an edgekit bug: report it",
            codes=["COMPONENT_PACKAGE_LOADING_ERROR"],
            types=["COMPONENT_RECIPE_ERROR"],
        )
    module, _, function = target.partition(":")
    fn: RecipeProvider = getattr(importlib.import_module(module), function)
    return fn


def provided_versions(name: str) -> list[str] | None:
    """The versions a built-in public component answers to, or None for other names."""
    component = public_component(name)
    if component is None or not is_built_in(name):
        return None
    return list(component.versions)


def builtin_recipe(name: str, version: str) -> dict[str, Any] | None:
    """The recipe of built-in component ``name`` at ``version``, or None for other names.

    A version AWS never published (``ProvidedComponent.publishes``: a listed version or a
    patch of a listed line) fails the deployment, as on a real device.
    """
    versions = provided_versions(name)
    component = public_component(name)
    if versions is None or component is None:
        return None
    if not component.publishes(version):
        raise DeploymentFailure(
            f"{name} has no public version {version}; AWS publishes {', '.join(versions)} "
            "(and patches of those lines). Fix componentVersion in the deployment",
            codes=["NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET"],
            types=["REQUEST_ERROR"],
        )
    recipe = _provider(name)(version)
    recipe["ComponentName"] = name
    recipe["ComponentVersion"] = version
    return recipe

