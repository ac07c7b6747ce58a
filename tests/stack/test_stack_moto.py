"""The real device template deployed through edgekit.stack against moto on loopback.

moto runs in this process (ThreadedMotoServer on 127.0.0.1, a free port) with edgekit's
CloudFormation handlers for what moto 5.2 lacks (edgekit.local.moto_cloudformation);
boto3 clients talk to it over HTTP exactly as they would to AWS, with botocore's
parameter validation on.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import boto3
import pytest

from edgekit.stack import (
    StackError,
    delete_stack,
    deploy_stack,
    stack_outputs,
    stack_status,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture(scope="module")
def moto_url(moto_url: str) -> str:
    """conftest's moto server, with edgekit's CloudFormation handlers registered.

    moto runs in this process, so registering them before the first request is enough.
    """
    from edgekit.local.moto_cloudformation import install

    install()
    return moto_url


class Clients:
    def __init__(self, url: str) -> None:
        self.url = url

    def __getattr__(self, service: str) -> Any:
        client = boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert client.meta.config.parameter_validation is True
        setattr(self, service, client)
        return client


@pytest.fixture
def aws(moto_url: str) -> Clients:
    return Clients(moto_url)


def _names() -> tuple[str, dict[str, str]]:
    # moto's state lives for the whole process: unique names keep tests apart.
    suffix = uuid.uuid4().hex[:8]
    return f"ek-{suffix}", {"ThingName": f"core-{suffix}", "ThingGroupName": f"group-{suffix}"}


def test_real_template_deploys_and_is_what_it_claims(aws: Clients) -> None:
    name, params = _names()
    result = deploy_stack(name, parameters=params, client=aws.cloudformation, progress=False)

    assert result.changed and result.status == "CREATE_COMPLETE"
    out = result.outputs
    assert out == stack_outputs(name, client=aws.cloudformation)
    assert out["ThingName"] == params["ThingName"]
    assert out["RoleAlias"] == f"{name}-GreengrassTESAlias"
    assert out["TokenExchangeRoleArn"] == f"arn:aws:iam::123456789012:role/{name}-GreengrassTES"

    # Thing group, role alias and the two IoT policies exist in IoT.
    group = aws.iot.describe_thing_group(thingGroupName=params["ThingGroupName"])
    assert group["thingGroupArn"] == out["ThingGroupArn"]
    alias = aws.iot.describe_role_alias(roleAlias=out["RoleAlias"])["roleAliasDescription"]
    assert alias["roleArn"] == out["TokenExchangeRoleArn"]
    tes_policy = aws.iot.get_policy(policyName=f"GreengrassTESCertificatePolicy{out['RoleAlias']}")
    assert (
        json.loads(tes_policy["policyDocument"])["Statement"][0]["Resource"]
        == (alias["roleAliasArn"])
    )
    core_policy = aws.iot.get_policy(policyName=f"{name}-GreengrassCorePolicy")
    assert f"client/{params['ThingName']}*" in core_policy["policyDocument"]

    # Token exchange role: trusted by the IoT credentials provider, reads this bucket.
    role = aws.iam.get_role(RoleName=f"{name}-GreengrassTES")["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "credentials.iot.amazonaws.com"}
    attached = aws.iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [f"{name}-GreengrassTESAccess"]
    access = aws.iam.get_policy_version(PolicyArn=attached[0]["PolicyArn"], VersionId="v1")[
        "PolicyVersion"
    ]["Document"]
    access = json.loads(access) if isinstance(access, str) else access
    reads = [s for s in access["Statement"] if s["Action"] == "s3:GetObject"]
    assert reads[0]["Resource"] == f"arn:aws:s3:::{out['ArtifactBucket']}/*"

    # The instance: the AMI from the public SSM parameter, IMDSv2 only, encrypted root
    # volume, no key pair, a security group without ingress, the SSM-managed profile.
    (reservation,) = aws.ec2.describe_instances(InstanceIds=[out["InstanceId"]])["Reservations"]
    (instance,) = reservation["Instances"]
    ami = aws.ssm.get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    assert instance["ImageId"] == ami
    assert instance["InstanceType"] == "t3.medium"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert "KeyName" not in instance
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    (volume,) = aws.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["Encrypted"] is True
    (group_ref,) = instance["SecurityGroups"]
    (sg,) = aws.ec2.describe_security_groups(GroupIds=[group_ref["GroupId"]])["SecurityGroups"]
    assert sg["IpPermissions"] == []
    profile_name = instance["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
    (instance_role,) = aws.iam.get_instance_profile(InstanceProfileName=profile_name)[
        "InstanceProfile"
    ]["Roles"]
    managed = aws.iam.list_attached_role_policies(RoleName=instance_role["RoleName"])
    assert [p["PolicyName"] for p in managed["AttachedPolicies"]] == [
        "AmazonSSMManagedInstanceCore"
    ]

    # The artifact bucket: encrypted, versioned, private, TLS-only policy.
    bucket = out["ArtifactBucket"]
    encryption = aws.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert aws.s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = aws.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    policy = json.loads(aws.s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    delete_stack(name, client=aws.cloudformation, s3=aws.s3, iot=aws.iot, progress=False)


def test_update_without_changes_is_a_no_op_and_a_change_applies(aws: Clients) -> None:
    name, params = _names()
    first = deploy_stack(name, parameters=params, client=aws.cloudformation, progress=False)
    again = deploy_stack(name, parameters=params, client=aws.cloudformation, progress=False)
    assert again.changed is False
    assert (again.stack_id, again.status, again.outputs) == (
        first.stack_id,
        "CREATE_COMPLETE",
        first.outputs,
    )
    # No leftover change sets from the no-op.
    assert aws.cloudformation.list_change_sets(StackName=name)["Summaries"] == [] or all(
        s["ExecutionStatus"] != "AVAILABLE"
        for s in aws.cloudformation.list_change_sets(StackName=name)["Summaries"]
    )

    changed = deploy_stack(
        name,
        parameters={**params, "TopicPrefix": "line7"},
        client=aws.cloudformation,
        progress=False,
    )
    assert changed.changed and changed.status == "UPDATE_COMPLETE"
    document = aws.iot.get_policy(policyName=f"{name}-GreengrassCorePolicy")["policyDocument"]
    assert "topic/line7/*" in document and "topic/qualityinspection/*" not in document
    delete_stack(name, client=aws.cloudformation, s3=aws.s3, iot=aws.iot, progress=False)


def test_delete_empties_the_versioned_bucket_and_detaches_policies(aws: Clients) -> None:
    name, params = _names()
    out = deploy_stack(name, parameters=params, client=aws.cloudformation, progress=False).outputs
    bucket = out["ArtifactBucket"]
    for body in (b"v1", b"v2"):
        aws.s3.put_object(Bucket=bucket, Key="components/model.tar.gz", Body=body)
    aws.s3.delete_object(Bucket=bucket, Key="components/model.tar.gz")  # a delete marker
    versions = aws.s3.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
    # What the Greengrass installer does on the device: a certificate with both policies.
    cert = aws.iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    core_policy = f"{name}-GreengrassCorePolicy"
    tes_policy = f"GreengrassTESCertificatePolicy{out['RoleAlias']}"
    for policy in (core_policy, tes_policy):
        aws.iot.attach_policy(policyName=policy, target=cert)

    assert delete_stack(name, client=aws.cloudformation, s3=aws.s3, iot=aws.iot, progress=False)

    assert stack_status(name, client=aws.cloudformation) is None
    assert name not in [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
    policies = {p["policyName"] for p in aws.iot.list_policies()["policies"]}
    assert core_policy not in policies and tes_policy not in policies
    assert aws.iot.list_attached_policies(target=cert)["policies"] == []
    groups = {g["groupName"] for g in aws.iot.list_thing_groups()["thingGroups"]}
    assert params["ThingGroupName"] not in groups
    (reservation,) = aws.ec2.describe_instances(InstanceIds=[out["InstanceId"]])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "terminated"
    # Deleting again is a no-op.
    assert not delete_stack(name, client=aws.cloudformation, s3=aws.s3, iot=aws.iot)


def test_a_failing_stack_raises_with_the_reason(aws: Clients, tmp_path: Any) -> None:
    name, _ = _names()
    template = tmp_path / "failing.yaml"
    template.write_text(
        "Resources:\n"
        "  Policy:\n"
        "    Type: AWS::S3::BucketPolicy\n"
        "    Properties:\n"
        f"      Bucket: no-such-bucket-{name}\n"
        "      PolicyDocument:\n"
        "        Version: '2012-10-17'\n"
        "        Statement:\n"
        "          - {Effect: Deny, Principal: '*', Action: 's3:*', Resource: '*'}\n"
    )
    with pytest.raises(StackError) as info:
        deploy_stack(name, template, {}, client=aws.cloudformation, progress=False)
    assert "The specified bucket does not exist" in str(info.value)
    assert name in str(info.value)


def test_a_stack_left_in_rollback_complete_is_replaced(
    aws: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    name, params = _names()
    first = deploy_stack(name, parameters=params, client=aws.cloudformation, progress=False)
    # moto never rolls a stack back; put it in the state a failed create leaves on AWS.
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends["123456789012"][REGION]
    backend.stacks[first.stack_id].status = "ROLLBACK_COMPLETE"
    assert stack_status(name, client=aws.cloudformation) == "ROLLBACK_COMPLETE"

    with caplog.at_level(logging.WARNING, logger="edgekit.stack"):
        second = deploy_stack(
            name,
            parameters=params,
            client=aws.cloudformation,
            s3=aws.s3,
            iot=aws.iot,
            progress=False,
        )
    assert "ROLLBACK_COMPLETE" in caplog.text and "deleting it" in caplog.text
    assert second.status == "CREATE_COMPLETE" and second.stack_id != first.stack_id
    delete_stack(name, client=aws.cloudformation, s3=aws.s3, iot=aws.iot, progress=False)


def test_cli_deploy_outputs_delete(
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    from edgekit.cli import main

    # The aws backend's normal credential chain and endpoint variables, pointed at moto.
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("EDGEKIT_REGION", REGION)
    name, params = _names()
    argv = ["stack", "deploy", "--name", name, "--json"]
    for key, value in params.items():
        argv += ["--param", f"{key}={value}"]
    assert main(argv) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["ThingGroupName"] == params["ThingGroupName"]

    assert main(["stack", "outputs", "--name", name]) == 0
    assert deployed["ArtifactBucket"] in capsys.readouterr().out
    assert main(["stack", "deploy", "--name", name, "--param", "Bogus=1"]) == 1
    assert "unknown parameter(s) Bogus" in capsys.readouterr().err
    assert main(["stack", "delete", "--name", name]) == 0
    assert "deleted" in capsys.readouterr().out
    assert main(["stack", "status", "--name", name]) == 1
