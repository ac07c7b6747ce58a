"""Amazon EC2 resources: ``AWS::EC2::Instance`` with the properties moto dropped."""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance

from edgekit.local.moto_cloudformation.base import ExtendsMotoModel


class InstanceResource(ExtendsMotoModel, CloudFormationModel):
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
