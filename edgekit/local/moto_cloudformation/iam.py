"""IAM resources: ``AWS::IAM::Role`` with ``ManagedPolicyArns`` (AWS managed policies
loaded from moto's bundled copy), and ``AWS::IAM::ManagedPolicy`` detached before it is
deleted."""

from __future__ import annotations

import json
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, ManagedPolicy, Role, iam_backends
from moto.utilities.utils import get_partition

from edgekit.local.moto_cloudformation.base import ExtendsMotoModel


def backend(account_id: str, region_name: str) -> Any:
    return iam_backends[account_id][get_partition(region_name)]


def ensure_aws_managed_policy(account_id: str, region_name: str, arn: str) -> None:
    iam = backend(account_id, region_name)
    prefix = f"arn:{get_partition(region_name)}:iam::aws:policy/"
    if arn in iam.managed_policies or not arn.startswith(prefix):
        return
    name = arn.rsplit("/", 1)[1]
    data = json.loads(aws_managed_policies_data).get(name)
    if data is not None:  # unknown names fail in attach_role_policy, as on AWS
        policy = AWSManagedPolicy.from_data(name, account_id, region_name, data)
        iam.managed_policies[policy.arn] = policy


class RoleResource(ExtendsMotoModel, CloudFormationModel):
    """``AWS::IAM::Role``: moto's handler plus ``ManagedPolicyArns``."""

    moto_model = Role
    resource_type = "AWS::IAM::Role"

    @staticmethod
    def _sync_managed(role: Role, arns: list[str], account_id: str, region_name: str) -> None:
        iam = backend(account_id, region_name)
        previous = getattr(role, "_edgekit_cfn_managed_arns", [])
        for arn in previous:
            if arn not in arns and arn in role.managed_policies:
                iam.detach_role_policy(arn, role.name)
        for arn in arns:
            if arn not in role.managed_policies:
                ensure_aws_managed_policy(account_id, region_name, arn)
                iam.attach_role_policy(arn, role.name)
        role._edgekit_cfn_managed_arns = list(arns)  # type: ignore[attr-defined]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Role:
        role = Role.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        arns = list(cloudformation_json["Properties"].get("ManagedPolicyArns", []))
        cls._sync_managed(role, arns, account_id, region_name)
        return role

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Role,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Role:
        role = Role.update_from_cloudformation_json(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        arns = list(cloudformation_json["Properties"].get("ManagedPolicyArns", []))
        cls._sync_managed(role, arns, account_id, region_name)
        return role

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        iam = backend(account_id, region_name)
        role = iam.get_role(resource_name)
        # Only what this stack attached: anything else attached keeps failing the
        # delete with DeleteConflict, as on AWS.
        for arn in getattr(role, "_edgekit_cfn_managed_arns", []):
            if arn in role.managed_policies:
                iam.detach_role_policy(arn, role.name)
        Role.delete_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name
        )


class ManagedPolicyResource(ExtendsMotoModel, CloudFormationModel):
    """``AWS::IAM::ManagedPolicy``: moto's creation; deletion detaches it from the
    roles, users and groups the resource attached it to, then deletes it."""

    moto_model = ManagedPolicy
    resource_type = "AWS::IAM::ManagedPolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ManagedPolicy:
        policy = ManagedPolicy.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        properties = cloudformation_json.get("Properties") or {}
        policy._edgekit_cfn_attachments = {  # type: ignore[attr-defined]
            "groups": list(properties.get("Groups", [])),
            "users": list(properties.get("Users", [])),
            "roles": list(properties.get("Roles", [])),
        }
        return policy

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: ManagedPolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ManagedPolicy:
        cls.delete_from_cloudformation_json(
            original_resource.arn, cloudformation_json, account_id, region_name
        )
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        iam = backend(account_id, region_name)
        policy = iam.get_policy(resource_name)  # the physical id is the ARN
        attached = getattr(policy, "_edgekit_cfn_attachments", {})
        for group in attached.get("groups", []):
            iam.detach_group_policy(policy.arn, group)
        for user in attached.get("users", []):
            iam.detach_user_policy(policy.arn, user)
        for role in attached.get("roles", []):
            iam.detach_role_policy(policy.arn, role)
        iam.delete_policy(policy.arn)
