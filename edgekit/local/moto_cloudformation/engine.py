"""Fixes to moto's CloudFormation engine itself (not to one resource type)."""

from __future__ import annotations

import re
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend


def parameters_referenced_by_sub() -> None:
    references = parsing.get_references_from_template
    variable = re.compile(r"\$\{([^}!.]+)\}")

    def get_references_from_template(template: Any) -> list[str]:
        # moto saw only {"Ref": X}; a parameter used as ${X} in Fn::Sub counts too, or an
        # update that changes only that parameter leaves the resource as it was.
        found = references(template)
        if isinstance(template, dict):
            for key, value in template.items():
                if key == "Fn::Sub":
                    text = value[0] if isinstance(value, list) else value
                    if isinstance(text, str):
                        found.extend(variable.findall(text))
                    if isinstance(value, list) and len(value) > 1:
                        found.extend(get_references_from_template(value[1]))
                elif isinstance(value, (dict, list)):
                    found.extend(get_references_from_template(value))
        elif isinstance(template, list):
            for item in template:
                found.extend(get_references_from_template(item))
        return found

    parsing.get_references_from_template = get_references_from_template


def resolve_outputs_after_change_sets() -> None:
    execute = CloudFormationBackend.execute_change_set

    def execute_change_set(
        self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
    ) -> None:
        execute(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        # moto sets stack.template but keeps the template_dict (and so the outputs) of
        # the stack's previous template.
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()

    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
