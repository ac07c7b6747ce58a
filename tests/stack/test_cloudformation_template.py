"""The Greengrass device template: cfn-lint clean, and the security properties it promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgekit.stack import DEFAULT_TEMPLATE, load_template

TEMPLATE = DEFAULT_TEMPLATE


def _lint(path: Path) -> list[str]:
    from cfnlint.api import ManualArgs, lint_file

    # Informational checks too: "no errors or warnings" with nothing left out.
    config = ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"])
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in lint_file(path, config)]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)[1]


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    assert _lint(TEMPLATE) == []


@pytest.mark.slow
def test_cfn_lint_check_can_fail(tmp_path: Path) -> None:
    # The same template with a classic mistake (egress rules without a VpcId) must fail,
    # so the clean result above means something.
    text = TEMPLATE.read_text().replace(
        "      VpcId: !If [HasVpc, !Ref VpcId, !Ref AWS::NoValue]\n",
        "      SecurityGroupEgress:\n"
        "        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 0.0.0.0/0 }\n",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    assert any(line.startswith("E3021") for line in _lint(broken))


def test_parameters_and_outputs(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert {"ProjectName", "InstanceType", "ThingName", "ThingGroupName", "LatestAmiId"} <= set(
        params
    )
    assert params["LatestAmiId"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert params["LatestAmiId"]["Default"] == (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    assert {
        "ThingName",
        "ThingGroupArn",
        "ArtifactBucket",
        "InstanceId",
        "RoleAlias",
        "TokenExchangeRoleArn",
    } <= set(template["Outputs"])


def test_bucket_is_private_encrypted_versioned_and_tls_only(resources: dict[str, Any]) -> None:
    bucket = resources["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    policy = resources["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"


def test_token_exchange_role_reads_only_this_bucket(resources: dict[str, Any]) -> None:
    trust = resources["TokenExchangeRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "credentials.iot.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    access = resources["TokenExchangeRoleAccess"]["Properties"]
    s3_statements = [
        s for s in access["PolicyDocument"]["Statement"] if "s3:" in json.dumps(s["Action"])
    ]
    for statement in s3_statements:
        assert "*" not in json.dumps(statement["Action"])
        assert "ArtifactBucket" in json.dumps(statement["Resource"])
    (read,) = [s for s in s3_statements if s["Action"] == "s3:GetObject"]
    assert read["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/*"}


def test_names_match_what_the_greengrass_installer_looks_for(resources: dict[str, Any]) -> None:
    # The installer creates "<tes role name>Access" and "GreengrassTESCertificatePolicy<alias>"
    # unless they exist; the stack owns both names so the installer only attaches them.
    role = resources["TokenExchangeRole"]["Properties"]["RoleName"]["Fn::Sub"]
    access = resources["TokenExchangeRoleAccess"]["Properties"]
    assert access["ManagedPolicyName"]["Fn::Sub"] == role + "Access"
    assert access["Roles"] == [{"Ref": "TokenExchangeRole"}]
    alias = resources["TokenExchangeRoleAlias"]["Properties"]["RoleAlias"]["Fn::Sub"]
    tes_policy = resources["TokenExchangeIoTPolicy"]["Properties"]
    assert tes_policy["PolicyName"]["Fn::Sub"] == "GreengrassTESCertificatePolicy" + alias
    assert tes_policy["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "iot:AssumeRoleWithCertificate",
            "Resource": {"Fn::GetAtt": ["TokenExchangeRoleAlias", "RoleAliasArn"]},
        }
    ]


def test_instance_is_ssm_managed_imdsv2_encrypted_and_closed(resources: dict[str, Any]) -> None:
    instance = resources["GreengrassCoreInstance"]
    props = instance["Properties"]
    assert "KeyName" not in props
    assert props["MetadataOptions"]["HttpTokens"] == "required"
    (root,) = props["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    group = resources["InstanceSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    role = resources["InstanceRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}
    ]
    # Provisioning permissions only, none of them on every IAM or IoT resource.
    (inline,) = role["Policies"]
    for statement in inline["PolicyDocument"]["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not any(a.endswith(":*") for a in actions)
        if statement["Resource"] == "*":
            assert set(actions) <= {
                "iot:CreateKeysAndCertificate",
                "iot:DescribeEndpoint",
                "sts:GetCallerIdentity",
            }


def test_user_data_provisions_into_the_thing_group_and_signals(resources: dict[str, Any]) -> None:
    sub = resources["GreengrassCoreInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    script, variables = sub
    for flag in (
        "--provision true",
        "--thing-name '${ThingName}'",
        "--thing-group-name '${ThingGroupName}'",
        "--thing-policy-name '${GreengrassCoreIoTPolicy}'",
        "--tes-role-name '${TokenExchangeRole}'",
        "--tes-role-alias-name '${TokenExchangeRoleAlias}'",
        "--component-default-user ggc_user:ggc_group",
        "--setup-system-service true",
        "--aws-region '${AWS::Region}'",
    ):
        assert flag in script
    assert "java-17-amazon-corretto" in script
    assert "--resource GreengrassCoreInstance" in script and "systemctl is-active" in script
    assert "NucleusZip" in variables
