"""AWS IoT resources: ``AWS::IoT::ThingGroup`` (moto has no handler), ``AWS::IoT::Policy``
(stored as JSON, deleted with its versions) and the names ``Ref`` returns for policies
and role aliases."""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.iot.models import FakePolicy, FakeRoleAlias, FakeThingGroup, iot_backends

from edgekit.local.moto_cloudformation.base import ExtendsMotoModel


class ThingGroupResource(CloudFormationModel):
    """``AWS::IoT::ThingGroup`` through moto's IoT CreateThingGroup/DeleteThingGroup."""

    def __init__(self, group: FakeThingGroup, account_id: str, region_name: str) -> None:
        self.group = group
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ThingGroupName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::ThingGroup"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in {"Arn", "Id"}

    def get_cfn_attribute(self, attribute_name: str) -> Any:

        if attribute_name == "Arn":
            return self.group.arn
        if attribute_name == "Id":
            return self.group.thing_group_id
        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self) -> str:
        return self.group.thing_group_name

    @staticmethod
    def _api_properties(properties: dict[str, Any]) -> dict[str, Any]:
        # CloudFormation spells the API's thingGroupProperties in PascalCase.
        cfn = properties.get("ThingGroupProperties") or {}
        api: dict[str, Any] = {}
        if "ThingGroupDescription" in cfn:
            api["thingGroupDescription"] = cfn["ThingGroupDescription"]
        attributes = (cfn.get("AttributePayload") or {}).get("Attributes")
        if attributes:
            api["attributePayload"] = {"attributes": dict(attributes)}
        return api

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ThingGroupResource:
        properties = cloudformation_json.get("Properties") or {}
        backend = iot_backends[account_id][region_name]
        name = properties.get("ThingGroupName", resource_name)
        backend.create_thing_group(
            name, properties.get("ParentGroupName"), cls._api_properties(properties)
        )
        return cls(backend.describe_thing_group(name), account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: ThingGroupResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ThingGroupResource:
        properties = cloudformation_json.get("Properties") or {}
        backend = iot_backends[account_id][region_name]
        name = properties.get("ThingGroupName", new_resource_name)
        if name != original_resource.group.thing_group_name:  # a new name replaces it
            original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
        backend.update_thing_group(name, cls._api_properties(properties), 0)
        return cls(backend.describe_thing_group(name), account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        iot_backends[account_id][region_name].delete_thing_group(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        iot_backends[account_id][region_name].delete_thing_group(self.group.thing_group_name)

    def is_created(self) -> bool:
        return True


class IoTPolicyResource(ExtendsMotoModel, CloudFormationModel):
    """``AWS::IoT::Policy``: moto's handler stored a template's PolicyDocument (a
    mapping) as Python text; AWS stores JSON, so the document is serialized first."""

    moto_model = FakePolicy
    resource_type = "AWS::IoT::Policy"

    @staticmethod
    def _json_document(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        properties = dict(cloudformation_json.get("Properties") or {})
        document = properties.get("PolicyDocument", {})
        if not isinstance(document, str):
            properties["PolicyDocument"] = json.dumps(document)
        return {**cloudformation_json, "Properties": properties}

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> FakePolicy:
        return FakePolicy.create_from_cloudformation_json(
            resource_name, cls._json_document(cloudformation_json), account_id, region_name
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: FakePolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FakePolicy:
        return FakePolicy.update_from_cloudformation_json(
            original_resource,
            new_resource_name,
            cls._json_document(cloudformation_json),
            account_id,
            region_name,
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        iot_backends[account_id][region_name].get_policy(resource_name).delete(
            account_id, region_name
        )


def name_iot_resources() -> None:
    # CloudFormation's Ref on these types returns the policy name and the alias name.
    if not hasattr(FakePolicy, "physical_resource_id"):
        FakePolicy.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    if not hasattr(FakeRoleAlias, "physical_resource_id"):
        FakeRoleAlias.physical_resource_id = property(  # type: ignore[attr-defined]
            lambda self: self.role_alias
        )

    # Stack deletion calls resource.delete(account, region) when it exists; without it,
    # moto's fallback reads the name from the *unresolved* template (a Fn::Sub dict) and
    # fails. Deleting by the created resource's own name is what AWS does.
    def delete_policy(self: FakePolicy, account_id: str, region_name: str) -> None:
        backend = iot_backends[account_id][region_name]
        # Like CloudFormation on AWS: drop the non-default versions (left by updates) first.
        for version in list(self.versions):
            if not version.is_default:
                backend.delete_policy_version(self.name, version.version_id)
        backend.delete_policy(self.name)

    def delete_role_alias(self: FakeRoleAlias, account_id: str, region_name: str) -> None:
        iot_backends[account_id][region_name].delete_role_alias(self.role_alias)

    if not hasattr(FakePolicy, "delete"):
        FakePolicy.delete = delete_policy  # type: ignore[attr-defined]
    if not hasattr(FakeRoleAlias, "delete"):
        FakeRoleAlias.delete = delete_role_alias  # type: ignore[attr-defined]
