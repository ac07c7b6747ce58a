"""CloudFormation support moto lacks, so the device stack deploys on the local backend.

moto's CloudFormation engine creates resources by calling its own service backends, one
handler class per resource type. For the Greengrass device template, moto 5.2 falls
short in these places, and this module fills each gap the way CloudFormation does on
AWS: by calling the same service APIs (moto's IoT, S3, EC2 and IAM backends), so that
``describe_thing_group``, ``get_bucket_policy``, ``describe_instances``... then show
what the template asked for.

Resource handlers:

- ``AWS::IoT::ThingGroup``, ``AWS::S3::BucketPolicy``: no handler (moto skipped them
  with a warning and a ``GetAtt`` on them failed the stack).
- ``AWS::EC2::Instance``: ``SecurityGroupIds`` and ``MetadataOptions`` were dropped.
- ``AWS::S3::Bucket``: ``VersioningConfiguration``, ``PublicAccessBlockConfiguration``
  and ``OwnershipControls`` were dropped.
- ``AWS::IAM::Role``: ``ManagedPolicyArns`` were dropped; AWS managed policies are
  loaded from moto's bundled copy when moto started without
  ``MOTO_IAM_LOAD_MANAGED_POLICIES``.
- ``AWS::IAM::ManagedPolicy``: never detached nor deleted, so deleting a stack whose
  role had one attached failed with ``DeleteConflict``.
- ``AWS::IoT::Policy``: the document was stored as Python text instead of JSON; deletion
  read the name from the unresolved template; non-default versions blocked deletion.
- ``AWS::IoT::RoleAlias``: ``Ref`` returned a Python repr instead of the alias name.

Engine fixes:

- an update that changes only a parameter used as ``${Name}`` in ``Fn::Sub`` left the
  resources using it unchanged (moto followed only ``Ref``);
- a stack created or updated through a change set kept the outputs of its previous
  template (none, for a new stack).

And one S3 evaluation fix: a bucket policy statement with a ``Condition`` made moto's S3
refuse every object request. moto's S3 supplies no condition keys (it does not model
``aws:SecureTransport``), and on AWS a condition on a key the request lacks does not
match, so such a statement does not apply here. The template's deny-unless-TLS policy
is stored and returned by ``GetBucketPolicy`` unchanged, but not enforced on the local
plain-HTTP endpoint.

Call :func:`install` in the process that runs moto, before its first stack operation.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any, ClassVar

_installed = False
_lock = threading.Lock()


class _ExtendsMotoModel:
    """What a handler that extends moto's own handler for a type takes from it unchanged.

    The name property and the ``GetAtt`` attributes are moto's, and the resource objects
    are moto's too. List it *before* ``CloudFormationModel`` in the bases: moto only looks
    at direct subclasses of ``CloudFormationModel``.
    """

    moto_model: ClassVar[Any]
    resource_type: ClassVar[str]

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.moto_model.cloudformation_name_type()

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.resource_type

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return cls.moto_model.has_cfn_attr(attr)

    def is_created(self) -> bool:
        return True


def install() -> None:
    """Register the handlers with moto's CloudFormation engine (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.cloudformation import parsing

        classes = _define_handlers()
        _name_iot_resources()
        _bucket_policy_conditions()
        _resolve_outputs_after_change_sets()
        _parameters_referenced_by_sub()
        # moto maps a type to the *last* direct CloudFormationModel subclass naming it;
        # ours are defined after moto's, and the cached maps are rebuilt here.
        parsing.get_model_list.cache_clear()
        parsing.get_model_map.cache_clear()
        parsing.get_name_type_map.cache_clear()
        model_map = parsing.get_model_map()
        for cls in classes:
            if model_map.get(cls.cloudformation_type()) is not cls:  # pragma: no cover
                raise RuntimeError(
                    f"moto did not take edgekit's handler for {cls.cloudformation_type()}"
                )
        _installed = True


def _bucket_policy_conditions() -> None:
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult
    from moto.s3.models import FakeBucket

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


def _name_iot_resources() -> None:
    from moto.iot.models import FakePolicy, FakeRoleAlias, iot_backends

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


def _parameters_referenced_by_sub() -> None:
    import re

    from moto.cloudformation import parsing

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


def _resolve_outputs_after_change_sets() -> None:
    from moto.cloudformation.models import CloudFormationBackend

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


def _define_handlers() -> list[type]:
    # Imported here: moto is heavy, and only the process that serves it needs this.
    from moto.core.common_models import CloudFormationModel
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import Instance
    from moto.iot.models import FakePolicy, FakeThingGroup, iot_backends
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

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
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

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
            cls._backend(account_id, region_name).put_bucket_policy(
                bucket, document.encode("utf-8")
            )
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
            from moto.s3.exceptions import MissingBucket

            # moto may delete the bucket first; its policy went with it.
            with contextlib.suppress(MissingBucket):
                cls._backend(account_id, region_name).delete_bucket_policy(bucket)

        def is_created(self) -> bool:
            return True

    class InstanceResource(_ExtendsMotoModel, CloudFormationModel):
        """``AWS::EC2::Instance``: moto's handler, plus SecurityGroupIds and MetadataOptions.

        The resource object stays moto's own ``Instance`` (so Ref, GetAtt, tagging and
        deletion behave as before); only creation passes the two dropped properties on
        to RunInstances.
        """

        moto_model = Instance
        resource_type = "AWS::EC2::Instance"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Instance:
            properties = cloudformation_json["Properties"]
            backend = ec2_backends[account_id][region_name]
            reservation = backend.run_instances(
                image_id=properties["ImageId"],
                user_data=properties.get("UserData"),
                count=1,
                security_group_names=list(properties.get("SecurityGroups", [])),
                security_group_ids=list(properties.get("SecurityGroupIds", [])),
                instance_type=properties.get("InstanceType", "m1.small"),
                is_instance_type_default=not properties.get("InstanceType"),
                subnet_id=properties.get("SubnetId"),
                key_name=properties.get("KeyName"),
                private_ip=properties.get("PrivateIpAddress"),
                block_device_mappings=properties.get("BlockDeviceMappings", {}),
                metadata_options=properties.get("MetadataOptions", {}),
            )
            instance = reservation.instances[0]
            for tag in properties.get("Tags", []):
                instance.add_tag(tag["Key"], tag["Value"])
            if properties.get("IamInstanceProfile"):
                backend.associate_iam_instance_profile(
                    instance_id=instance.id,
                    iam_instance_profile_name=properties["IamInstanceProfile"],
                )
            return instance

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
        ) -> Any:
            # Like moto's handler: instance properties cannot be updated in place here.
            return original_resource

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
        ) -> None:
            backend = ec2_backends[account_id][region_name]
            backend.terminate_instances([resource_name])

    class BucketResource(_ExtendsMotoModel, CloudFormationModel):
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

    class IoTPolicyResource(_ExtendsMotoModel, CloudFormationModel):
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

    iam_handlers = _define_iam_handlers()
    return [
        ThingGroupResource,
        BucketPolicyResource,
        InstanceResource,
        BucketResource,
        IoTPolicyResource,
        *iam_handlers,
    ]


def _define_iam_handlers() -> list[type]:
    from moto.core.common_models import CloudFormationModel
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, ManagedPolicy, Role, iam_backends
    from moto.utilities.utils import get_partition

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

    class RoleResource(_ExtendsMotoModel, CloudFormationModel):
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

    class ManagedPolicyResource(_ExtendsMotoModel, CloudFormationModel):
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

    return [RoleResource, ManagedPolicyResource]


__all__ = ["install"]
