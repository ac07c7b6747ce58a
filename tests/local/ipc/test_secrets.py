"""GetSecretValue (aws.greengrass.SecretManager) against the official awsiot V2 client.

Secrets live in moto's Secrets Manager (boto3); the device side is `SecretManager`
on an in-memory host, so the IPC answers, authorization and errors are checked
without a device runtime (tests/greengrass_compat/test_secret_manager.py has the
end-to-end run).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import boto3  # noqa: E402
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2  # noqa: E402
from awsiot.greengrasscoreipc.model import (  # noqa: E402
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)

from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.secrets import (  # noqa: E402
    SECRET_MANAGER,
    SecretManager,
    SecretManagerConfig,
    SecretSyncError,
)
from edgekit.local.ipc.server import IpcServer  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
OP = "aws.greengrass#GetSecretValue"


def _policy(*resources: str, operations: tuple[str, ...] = (OP,)) -> dict[str, Any]:
    return {
        SECRET_MANAGER: {
            "com.example.App:secrets:1": {
                "policyDescription": "read the app's secrets",
                "operations": list(operations),
                "resources": list(resources),
            }
        }
    }


@pytest.fixture(scope="module")
def sm(moto_url: str) -> Any:
    kw = {"region_name": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    return boto3.client("secretsmanager", endpoint_url=moto_url, **kw)


@pytest.fixture
def secret(sm: Any) -> dict[str, Any]:
    """A string secret with an AWSCURRENT version and a labelled older one."""
    name = f"app-password-{uuid.uuid4().hex[:6]}"
    created = sm.create_secret(Name=name, SecretString="first")
    sm.put_secret_value(SecretId=name, SecretString="second")  # first becomes AWSPREVIOUS
    return {"name": name, "arn": created["ARN"], "first_version": created["VersionId"]}


@pytest.fixture
def stopping() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def manager(tmp_path: Path, sm: Any, stopping: threading.Event) -> Callable[..., SecretManager]:
    def make(configuration: dict[str, Any] | None = None, **kwargs: Any) -> SecretManager:
        m = SecretManager(tmp_path / "secrets" / "cache.json", lambda: sm, stopping)
        if configuration is not None:
            m.configure(configuration, **kwargs)
        return m

    return make


@pytest.fixture
def host() -> MemoryHost:
    return MemoryHost(thing_name="dev1")


@pytest.fixture
def connect(
    host: MemoryHost, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., GreengrassCoreIPCClientV2]]:
    server = IpcServer(sockdir / "ipc.sock", host).start()
    clients: list[GreengrassCoreIPCClientV2] = []

    def _connect(component: str, access: dict[str, Any] | None) -> GreengrassCoreIPCClientV2:
        monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
        monkeypatch.setenv("SVCUID", host.add_component(component, access_control=access))
        client = GreengrassCoreIPCClientV2()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()
    server.stop()


def test_secret_by_arn_or_name_with_the_sdk_shape(
    secret: dict[str, Any], manager: Callable[..., SecretManager], host: MemoryHost, connect: Any
) -> None:
    host.secrets = manager({"cloudSecrets": [{"arn": secret["arn"]}]})
    client = connect("com.example.App", _policy(secret["arn"]))
    for secret_id in (secret["arn"], secret["name"]):
        response = client.get_secret_value(secret_id=secret_id)
        assert response.secret_id == secret["arn"]
        assert response.secret_value.secret_string == "second"
        assert response.version_stage == ["AWSCURRENT"]
        assert response.version_id


def test_version_stage_and_version_id_of_configured_labels(
    secret: dict[str, Any], manager: Callable[..., SecretManager], host: MemoryHost, connect: Any
) -> None:
    host.secrets = manager({"cloudSecrets": [{"arn": secret["arn"], "labels": ["AWSPREVIOUS"]}]})
    client = connect("com.example.App", _policy("*"))
    previous = client.get_secret_value(secret_id=secret["name"], version_stage="AWSPREVIOUS")
    assert previous.secret_value.secret_string == "first"
    assert previous.version_id == secret["first_version"]
    by_id = client.get_secret_value(secret_id=secret["arn"], version_id=secret["first_version"])
    assert by_id.secret_value.secret_string == "first"
    with pytest.raises(ResourceNotFoundError):
        client.get_secret_value(secret_id=secret["arn"], version_stage="NOT-DEPLOYED")


def test_binary_secret(
    sm: Any, manager: Callable[..., SecretManager], host: MemoryHost, connect: Any
) -> None:
    created = sm.create_secret(Name=f"key-{uuid.uuid4().hex[:6]}", SecretBinary=b"\x00\x01key")
    host.secrets = manager({"cloudSecrets": [{"arn": created["ARN"]}]})
    client = connect("com.example.App", _policy(created["ARN"]))
    response = client.get_secret_value(secret_id=created["ARN"])
    assert response.secret_value.secret_binary == b"\x00\x01key"
    assert response.secret_value.secret_string is None


def test_only_secrets_of_cloud_secrets_are_known(
    secret: dict[str, Any],
    sm: Any,
    manager: Callable[..., SecretManager],
    host: MemoryHost,
    connect: Any,
) -> None:
    other = sm.create_secret(Name=f"other-{uuid.uuid4().hex[:6]}", SecretString="x")
    host.secrets = manager({"cloudSecrets": [{"arn": secret["arn"]}]})
    client = connect("com.example.App", _policy("*"))
    with pytest.raises(ResourceNotFoundError) as error:
        client.get_secret_value(secret_id=other["ARN"])
    assert error.value.resource_type == "secret"
    assert "cloudSecrets" in error.value.message


def test_authorization_names_component_operation_and_resource(
    secret: dict[str, Any], manager: Callable[..., SecretManager], host: MemoryHost, connect: Any
) -> None:
    host.secrets = manager({"cloudSecrets": [{"arn": secret["arn"]}]})
    nobody = connect("com.example.NoPolicy", None)
    with pytest.raises(UnauthorizedError) as error:
        nobody.get_secret_value(secret_id=secret["name"])
    message = error.value.message
    assert "com.example.NoPolicy" in message
    assert OP in message and secret["arn"] in message
    wrong_op = connect("com.example.WrongOp", _policy("*", operations=("aws.greengrass#Other",)))
    with pytest.raises(UnauthorizedError):
        wrong_op.get_secret_value(secret_id=secret["arn"])
    other_secret = connect("com.example.Other", _policy(secret["arn"] + "-not-this"))
    with pytest.raises(UnauthorizedError):
        other_secret.get_secret_value(secret_id=secret["arn"])
    star_op = connect("com.example.StarOp", _policy(secret["arn"], operations=("*",)))
    assert star_op.get_secret_value(secret_id=secret["arn"]).secret_value.secret_string


def test_without_the_secret_manager_the_answer_says_to_deploy_it(
    host: MemoryHost, connect: Any
) -> None:
    client = connect("com.example.App", _policy("*"))
    with pytest.raises(ServiceError) as error:
        client.get_secret_value(secret_id="anything")
    assert SECRET_MANAGER in error.value.message


def test_a_secret_that_cannot_be_read_names_the_arn_and_the_fix(
    manager: Callable[..., SecretManager],
) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-abcdef"
    m = manager()
    with pytest.raises(SecretSyncError) as error:
        m.configure({"cloudSecrets": [{"arn": arn}]})
    assert arn in str(error.value) and "create_secret" in str(error.value)
    assert not m.active  # nothing half-applied


def test_a_restarted_device_answers_from_its_disk_cache(
    secret: dict[str, Any], tmp_path: Path, manager: Callable[..., SecretManager]
) -> None:
    config = {"cloudSecrets": [{"arn": secret["arn"]}]}
    manager(config)
    cache = tmp_path / "secrets" / "cache.json"
    assert cache.stat().st_mode & 0o777 == 0o600

    def offline() -> Any:
        raise AssertionError("the cache must answer without Secrets Manager")

    restarted = SecretManager(cache, offline, threading.Event())
    restarted.configure(config, offline=True)
    arn = restarted.arn_of(secret["name"])
    assert arn == secret["arn"]
    assert restarted.lookup(arn)["secretValue"] == {"secretString": "second"}
    restarted.configure(None)  # the component left the device: its secrets go too
    assert not cache.exists() and not restarted.active


def test_refresh_reads_the_new_value(
    secret: dict[str, Any], sm: Any, manager: Callable[..., SecretManager]
) -> None:
    m = manager({"cloudSecrets": [{"arn": secret["arn"]}]})
    sm.put_secret_value(SecretId=secret["arn"], SecretString="third")
    assert m.lookup(secret["arn"])["secretValue"] == {"secretString": "second"}  # cached
    assert m.lookup(secret["arn"], refresh=True)["secretValue"] == {"secretString": "third"}
    sm.put_secret_value(SecretId=secret["arn"], SecretString="fourth")
    m.refresh()  # what periodicRefreshIntervalMin runs
    assert m.lookup(secret["arn"])["secretValue"] == {"secretString": "fourth"}


@pytest.mark.parametrize(
    ("configuration", "problem"),
    [
        ({"cloudSecrets": "arn:aws:secretsmanager:x"}, "must be a list"),
        ({"cloudSecrets": [{"labels": []}]}, "cloudSecrets[0] in the configuration"),
        ({"cloudSecrets": [{"arn": "a", "labels": "L"}]}, "labels"),
        ({"periodicRefreshIntervalMin": "soon"}, "periodicRefreshIntervalMin"),
    ],
)
def test_malformed_configuration(configuration: dict[str, Any], problem: str) -> None:
    with pytest.raises(SecretSyncError) as error:
        SecretManagerConfig.parse(configuration)
    assert problem in str(error.value)


def test_configuration_defaults() -> None:
    config = SecretManagerConfig.parse({"cloudSecrets": [{"arn": "a"}]})
    assert config.refresh_minutes == 0 and config.secrets[0].labels == ()
    assert SecretManagerConfig.parse({"periodicRefreshIntervalMin": 60}).refresh_minutes == 60


def test_periodic_refresh_reads_new_values(
    secret: dict[str, Any], sm: Any, manager: Callable[..., SecretManager]
) -> None:
    # periodicRefreshIntervalMin is in minutes; 0.002 min is 0.12 s.
    m = manager({"cloudSecrets": [{"arn": secret["arn"]}], "periodicRefreshIntervalMin": 0.002})
    sm.put_secret_value(SecretId=secret["arn"], SecretString="rotated")
    deadline = time.monotonic() + 20
    while m.lookup(secret["arn"])["secretValue"] != {"secretString": "rotated"}:
        assert time.monotonic() < deadline, "the refresh thread never read the new value"
        time.sleep(0.05)
    m.configure(None)  # stops the refresh thread


def test_a_partial_arn_in_cloud_secrets_and_in_the_policy(
    secret: dict[str, Any], manager: Callable[..., SecretManager], host: MemoryHost, connect: Any
) -> None:
    partial = secret["arn"].rsplit("-", 1)[0]  # without Secrets Manager's random suffix
    host.secrets = manager({"cloudSecrets": [{"arn": partial}]})
    client = connect("com.example.App", _policy(partial))
    for secret_id in (partial, secret["arn"], secret["name"]):
        response = client.get_secret_value(secret_id=secret_id)
        assert response.secret_id == secret["arn"]
        assert response.secret_value.secret_string == "second"
