"""Amazon S3 resources: ``AWS::S3::BucketPolicy`` (moto has no handler), the
``AWS::S3::Bucket`` properties moto dropped, and bucket policies with conditions."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.s3.exceptions import MissingBucket
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition

from edgekit.local.moto_cloudformation.base import ExtendsMotoModel


class BucketPolicyResource(CloudFormationModel):
    """``AWS::S3::BucketPolicy`` through moto's S3 PutBucketPolicy/DeleteBucketPolicy."""

    def __init__(self, name: str, bucket: str, account_id: str, region_name: str) -> None:
        self.name = name
        self.bucket = bucket
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def _backend(account_id: str, region_name: str) -> Any:
        return s3_backends[account_id][get_partition(region_name)]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> BucketPolicyResource:
        properties = cloudformation_json["Properties"]
        bucket = properties["Bucket"]
        document = properties["PolicyDocument"]
        if not isinstance(document, str):
            document = json.dumps(document)
        cls._backend(account_id, region_name).put_bucket_policy(bucket, document.encode("utf-8"))
        return cls(resource_name, bucket, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: BucketPolicyResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> BucketPolicyResource:
        if cloudformation_json["Properties"]["Bucket"] != original_resource.bucket:
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        cls._delete_policy(cloudformation_json["Properties"]["Bucket"], account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self._delete_policy(self.bucket, account_id, region_name)

    @classmethod
    def _delete_policy(cls, bucket: str, account_id: str, region_name: str) -> None:
        # moto may delete the bucket first; its policy went with it.
        with contextlib.suppress(MissingBucket):
            cls._backend(account_id, region_name).delete_bucket_policy(bucket)

    def is_created(self) -> bool:
        return True


class BucketResource(ExtendsMotoModel, CloudFormationModel):
    """``AWS::S3::Bucket``: moto's handler, plus versioning, public access block and
    ownership controls (the resource object stays moto's ``FakeBucket``)."""

    moto_model = FakeBucket
    resource_type = "AWS::S3::Bucket"

    @staticmethod
    def _apply(bucket: FakeBucket, properties: dict[str, Any], region_name: str) -> None:
        backend = s3_backends[bucket.account_id][get_partition(region_name)]
        versioning = (properties.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            backend.put_bucket_versioning(bucket.name, versioning)
        block = properties.get("PublicAccessBlockConfiguration")
        if block:
            backend.put_public_access_block(bucket.name, dict(block))
        rules = (properties.get("OwnershipControls") or {}).get("Rules") or []
        if rules and rules[0].get("ObjectOwnership"):
            backend.put_bucket_ownership_controls(bucket.name, rules[0]["ObjectOwnership"])

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> FakeBucket:
        bucket = FakeBucket.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        cls._apply(bucket, cloudformation_json.get("Properties") or {}, region_name)
        return bucket

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: FakeBucket,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FakeBucket:
        bucket = FakeBucket.update_from_cloudformation_json(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        cls._apply(bucket, cloudformation_json.get("Properties") or {}, region_name)
        return bucket

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        FakeBucket.delete_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name
        )


def bucket_policy_conditions() -> None:
    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        statements = json.loads(self.policy.decode()).get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        permitted = False
        for statement in statements:
            # moto passes no request context to bucket policies; on AWS a condition on
            # an absent key does not match, so the statement does not apply.
            if statement.get("Condition"):
                continue
            result = IAMPolicyStatement(statement).is_action_permitted(action, resource)
            if result == PermissionResult.DENIED:
                return result
            permitted = permitted or result == PermissionResult.PERMITTED
        return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]
