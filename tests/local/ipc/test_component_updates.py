"""SubscribeToComponentUpdates / DeferComponentUpdate against the official awsiot V2 client.

The device side (`ComponentUpdates.wait_until_safe` / `post_update`) runs in a thread
as the device's deployment thread does; the component is the SDK on the IPC socket.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2  # noqa: E402
from awsiot.greengrasscoreipc.model import (  # noqa: E402
    ComponentUpdatePolicyEvents,
    InvalidArgumentsError,
    ServiceError,
)

from edgekit.local.ipc.component_updates import (  # noqa: E402
    ComponentUpdates,
    UpdatePolicy,
)
from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"


@pytest.fixture
def host() -> MemoryHost:
    return MemoryHost(thing_name="dev1")


@pytest.fixture
def server(host: MemoryHost, sockdir: Path) -> Iterator[IpcServer]:
    srv = IpcServer(sockdir / "ipc.sock", host).start()
    yield srv
    srv.stop()


@pytest.fixture
def updates(server: IpcServer) -> ComponentUpdates:
    assert server.router is not None
    return server.router.component_updates


@pytest.fixture
def connect(
    server: IpcServer, host: MemoryHost, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], GreengrassCoreIPCClientV2]]:
    clients: list[GreengrassCoreIPCClientV2] = []

    def _connect(component: str) -> GreengrassCoreIPCClientV2:
        monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
        monkeypatch.setenv("SVCUID", host.add_component(component))
        client = GreengrassCoreIPCClientV2()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


def _subscribe(client: GreengrassCoreIPCClientV2) -> queue.Queue[ComponentUpdatePolicyEvents]:
    events: queue.Queue[ComponentUpdatePolicyEvents] = queue.Queue()
    client.subscribe_to_component_updates(on_stream_event=events.put)
    return events


class DeviceWait:
    """``wait_until_safe`` in a thread, as the device's deployment thread calls it."""

    def __init__(self, updates: ComponentUpdates, deployment_id: str, timeout_s: float) -> None:
        self.stopping = threading.Event()
        self.deferrals: list[tuple[str, int, str]] = []
        self.result: bool | None = None
        self.thread = threading.Thread(
            target=self._run, args=(updates, deployment_id, timeout_s), daemon=True
        )
        self.thread.start()

    def _run(self, updates: ComponentUpdates, deployment_id: str, timeout_s: float) -> None:
        self.result = updates.wait_until_safe(
            deployment_id,
            timeout_s,
            self.stopping,
            on_defer=lambda *d: self.deferrals.append(d),
        )

    def join(self) -> bool | None:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result


def test_pre_event_deferral_recheck_and_post_event(
    connect: Callable[[str], GreengrassCoreIPCClientV2], updates: ComponentUpdates
) -> None:
    client = connect("com.example.Busy")
    events = _subscribe(client)
    wait = DeviceWait(updates, "deployment-1", timeout_s=30)

    first = events.get(timeout=10)
    assert first.pre_update_event is not None
    assert first.pre_update_event.deployment_id == "deployment-1"
    assert first.pre_update_event.is_ggc_restarting is False
    client.defer_component_update(
        deployment_id="deployment-1", message="busy", recheck_after_ms=100
    )
    # The device asks again after recheckAfterMs; this time the component lets it go.
    second = events.get(timeout=10)
    assert second.pre_update_event.deployment_id == "deployment-1"
    client.defer_component_update(deployment_id="deployment-1", recheck_after_ms=0)
    assert wait.join() is True
    assert wait.deferrals == [("com.example.Busy", 100, "busy")]

    updates.post_update("deployment-1")
    post = events.get(timeout=10)
    assert post.post_update_event is not None
    assert post.post_update_event.deployment_id == "deployment-1"
    assert post.pre_update_event is None


