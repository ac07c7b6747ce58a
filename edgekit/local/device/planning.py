"""Deployment planning: from the deployments' targets to the component specs to run.

Resolves the root components of every target into versions and configurations
(``resolver``), fetches recipes (cached under the device root) and artifacts, and
builds each component's interpolated lifecycle (`ComponentSpec`). Planning changes
nothing that runs; `supervision` makes the services match a plan. `Planner` holds no
state of the runtime: the runtime passes in what is committed.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from edgekit.files import write_json_atomic
from edgekit.local.device.artifacts import prepare_artifacts
from edgekit.local.device.configuration import resolve_configuration
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.interpolate import ComponentPaths, Context, interpolate
from edgekit.local.device.lifecycle import ComponentSpec
from edgekit.local.device.local_deployments import local_versions
from edgekit.local.device.paths import DeviceLayout, path_segment
from edgekit.local.device.provided import builtin_recipe, provided_versions
from edgekit.local.device.recipe import (
    STEP_KEYS,
    ResolvedRecipe,
    Step,
    is_provided,
    resolve_recipe,
)
from edgekit.local.device.resolver import resolve
from edgekit.local.device.store import ComponentRecord


@dataclass
class Plan:
    """The component set a deployment asks for: committed records and the specs to run."""

    records: dict[str, ComponentRecord]
    specs: dict[str, ComponentSpec] = field(default_factory=dict)


def topological(specs: dict[str, ComponentSpec]) -> list[str]:
    """Dependencies before dependents; DeploymentFailure on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise DeploymentFailure(
                f"components depend on each other in a cycle ({cycle}); remove one dependency",
                codes=["COMPONENT_CIRCULAR_DEPENDENCY_ERROR"],
                types=["REQUEST_ERROR"],
            )
        state[name] = 1
        for dep in sorted(specs[name].dependencies):
            if dep in specs:
                visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(specs):
        visit(name, [])
    return order


