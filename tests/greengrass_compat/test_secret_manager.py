"""aws.greengrass.SecretManager and IPC GetSecretValue on a real local device, plain boto3.

``components/com.example.PrintSecret`` was written from the AWS documentation only: it
depends on ``aws.greengrass.SecretManager`` and prints secrets it gets with
``GreengrassCoreIPCClientV2.get_secret_value``. The secrets are created in (emulated) AWS
Secrets Manager with boto3; the deployment gives the secret manager its ``cloudSecrets``
and the component its authorization policy, as the developer guide's tutorial does.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

PYTHON = {"python3": sys.executable}  # the recipe's python3: this test's interpreter
SECRET_MANAGER = "aws.greengrass.SecretManager"
COMPONENT = "com.example.PrintSecret"


@pytest.fixture(scope="module")
def secretsmanager(gg_local: Any) -> Any:
    kw = {"region_name": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    return boto3.client("secretsmanager", endpoint_url=gg_local.moto_url, **kw)


@pytest.fixture(scope="module")
def device(gg_local: Any) -> Any:
    gg_local.publish(COMPONENT, replace=PYTHON)
    return gg_local.start_device()


def _secret(secretsmanager: Any, value: str) -> dict[str, str]:
    name = f"compat-{uuid.uuid4().hex[:8]}"
    created = secretsmanager.create_secret(Name=name, SecretString=value)
    return {"name": name, "arn": created["ARN"]}


def _components(cloud_secrets: list[str], secret_id: str, other_id: str, allowed: str) -> Any:
    return {
        SECRET_MANAGER: {
            "componentVersion": "2.2.9",
            "configurationUpdate": {
                "merge": json.dumps({"cloudSecrets": [{"arn": arn} for arn in cloud_secrets]})
            },
        },
        COMPONENT: {
            "componentVersion": "1.0.0",
            "configurationUpdate": {
                "merge": json.dumps(
                    {
                        "SecretId": secret_id,
                        "OtherSecretId": other_id,
                        "accessControl": {
                            SECRET_MANAGER: {
                                f"{COMPONENT}:secrets:1": {
                                    "policyDescription": "Allows access to one secret.",
                                    "operations": ["aws.greengrass#GetSecretValue"],
                                    "resources": [allowed],
                                }
                            }
                        },
                    }
                )
            },
        },
    }


def test_component_gets_its_secret_and_only_that(
    gg_local: Any,
    device: Any,
    secretsmanager: Any,
    deploy_and_wait: Callable[..., dict[str, Any]],
) -> None:
    mine = _secret(secretsmanager, "hunter2")
    other = _secret(secretsmanager, "not-for-you")
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        _components([mine["arn"], other["arn"]], mine["name"], other["arn"], mine["arn"]),
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    log = gg_local.component_log(device, COMPONENT, contains="done")
    assert f"secret {mine['name']}: hunter2" in log
    assert f"secret {mine['name']} version stages: ['AWSCURRENT']" in log
    # The other secret is on the device, but the policy does not name it.
    unauthorized = next(line for line in log.splitlines() if f"secret {other['arn']}:" in line)
    assert "UnauthorizedError" in unauthorized
    assert COMPONENT in unauthorized and "GetSecretValue" in unauthorized
    assert other["arn"] in unauthorized and "not-for-you" not in log
    # A secret the secret manager was not given is not found.
    assert "secret a-secret-nobody-configured: ResourceNotFoundError" in log
    # The device keeps the secrets in its own storage, readable by the device only.
    cache = device.layout.root / "secrets" / "cache.json"
    assert cache.stat().st_mode & 0o777 == 0o600


def test_a_secret_the_device_cannot_read_fails_the_deployment(
    gg_local: Any,
    device: Any,
    secretsmanager: Any,
    deploy_and_wait: Callable[..., dict[str, Any]],
) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:compat-missing-abcdef"
    mine = _secret(secretsmanager, "s3cret")
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        _components([mine["arn"], missing], mine["name"], "", "*"),
    )
    assert row["coreDeviceExecutionStatus"] == "FAILED", row
    reason = row.get("reason", "")
    assert missing in reason and "create_secret" in reason, reason


def test_a_restarted_device_answers_from_its_cache_without_secrets_manager(
    gg_local: Any, secretsmanager: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    device = gg_local.start_device()
    mine = _secret(secretsmanager, "kept-on-the-device")
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        _components([mine["arn"]], mine["name"], "", mine["arn"]),
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    gg_local.component_log(device, COMPONENT, contains="done")
    device.stop()
    # The secret is gone from Secrets Manager; the device still has its copy.
    secretsmanager.delete_secret(SecretId=mine["arn"], ForceDeleteWithoutRecovery=True)
    log = device.layout.component_log(COMPONENT)
    log.write_text("")
    restarted = gg_local.start_device(device.thing_name)  # runs PrintSecret again
    text = gg_local.component_log(restarted, COMPONENT, contains="done")
    assert f"secret {mine['name']}: kept-on-the-device" in text