def test_no_answer_lets_the_update_go_after_the_timeout(
    connect: Callable[[str], GreengrassCoreIPCClientV2], updates: ComponentUpdates
) -> None:
    client = connect("com.example.Silent")
    events = _subscribe(client)
    wait = DeviceWait(updates, "deployment-2", timeout_s=0.3)
    assert events.get(timeout=10).pre_update_event.deployment_id == "deployment-2"
    assert wait.join() is True
    # An answer after the round ended gets the nucleus' error.
    with pytest.raises(ServiceError) as error:
        client.defer_component_update(deployment_id="deployment-2", recheck_after_ms=1000)
    assert "Time limit to respond to PreComponentUpdateEvent" in error.value.message


def test_defer_needs_a_subscription(
    connect: Callable[[str], GreengrassCoreIPCClientV2],
) -> None:
    client = connect("com.example.NotSubscribed")
    with pytest.raises(InvalidArgumentsError) as error:
        client.defer_component_update(deployment_id="d", recheck_after_ms=10)
    assert "not subscribed to component update events" in error.value.message


def test_defer_needs_a_deployment_id(
    connect: Callable[[str], GreengrassCoreIPCClientV2],
) -> None:
    client = connect("com.example.NoId")
    _subscribe(client)
    with pytest.raises(InvalidArgumentsError) as error:
        client.defer_component_update(deployment_id="", recheck_after_ms=10)
    assert "deployment ID" in error.value.message


def test_without_subscribers_the_update_goes_at_once(updates: ComponentUpdates) -> None:
    assert updates.wait_until_safe("deployment-3", 60, threading.Event()) is True


def test_a_stopping_device_ends_the_wait(
    connect: Callable[[str], GreengrassCoreIPCClientV2], updates: ComponentUpdates
) -> None:
    events = _subscribe(connect("com.example.Slow"))
    wait = DeviceWait(updates, "deployment-4", timeout_s=60)
    events.get(timeout=10)
    wait.stopping.set()
    assert wait.join() is False


def test_every_subscriber_must_answer_and_the_longest_deferral_wins(
    connect: Callable[[str], GreengrassCoreIPCClientV2], updates: ComponentUpdates
) -> None:
    a, b = connect("com.example.A"), connect("com.example.B")
    events_a, events_b = _subscribe(a), _subscribe(b)
    wait = DeviceWait(updates, "deployment-5", timeout_s=30)
    events_a.get(timeout=10)
    events_b.get(timeout=10)
    a.defer_component_update(deployment_id="deployment-5", recheck_after_ms=0)
    b.defer_component_update(deployment_id="deployment-5", recheck_after_ms=50, message="b")
    events_a.get(timeout=10)  # asked again
    events_b.get(timeout=10)
    a.defer_component_update(deployment_id="deployment-5", recheck_after_ms=0)
    b.defer_component_update(deployment_id="deployment-5", recheck_after_ms=0)
    assert wait.join() is True
    assert wait.deferrals == [("com.example.B", 50, "b")]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({}, UpdatePolicy("NOTIFY_COMPONENTS", 60)),
        ({"deploymentPolicies": {}}, UpdatePolicy("NOTIFY_COMPONENTS", 60)),
        (
            {"deploymentPolicies": {"componentUpdatePolicy": {"timeoutInSeconds": 5}}},
            UpdatePolicy("NOTIFY_COMPONENTS", 5),
        ),
        (
            {
                "deploymentPolicies": {
                    "componentUpdatePolicy": {
                        "action": "SKIP_NOTIFY_COMPONENTS",
                        "timeoutInSeconds": 120,
                    }
                }
            },
            UpdatePolicy("SKIP_NOTIFY_COMPONENTS", 120),
        ),
        (
            {"deploymentPolicies": {"componentUpdatePolicy": {"timeoutInSeconds": -1}}},
            UpdatePolicy("NOTIFY_COMPONENTS", 60),
        ),
    ],
)
def test_update_policy_of_a_deployment(doc: dict[str, Any], expected: UpdatePolicy) -> None:
    policy = UpdatePolicy.of_deployment(doc)
    assert policy == expected
    assert policy.notify is (expected.action == "NOTIFY_COMPONENTS")
