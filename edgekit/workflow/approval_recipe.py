"""The model recipe template as States Language: a Pass state's Parameters and its text.

:func:`recipe_states` turns ``component/com.qualityinspection.model/recipe.yaml`` (the
template ``edgekit components publish`` renders) into the ``ModelRecipe`` Pass state of the
deploy-on-approval state machine: every ``@@PLACEHOLDER@@`` string becomes a
``States.Format('{}{}...', ...)`` over the literal text around its placeholders (kept in
the ``RecipeParts`` Pass state's Result, so the intrinsic functions hold no literal text to
escape: recipe variables such as ``{artifacts:path}`` contain braces) and the values the
workflow read from the registry (:data:`VALUE_PATHS`). A placeholder the workflow has no
value for, one in a key or a list item, or ``${`` in the text (CloudFormation's
DefinitionSubstitutions would replace it) is refused, naming the template and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgekit.components.templates import PLACEHOLDER, Template
from edgekit.errors import ConfigurationError

ARTIFACT_URI = "@@ARTIFACT_PREFIX@@/@@PACKAGE_FILE@@"

#: Where each placeholder of the model recipe comes from in the execution's state.
VALUE_PATHS = {
    "MODEL_COMPONENT": "$.config.modelComponent",
    "AGENT_COMPONENT": "$.config.agentComponent",
    "INFERENCE_COMPONENT": "$.config.inferenceComponent",
    "COMPONENT_VERSION": "$.next.version",
    "MODEL_NAME": "$.model.name",
    "MODEL_VERSION": "$.model.semver",
    "PACKAGE_FILE": "$.model.file",
    "PACKAGE_SHA256": "$.model.sha256",
}


class _Recipe:
    """The model template as Parameters, and the literal text they format with."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.parts: dict[str, str] = {}

    def _literal(self, text: str, where: str) -> str:
        if "${" in text:
            raise ConfigurationError(
                f"{self.template.path}: {where}: '${{' in the text would be replaced by the "
                "stack's DefinitionSubstitutions; write it another way"
            )
        key = f"p{len(self.parts)}"
        self.parts[key] = text
        return f"$.recipeParts.{key}"

    def _expression(self, text: str, where: str) -> str | None:
        """A JSONPath or States.Format for ``text``; None when it has no placeholder."""
        if text == ARTIFACT_URI:
            return "$.model.uri"
        pieces = PLACEHOLDER.split(text)
        if len(pieces) == 1:
            return None
        args: list[str] = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                if piece:
                    args.append(self._literal(piece, where))
                continue
            if piece not in VALUE_PATHS:
                artifact = (
                    f" and the artifact URI {ARTIFACT_URI}" if piece == "ARTIFACT_PREFIX" else ""
                )
                raise ConfigurationError(
                    f"{self.template.path}: {where}: placeholder @@{piece}@@ has no value in the "
                    f"deploy-on-approval state machine (it knows {', '.join(sorted(VALUE_PATHS))}"
                    f"{artifact})"
                )
            args.append(VALUE_PATHS[piece])
        if len(args) == 1 and args[0] in VALUE_PATHS.values():
            return args[0]
        return f"States.Format('{'{}' * len(args)}', {', '.join(args)})"

    def _checked(self, text: str, where: str) -> str:
        if "${" in text:
            raise ConfigurationError(
                f"{self.template.path}: {where}: '${{' in the text would be replaced by the "
                "stack's DefinitionSubstitutions; write it another way"
            )
        return text

    def parameters(self, node: Any, where: str = "") -> Any:
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for key, value in node.items():
                path = f"{where}.{key}" if where else str(key)
                if PLACEHOLDER.search(str(key)):
                    raise ConfigurationError(
                        f"{self.template.path}: {path}: a placeholder in a key cannot be "
                        "built by the state machine"
                    )
                expression = self._expression(value, path) if isinstance(value, str) else None
                if expression is not None:
                    out[f"{key}.$"] = expression
                elif isinstance(value, str):
                    out[str(key)] = self._checked(value, path)
                else:
                    out[str(key)] = self.parameters(value, path)
            return out
        if isinstance(node, list):
            return [self.parameters(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and PLACEHOLDER.search(node):  # a list item
            raise ConfigurationError(
                f"{self.template.path}: {where}: a placeholder in a list item cannot be built "
                "by the state machine; put it in a mapping"
            )
        return node


def recipe_states(template: Template) -> tuple[dict[str, str], dict[str, Any]]:
    """(``recipeParts``, the ModelRecipe Pass state's Parameters) for the model template."""
    recipe = _Recipe(template)
    parameters = recipe.parameters(template.document)
    return recipe.parts, parameters


__all__ = ["ARTIFACT_URI", "VALUE_PATHS", "recipe_states"]
