"""What a deployment's devices must prove, read from the component versions it deploys.

The model component's recipe names the package: its ``.tar.gz`` artifact's ``Digest``
(base64 SHA-256, computed by Greengrass when the version was created) is the sha256 of
the archive as published, and its ``DefaultConfiguration`` has ``ModelName`` and
``ModelVersion``. The agent component's ``DefaultConfiguration.PublicKey`` is the key
the agent verifies packages with; its fingerprint is `edgekit.package.key_id`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from edgekit.awsapi import map_client_error
from edgekit.components.publish import component_arn
from edgekit.deploy.proof import DEFAULT_MIN_RESULTS, ProofCriteria
from edgekit.errors import DeploymentError, PackageError
from edgekit.package import key_id, load_public_key
from edgekit.recipes import parse_recipe
from edgekit.settings import Settings

_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


def stored_recipe(greengrass: Any, arn: str) -> dict[str, Any]:
    """The recipe of component version ``arn`` as the service stores it (GetComponent)."""
    try:
        answer = greengrass.get_component(arn=arn, recipeOutputFormat="JSON")
    except ClientError as exc:
        raise map_client_error(exc, f"component version {arn}", "read its recipe") from exc
    return parse_recipe(answer["recipe"], source=arn)


def _defaults(recipe: Mapping[str, Any]) -> Mapping[str, Any]:
    return (recipe.get("ComponentConfiguration") or {}).get("DefaultConfiguration") or {}


def package_sha256(recipe: Mapping[str, Any], source: str) -> str:
    """The hex sha256 of the model component's package archive (its artifact's Digest)."""
    for manifest in recipe.get("Manifests") or []:
        for artifact in manifest.get("Artifacts") or []:
            uri = str(artifact.get("URI") or artifact.get("Uri") or "")
            digest = artifact.get("Digest")
            if uri.endswith(".tar.gz") and digest:
                return base64.b64decode(str(digest)).hex()
    # No digest stored (an older or foreign recipe): the install script's stamp.
    for manifest in recipe.get("Manifests") or []:
        install = ((manifest.get("Lifecycle") or {}).get("Install")) or {}
        script = install.get("Script") if isinstance(install, Mapping) else install
        found = _SHA256.search(str(script or ""))
        if found:
            return found.group(0)
    raise DeploymentError(
        f"{source}: no package artifact (.tar.gz with a Digest) in the recipe; publish the "
        "model component with `edgekit components publish --model-package FILE`"
    )


def expected_proof(
    settings: Settings,
    greengrass: Any,
    account: str,
    versions: Mapping[str, str],
    *,
    since: datetime,
    min_results: int = DEFAULT_MIN_RESULTS,
) -> ProofCriteria:
    """The `ProofCriteria` of deploying ``versions`` ({component: version}) from ``since``."""
    model_arn = component_arn(
        settings, account, settings.model_component, versions[settings.model_component]
    )
    model = stored_recipe(greengrass, model_arn)
    defaults = _defaults(model)
    fingerprint = None
    agent_version = versions.get(settings.agent_component)
    if agent_version:
        agent_arn = component_arn(settings, account, settings.agent_component, agent_version)
        pem = _defaults(stored_recipe(greengrass, agent_arn)).get("PublicKey")
        if pem:
            try:
                fingerprint = key_id(load_public_key(str(pem).encode()))
            except PackageError as exc:
                raise DeploymentError(
                    f"{agent_arn}: DefaultConfiguration.PublicKey is not a PEM public key "
                    f"({exc}); publish the agent again with `edgekit components publish`"
                ) from exc
    return ProofCriteria(
        package_sha256=package_sha256(model, model_arn),
        model_name=str(defaults.get("ModelName") or settings.model_name),
        model_version=str(defaults.get("ModelVersion") or ""),
        key_fingerprint=fingerprint,
        min_results=min_results,
        since=since,
    )


__all__ = ["expected_proof", "package_sha256", "stored_recipe"]