class Planner:
    """Plans for one device: reads recipes (cached in memory and under the root), never runs."""

    def __init__(
        self,
        thing_name: str,
        layout: DeviceLayout,
        cloud: ControlPlane,
        platform: dict[str, str],
        log: logging.Logger,
    ) -> None:
        self.thing_name = thing_name
        self.layout = layout
        self.cloud = cloud
        self.platform = platform
        self.log = log
        self._recipes: dict[tuple[str, str], ResolvedRecipe] = {}

    def _roots(self, targets: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Root components over all targets; the thing's own deployment wins a conflict."""
        roots: dict[str, str] = {}
        thing_arn = self.cloud.thing_arn
        for _arn, doc in sorted(targets.items(), key=lambda kv: (kv[0] == thing_arn, kv[0])):
            for name, comp in (doc.get("components") or {}).items():
                version = (comp or {}).get("componentVersion")
                if not version:
                    raise DeploymentFailure(
                        f"deployment {doc.get('deploymentId')}: component {name} has no "
                        "componentVersion",
                        codes=["COMPONENT_METADATA_NOT_VALID_IN_DEPLOYMENT"],
                        types=["REQUEST_ERROR"],
                    )
                path_segment(name, f"deployment {doc.get('deploymentId')}: component name")
                path_segment(str(version), f"deployment {doc.get('deploymentId')}: {name} version")
                roots[name] = str(version)
        return roots

    def plan(
        self,
        targets: dict[str, dict[str, Any]],
        updates: dict[str, dict[str, Any]],
        current: dict[str, ComponentRecord],
    ) -> Plan:
        """The components ``targets`` need, from the ``current`` (committed) ones.

        Resolves versions and configuration (``updates``: each component's
        configurationUpdate), fetches recipes and artifacts; changes nothing that runs.
        """
        roots = self._roots(targets)
        installed = {n: r.version for n, r in current.items()}
        recipes, provided = resolve(roots, self.recipe, self.versions, installed)
        records: dict[str, ComponentRecord] = {}
        for name, recipe in recipes.items():
            record = current.get(name)
            config = resolve_configuration(
                None if record is None else record.configuration,
                recipe.default_configuration,
                updates.get(name),
                name,
            )
            records[name] = ComponentRecord(recipe.version, config, name in roots)
        for name, version in provided.items():
            record = current.get(name)
            config = resolve_configuration(
                None if record is None else record.configuration, None, updates.get(name), name
            )
            records[name] = ComponentRecord(version, config, name in roots, provided=True)
        plan = Plan(records)
        plan.specs = self.build_specs(plan)
        topological(plan.specs)
        for spec in plan.specs.values():
            prepare_artifacts(
                spec.recipe,
                spec.paths.artifacts,
                spec.paths.decompressed,
                lambda recipe, art: self.cloud.artifact_url(recipe.name, recipe.version, art.uri),
            )
        return plan

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` a dependency may resolve to: the public versions of a
        component built into the device, else what the control plane has published and
        what local deployments brought."""
        builtin = provided_versions(name)
        if builtin is not None:
            return builtin
        local = local_versions(self.layout.root, name)  # put there by local deployments
        if not local:
            return self.cloud.versions(name)
        try:
            published = self.cloud.versions(name)
        except ControlPlaneUnavailable:
            published = []  # a local deployment works without the control plane
        return published + [v for v in local if v not in published]

    def forget(self, name: str, version: str) -> None:
        """Drop a cached recipe (a local deployment brought a new one for that version)."""
        self._recipes.pop((name, version), None)

    def recipe(self, name: str, version: str) -> ResolvedRecipe:
        """The recipe of ``name`` ``version`` resolved for this device's platform."""
        key = (name, version)
        cached = self._recipes.get(key)
        if cached is not None:
            return cached
        path = self.layout.recipe_file(name, version)
        raw = builtin_recipe(name, version)
        if raw is not None:
            write_json_atomic(path, raw)  # what ran, for `edgekit local device` and support
        else:
            try:
                raw = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                raw = self.cloud.recipe(name, version)
                write_json_atomic(path, raw)
        recipe = resolve_recipe(raw, self.platform)
        if recipe.name != name or recipe.version != version:
            raise DeploymentFailure(
                f"the control plane returned the recipe of {recipe.name} {recipe.version} "
                f"for {name} {version}",
                codes=["RECIPE_METADATA_PARSE_ERROR"],
                types=["COMPONENT_RECIPE_ERROR"],
            )
        self._recipes[key] = recipe
        return recipe

    def _paths(self, name: str, version: str) -> ComponentPaths:
        return ComponentPaths(
            artifacts=self.layout.artifacts(name, version),
            decompressed=self.layout.unarchived(name, version),
            work=self.layout.work(name),
        )

    def build_specs(self, plan: Plan, only: list[str] | None = None) -> dict[str, ComponentSpec]:
        """Interpolated lifecycles for the non-provided components of ``plan``."""
        records = plan.records
        specs: dict[str, ComponentSpec] = {}
        for name in only or list(records):
            record = records[name]
            if record.provided:
                continue
            recipe = self.recipe(name, record.version)
            direct = [name] + [
                d for d in recipe.dependencies if d in records and not records[d].provided
            ]
            ctx = Context(
                component=name,
                paths={n: self._paths(n, records[n].version) for n in direct},
                configurations={n: records[n].configuration for n in direct},
                root_path=self.layout.root,
                thing_name=self.thing_name,
            )
            unresolved: list[str] = []

            def interp(text: str, ctx: Context = ctx, unresolved: list[str] = unresolved) -> str:
                return interpolate(text, ctx, unresolved.append)

            steps: dict[str, Step | None] = {}
            for step_name in STEP_KEYS:
                if step_name == "setenv":
                    continue
                step = recipe.step(step_name)
                steps[step_name] = (
                    None
                    if step is None
                    else Step(
                        script=interp(step.script),
                        timeout=step.timeout,
                        setenv={k: interp(v) for k, v in step.setenv.items()},
                        skipif=None if step.skipif is None else interp(step.skipif),
                        requires_privilege=step.requires_privilege,
                    )
                )
            if unresolved:
                self.log.info(
                    "%s: recipe variables left as written: %s",
                    name,
                    "; ".join(sorted(set(unresolved))),
                )
            specs[name] = ComponentSpec(
                name=name,
                version=record.version,
                root=record.root,
                recipe=recipe,
                configuration=copy.deepcopy(record.configuration),
                dependencies={
                    d.name: d.type for d in recipe.dependencies.values() if not is_provided(d.name)
                },
                steps=steps,
                setenv={k: interp(v) for k, v in recipe.global_setenv.items()},
                paths=ctx.paths[name],
                log_file=self.layout.component_log(name),
            )
        return specs
