"""SubscribeToComponentUpdates and DeferComponentUpdate: the nucleus' component update policy.

Before a deployment stops, restarts or updates components, and when its
``componentUpdatePolicy.action`` is ``NOTIFY_COMPONENTS`` (the default), the
device calls `ComponentUpdates.wait_until_safe` (from its deployment thread).
As the nucleus' UpdateSystemPolicyService does, it then repeats rounds:

1. send a ``PreComponentUpdateEvent`` (``deploymentId``, ``isGgcRestarting``) to
   every SubscribeToComponentUpdates stream;
2. wait up to ``timeoutInSeconds`` for each subscribed component to answer with
   DeferComponentUpdate (``recheckAfterMs`` 0 means "go ahead"); components that do
   not answer in time are not waited for;
3. if any answer deferred (largest ``recheckAfterMs`` > 0), sleep that long and
   start another round; otherwise the update goes ahead.

So the timeout bounds each round, not the deferrals: a component may keep
deferring, as on the nucleus. After the update (successful or not) the device
calls `post_update`, which sends ``PostComponentUpdateEvent`` (``deploymentId``) to
every subscriber. ``SKIP_NOTIFY_COMPONENTS`` skips all of this (no events).

DeferComponentUpdate from a component with no subscription is an
InvalidArgumentsError; one that comes when no answer is awaited (the round's
timeout passed, or there is no deployment) is the nucleus' ServiceError "Time
limit to respond to PreComponentUpdateEvent exceeded".

Threading: `subscribe` and `defer` run on the IPC server's event loop;
`wait_until_safe` and `post_update` on any other thread (events are handed to the
loop with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.local.ipc.modeled_errors import InvalidArgumentsError, ServiceError
from edgekit.local.ipc.rpc import Stream

log = logging.getLogger(__name__)

NS = "aws.greengrass#"
EVENT_SHAPE = NS + "ComponentUpdatePolicyEvents"
NOTIFY_COMPONENTS = "NOTIFY_COMPONENTS"
SKIP_NOTIFY_COMPONENTS = "SKIP_NOTIFY_COMPONENTS"
DEFAULT_TIMEOUT_S = 60


@dataclass(frozen=True)
class UpdatePolicy:
    """A deployment's ``deploymentPolicies.componentUpdatePolicy``, defaults as AWS documents."""

    action: str = NOTIFY_COMPONENTS
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def notify(self) -> bool:
        return self.action == NOTIFY_COMPONENTS

    @classmethod
    def of_deployment(cls, doc: dict[str, Any]) -> UpdatePolicy:
        """The policy of a deployment document (missing fields take AWS's defaults)."""
        policies = doc.get("deploymentPolicies") or {}
        policy = policies.get("componentUpdatePolicy") or {}
        action = str(policy.get("action") or NOTIFY_COMPONENTS).upper()
        if action not in (NOTIFY_COMPONENTS, SKIP_NOTIFY_COMPONENTS):
            action = NOTIFY_COMPONENTS
        timeout = policy.get("timeoutInSeconds")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            timeout = DEFAULT_TIMEOUT_S
        return cls(action, float(timeout))


@dataclass
class _Answer:
    """One subscribed component's awaited answer to a PreComponentUpdateEvent."""

    deployment_id: str
    recheck_ms: int | None = None  # None until the component answers
    message: str = ""


class ComponentUpdates:
    """The subscribers of one IPC server and the deferrals of the deployment in progress."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._cond = threading.Condition()
        self._streams: dict[int, tuple[str, Stream]] = {}
        self._awaited: dict[str, _Answer] = {}  # component -> answer of the current round

    # ------------------------------------------------------------ loop thread (IPC handlers)
    def subscribe(self, component: str, stream: Stream) -> Callable[[], None]:
        """Register a SubscribeToComponentUpdates stream; returns its remover."""
        key = id(stream)
        with self._cond:
            self._streams[key] = (component, stream)

        def remove() -> None:
            with self._cond:
                self._streams.pop(key, None)

        return remove

    def subscribed(self, component: str) -> bool:
        with self._cond:
            return any(c == component for c, _ in self._streams.values())

    def defer(
        self, component: str, deployment_id: object, recheck_after_ms: object, message: object
    ) -> None:
        """DeferComponentUpdate from ``component`` (validated as the nucleus does)."""
        if not self.subscribed(component):
            raise InvalidArgumentsError("Component is not subscribed to component update events")
        if not isinstance(deployment_id, str) or not deployment_id:
            raise InvalidArgumentsError(
                "Cannot defer the update, the deployment ID provided was null"
            )
        if recheck_after_ms is None:
            recheck = 0
        elif isinstance(recheck_after_ms, bool) or not isinstance(recheck_after_ms, int):
            raise InvalidArgumentsError(
                f"recheckAfterMs must be a whole number of milliseconds, not {recheck_after_ms!r}"
            )
        else:
            recheck = max(0, recheck_after_ms)
        with self._cond:
            answer = self._awaited.get(component)
            if (
                answer is None
                or answer.deployment_id != deployment_id
                or answer.recheck_ms is not None
            ):
                raise ServiceError("Time limit to respond to PreComponentUpdateEvent exceeded")
            answer.recheck_ms = recheck
            answer.message = message if isinstance(message, str) else ""
            self._cond.notify_all()

    # ------------------------------------------------------------ device thread
    def _send(self, event: dict[str, Any], streams: list[tuple[str, Stream]]) -> None:
        def send() -> None:
            for component, stream in streams:
                if not stream.closed:
                    stream.send_event(EVENT_SHAPE, event)
                    log.debug("sent %s to %s", list(event), component)

        with contextlib.suppress(RuntimeError):  # the server is stopping
            self.loop.call_soon_threadsafe(send)

    def wait_until_safe(
        self,
        deployment_id: str,
        timeout_s: float,
        stopping: threading.Event,
        *,
        ggc_restarting: bool = False,
        on_defer: Callable[[str, int, str], None] | None = None,
    ) -> bool:
        """Notify subscribers and wait while they defer; False if ``stopping`` was set.

        ``on_defer(component, recheck_after_ms, message)`` is called for every deferral
        (the device logs it).
        """
        while not stopping.is_set():
            with self._cond:
                streams = list(self._streams.values())
                self._awaited = {c: _Answer(deployment_id) for c, _ in streams}
            if not streams:
                return True
            self._send(
                {
                    "preUpdateEvent": {
                        "deploymentId": deployment_id,
                        "isGgcRestarting": ggc_restarting,
                    }
                },
                streams,
            )
            deadline = time.monotonic() + timeout_s
            with self._cond:
                while not stopping.is_set():
                    if all(a.recheck_ms is not None for a in self._awaited.values()):
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.2))
                answers = dict(self._awaited)
                self._awaited = {}  # late answers get the nucleus' ServiceError
            recheck = 0
            for component, answer in answers.items():
                if answer.recheck_ms:
                    if on_defer is not None:
                        on_defer(component, answer.recheck_ms, answer.message)
                    recheck = max(recheck, answer.recheck_ms)
            if recheck <= 0:
                return not stopping.is_set()
            if stopping.wait(recheck / 1000.0):
                return False
        return False

    def post_update(self, deployment_id: str) -> None:
        """Send PostComponentUpdateEvent to every subscriber (any thread)."""
        with self._cond:
            streams = list(self._streams.values())
        if streams:
            self._send({"postUpdateEvent": {"deploymentId": deployment_id}}, streams)
