"""The Greengrass IPC operations this local device answers, and their checks.

Implemented (names, shapes and errors as in the nucleus and awsiot's model.py):
PublishToTopic, SubscribeToTopic, PublishToIoTCore, SubscribeToIoTCore,
GetConfiguration, UpdateConfiguration, SubscribeToConfigurationUpdate,
UpdateState, GetComponentDetails, GetSecretValue (``aws.greengrass.SecretManager``,
see `secrets`), SubscribeToComponentUpdates and DeferComponentUpdate (the
deployment's component update policy, see `component_updates`). Every other
operation is answered at once with a ServiceError that names it.

Authorization: pub/sub and IoT Core operations need a policy in the calling
component's ``accessControl`` (see `authorization`). Configuration operations
need none: a component updates only its own configuration, and may read or
watch any component's (``componentName``), as on the nucleus.
GetComponentDetails needs an ``aws.greengrass.Cli`` policy whose resources cover
the component name, as on a device with the Greengrass CLI component.
GetSecretValue needs an ``aws.greengrass.SecretManager`` policy allowing
``aws.greengrass#GetSecretValue`` on the secret's ARN (or ``*``); the secret must
be one of the secret manager's ``cloudSecrets`` (else ResourceNotFoundError,
checked before authorization, as the secret manager does). The component
update operations need none, as on the nucleus.

PublishToIoTCore refuses a payload over AWS IoT Core's 128 KiB message size limit
with the nucleus' ServiceError before anything is queued for the broker.

Threading: everything runs on the IPC server's event loop; host calls that may
do I/O (configuration, state, details, secrets) run on the server's thread pool.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from edgekit.local.ipc import authorization, secrets, topics
from edgekit.local.ipc.component_updates import ComponentUpdates
from edgekit.local.ipc.host import IpcHost
from edgekit.local.ipc.local_pubsub import LocalPubSub, resolve_receive_mode
from edgekit.local.ipc.modeled_errors import (
    FailedUpdateConditionCheckError,
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)
from edgekit.local.ipc.mqtt_bridge import MqttBridge, MqttBridgeError
from edgekit.local.ipc.rpc import Response, Stream

log = logging.getLogger(__name__)

NS = "aws.greengrass#"
PUBLISH_TO_TOPIC = NS + "PublishToTopic"
SUBSCRIBE_TO_TOPIC = NS + "SubscribeToTopic"
PUBLISH_TO_IOT_CORE = NS + "PublishToIoTCore"
SUBSCRIBE_TO_IOT_CORE = NS + "SubscribeToIoTCore"
GET_CONFIGURATION = NS + "GetConfiguration"
UPDATE_CONFIGURATION = NS + "UpdateConfiguration"
SUBSCRIBE_TO_CONFIGURATION_UPDATE = NS + "SubscribeToConfigurationUpdate"
UPDATE_STATE = NS + "UpdateState"
GET_COMPONENT_DETAILS = NS + "GetComponentDetails"
GET_SECRET_VALUE = NS + "GetSecretValue"
SUBSCRIBE_TO_COMPONENT_UPDATES = NS + "SubscribeToComponentUpdates"
DEFER_COMPONENT_UPDATE = NS + "DeferComponentUpdate"

QOS_VALUES = {"0": 0, "1": 1}
REPORTABLE_STATES = ("RUNNING", "ERRORED")
RESTRICTED_CONFIG_KEYS = ("accessControl",)
SUBSCRIBE_TIMEOUT = 10.0
# AWS IoT Core's message size limit; the nucleus checks PublishToIoTCore payloads against it
# (mqtt.maxMessageSizeInBytes, default 128 KiB) before spooling.
IOT_CORE_MAX_PAYLOAD_BYTES = 128 * 1024

Handler = Callable[[Stream, dict[str, Any]], "Response | Awaitable[Response]"]


def _key_path(value: object, field: str = "keyPath") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise InvalidArgumentsError(f"{field} must be a list of strings, not {value!r}")
    return list(value)


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgumentsError(f"{field} is required (base64-encoded bytes)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentsError(f"{field} is not valid base64: {exc}") from exc


def _qos(value: object, field: str = "qos") -> int:
    if value is None:
        raise InvalidArgumentsError(
            f"{field} is required: '0' (AT_MOST_ONCE) or '1' (AT_LEAST_ONCE)"
        )
    if value not in QOS_VALUES:
        raise InvalidArgumentsError(
            f"{field} {value!r} is not supported: use '0' (AT_MOST_ONCE) or '1' (AT_LEAST_ONCE)"
        )
    return QOS_VALUES[str(value)]


class OperationRouter:
    """Authenticates connections and runs the operations of `RpcConnection` streams."""

    def __init__(
        self,
        host: IpcHost,
        loop: asyncio.AbstractEventLoop,
        executor: Executor,
        bridge: MqttBridge | None,
    ) -> None:
        self.host = host
        self.loop = loop
        self.executor = executor
        self.bridge = bridge
        # One thread for PublishToIoTCore, so messages enter the spool in arrival order.
        self._publisher = ThreadPoolExecutor(1, thread_name_prefix="edgekit-ipc-publish")
        self.pubsub = LocalPubSub()
        self._config_watchers: dict[int, tuple[str, list[str], Stream]] = {}
        #: Subscribers and deferrals of the component update policy (the device drives it).
        self.component_updates = ComponentUpdates(loop)
        self._handlers: dict[str, Handler] = {
            PUBLISH_TO_TOPIC: self.publish_to_topic,
            SUBSCRIBE_TO_TOPIC: self.subscribe_to_topic,
            PUBLISH_TO_IOT_CORE: self.publish_to_iot_core,
            SUBSCRIBE_TO_IOT_CORE: self.subscribe_to_iot_core,
            GET_CONFIGURATION: self.get_configuration,
            UPDATE_CONFIGURATION: self.update_configuration,
            SUBSCRIBE_TO_CONFIGURATION_UPDATE: self.subscribe_to_configuration_update,
            UPDATE_STATE: self.update_state,
            GET_COMPONENT_DETAILS: self.get_component_details,
            GET_SECRET_VALUE: self.get_secret_value,
            SUBSCRIBE_TO_COMPONENT_UPDATES: self.subscribe_to_component_updates,
            DEFER_COMPONENT_UPDATE: self.defer_component_update,
        }

    def close(self) -> None:
        """Stop the publishing thread (the server calls this when it stops)."""
        self._publisher.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- routing
    def authenticate(self, token: str) -> str | None:
        return self.host.authenticate(token)

    def handle(
        self, stream: Stream, operation: str, request: dict[str, Any]
    ) -> Response | Awaitable[Response]:
        handler = self._handlers.get(operation)
        if handler is None:
            supported = ", ".join(sorted(op.removeprefix(NS) for op in self._handlers))
            raise ServiceError(
                f"{operation} is not supported by the edgekit local device; supported: {supported}"
            )
        return handler(stream, request)

    async def _call_host(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, fn, *args)

    def _authorize(
        self, stream: Stream, service: str, operation: str, resource: str, *aliases: str
    ) -> None:
        """UnauthorizedError unless a policy allows ``operation`` on ``resource`` (or on one
        of its ``aliases``: other names of the same resource, e.g. a secret's partial ARN)."""
        component = stream.component
        try:
            access = self.host.access_control(component)
        except Exception as exc:
            log.exception("IPC host failed to return accessControl of %s", component)
            raise ServiceError(f"cannot read the accessControl of {component}: {exc}") from exc
        if not any(
            authorization.is_authorized(
                access,
                service,
                operation,
                name,
                thing_name=self.host.thing_name,
                component=component,
            )
            for name in (resource, *aliases)
        ):
            raise UnauthorizedError(
                f"Principal {component} is not authorized to perform {service}:{operation} on "
                f"resource {resource}; add a policy under accessControl.{service} in the "
                f"component's configuration"
            )

    # ---------------------------------------------------------------- local pub/sub
    def publish_to_topic(self, stream: Stream, request: dict[str, Any]) -> Response:
        topic = request.get("topic")
        if not isinstance(topic, str) or not topic:
            raise InvalidArgumentsError("topic is required and must be a non-empty string")
        self._authorize(stream, authorization.PUBSUB_SERVICE, PUBLISH_TO_TOPIC, topic)
        topics.validate_publish_topic(topic)
        message = request.get("publishMessage")
        if not isinstance(message, dict):
            raise InvalidArgumentsError("publishMessage is required")
        members = [k for k in ("jsonMessage", "binaryMessage") if message.get(k) is not None]
        if len(members) != 1:
            raise InvalidArgumentsError(
                "publishMessage must set exactly one of jsonMessage or binaryMessage"
            )
        body = message[members[0]]
        if not isinstance(body, dict) or "message" not in body:
            raise InvalidArgumentsError(f"publishMessage.{members[0]}.message is required")
        if members[0] == "jsonMessage":
            if not isinstance(body["message"], dict):
                raise InvalidArgumentsError(
                    "publishMessage.jsonMessage.message must be a JSON object"
                )
            self.pubsub.publish(topic, stream.component, "json", body["message"])
        else:
            data = _b64(body["message"], "publishMessage.binaryMessage.message")
            self.pubsub.publish(topic, stream.component, "binary", data)
        return Response(NS + "PublishToTopicResponse", {})

    def subscribe_to_topic(self, stream: Stream, request: dict[str, Any]) -> Response:
        topic_filter = request.get("topic")
        if not isinstance(topic_filter, str) or not topic_filter:
            raise InvalidArgumentsError("topic is required and must be a non-empty string")
        self._authorize(stream, authorization.PUBSUB_SERVICE, SUBSCRIBE_TO_TOPIC, topic_filter)
        topics.validate_filter(topic_filter)
        mode = resolve_receive_mode(topic_filter, request.get("receiveMode"))

        def deliver(topic: str, kind: str, message: Any) -> None:
            context = {"topic": topic}
            if kind == "json":
                event = {"jsonMessage": {"message": message, "context": context}}
            else:
                encoded = base64.b64encode(message).decode()
                event = {"binaryMessage": {"message": encoded, "context": context}}
            stream.send_event(NS + "SubscriptionResponseMessage", event)

        stream.on_close(self.pubsub.subscribe(topic_filter, stream.component, mode, deliver))
        return Response(NS + "SubscribeToTopicResponse", {}, streaming=True)

    # ---------------------------------------------------------------- IoT Core
    def _require_bridge(self) -> MqttBridge:
        if self.bridge is None:
            raise ServiceError(
                "this device has no MQTT broker to bridge IoT Core operations to "
                "(IpcHost.mqtt_endpoint is empty); start one with `edgekit local up`"
            )
        return self.bridge

    async def publish_to_iot_core(self, stream: Stream, request: dict[str, Any]) -> Response:
        topic = request.get("topicName")
        if not isinstance(topic, str) or not topic:
            raise InvalidArgumentsError("topicName is required and must be a non-empty string")
        self._authorize(stream, authorization.MQTTPROXY_SERVICE, PUBLISH_TO_IOT_CORE, topic)
        topics.validate_publish_topic(topic, "topicName")
        payload = _b64(request.get("payload"), "payload")
        qos = _qos(request.get("qos"))
        retain = request.get("retain")
        if retain is not None and not isinstance(retain, bool):
            raise InvalidArgumentsError(f"retain must be a boolean, not {retain!r}")
        if len(payload) > IOT_CORE_MAX_PAYLOAD_BYTES:
            # Same check and wording as the nucleus (MqttClient.isValidPublishRequest), so an
            # oversize message never reaches the spool, where the broker would refuse it.
            raise ServiceError(
                f"Publish to topic {topic} failed with error The publishing message size "
                f"{len(payload)} bytes exceeds the configured limit of "
                f"{IOT_CORE_MAX_PAYLOAD_BYTES} bytes (AWS IoT Core's message size limit, "
                "128 KiB); send less per message, or put the data in S3 and publish its key"
            )
        bridge = self._require_bridge()
        try:
            # Off the event loop: a QoS 1 message is fsynced to the spool before the answer.
            await self.loop.run_in_executor(
                self._publisher, bridge.publish, topic, payload, qos, bool(retain)
            )
        except MqttBridgeError as exc:
            raise ServiceError(f"Publish to topic {topic} failed: {exc}") from exc
        return Response(NS + "PublishToIoTCoreResponse", {})

    async def subscribe_to_iot_core(self, stream: Stream, request: dict[str, Any]) -> Response:
        topic_filter = request.get("topicName")
        if not isinstance(topic_filter, str) or not topic_filter:
            raise InvalidArgumentsError("topicName is required and must be a non-empty string")
        self._authorize(
            stream, authorization.MQTTPROXY_SERVICE, SUBSCRIBE_TO_IOT_CORE, topic_filter
        )
        topics.validate_filter(topic_filter, "topicName")
        qos = _qos(request.get("qos"))
        bridge = self._require_bridge()
        active = False
        loop = self.loop

        def send(event: dict[str, Any]) -> None:
            if active:
                stream.send_event(NS + "IoTCoreMessage", event)

        def on_message(topic: str, payload: bytes, retain: bool) -> None:  # paho thread
            event = {
                "message": {
                    "topicName": topic,
                    "payload": base64.b64encode(payload).decode(),
                    "retain": retain,
                }
            }
            with contextlib.suppress(RuntimeError):  # the server is stopping
                loop.call_soon_threadsafe(send, event)

        handle, suback = bridge.subscribe(topic_filter, qos, on_message)
        stream.on_close(lambda: bridge.unsubscribe(handle))
        if suback is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(suback), SUBSCRIBE_TIMEOUT)
            except TimeoutError as exc:
                raise ServiceError(
                    f"Subscribe to topic {topic_filter} failed: no SUBACK from the MQTT broker "
                    f"within {SUBSCRIBE_TIMEOUT:.0f} s"
                ) from exc
            except MqttBridgeError as exc:
                raise ServiceError(f"Subscribe to topic {topic_filter} failed: {exc}") from exc

        def activate() -> None:
            nonlocal active
            active = True

        return Response(NS + "SubscribeToIoTCoreResponse", {}, streaming=True, on_sent=activate)

    # ---------------------------------------------------------------- configuration
    async def _read_config(self, component: str, key_path: list[str]) -> Any:
        try:
            return await self._call_host(self.host.get_configuration, component, key_path)
        except KeyError as exc:
            raise ResourceNotFoundError(
                f"Key not found: {'/'.join(key_path) or '(root)'} in the configuration of "
                f"{component}",
                resource_type="Configuration",
                resource_name=component,
            ) from exc

    async def get_configuration(self, stream: Stream, request: dict[str, Any]) -> Response:
        component = request.get("componentName") or stream.component
        if not isinstance(component, str):
            raise InvalidArgumentsError(f"componentName must be a string, not {component!r}")
        key_path = _key_path(request.get("keyPath"))
        value = await self._read_config(component, key_path)
        if key_path and not isinstance(value, dict):
            value = {key_path[-1]: value}  # a leaf comes back as {name: value}, as on the nucleus
        return Response(
            NS + "GetConfigurationResponse", {"componentName": component, "value": value}
        )

    async def update_configuration(self, stream: Stream, request: dict[str, Any]) -> Response:
        key_path = _key_path(request.get("keyPath"))
        timestamp = request.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise InvalidArgumentsError("timestamp is required (seconds since the epoch)")
        if "valueToMerge" not in request or request["valueToMerge"] is None:
            raise InvalidArgumentsError("valueToMerge is required")
        value = request["valueToMerge"]
        touches_restricted = (key_path and key_path[0] in RESTRICTED_CONFIG_KEYS) or (
            not key_path
            and isinstance(value, dict)
            and any(k in value for k in RESTRICTED_CONFIG_KEYS)
        )
        if touches_restricted:
            raise InvalidArgumentsError(
                f"Config update is not allowed for following fields {list(RESTRICTED_CONFIG_KEYS)}"
            )
        if not key_path and not isinstance(value, dict):
            raise InvalidArgumentsError("valueToMerge must be an object when keyPath is empty")
        try:
            result = await self._call_host(
                self.host.update_configuration, stream.component, key_path, value, float(timestamp)
            )
        except KeyError as exc:
            raise InvalidArgumentsError(
                f"Component config not found for component {stream.component}"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        if result is False:
            raise FailedUpdateConditionCheckError(
                "Proposed timestamp is older than the config's latest modified timestamp"
            )
        return Response(NS + "UpdateConfigurationResponse", {})

    async def subscribe_to_configuration_update(
        self, stream: Stream, request: dict[str, Any]
    ) -> Response:
        component = request.get("componentName") or stream.component
        if not isinstance(component, str):
            raise InvalidArgumentsError(f"componentName must be a string, not {component!r}")
        key_path = _key_path(request.get("keyPath"))
        await self._read_config(component, key_path)  # the node must exist
        watch_id = id(stream)

        def activate() -> None:
            if not stream.closed:
                self._config_watchers[watch_id] = (component, key_path, stream)

        stream.on_close(lambda: self._config_watchers.pop(watch_id, None))
        return Response(
            NS + "SubscribeToConfigurationUpdateResponse", {}, streaming=True, on_sent=activate
        )

    def configuration_changed(self, component: str, key_path: list[str]) -> None:
        """Tell watchers of ``component`` about a change at ``key_path`` (loop thread)."""
        changed = list(key_path)
        for watched_component, watched, stream in list(self._config_watchers.values()):
            if watched_component != component:
                continue
            n = min(len(watched), len(changed))
            if watched[:n] != changed[:n]:
                continue  # neither path contains the other
            stream.send_event(
                NS + "ConfigurationUpdateEvents",
                {"configurationUpdateEvent": {"componentName": component, "keyPath": changed}},
            )

    # ---------------------------------------------------------------- lifecycle
    async def update_state(self, stream: Stream, request: dict[str, Any]) -> Response:
        state = request.get("state")
        if state not in REPORTABLE_STATES:
            raise InvalidArgumentsError(f"state must be RUNNING or ERRORED, not {state!r}")
        await self._call_host(self.host.update_state, stream.component, state)
        return Response(NS + "UpdateStateResponse", {})

    async def get_component_details(self, stream: Stream, request: dict[str, Any]) -> Response:
        name = request.get("componentName")
        if not isinstance(name, str) or not name:
            raise InvalidArgumentsError("componentName is required")
        self._authorize(stream, authorization.CLI_SERVICE, GET_COMPONENT_DETAILS, name)
        details = await self._call_host(self.host.component_details, name)
        if details is None:
            raise ResourceNotFoundError(
                f"Component {name} is not on this device",
                resource_type="Component",
                resource_name=name,
            )
        out: dict[str, Any] = {"componentName": details.get("componentName", name)}
        for key in ("version", "state", "configuration"):
            if details.get(key) is not None:
                out[key] = details[key]
        if "state" in out:
            out["state"] = str(out["state"]).upper()  # LifecycleState values are upper case
        return Response(NS + "GetComponentDetailsResponse", {"componentDetails": out})

    # ---------------------------------------------------------------- component updates
    def subscribe_to_component_updates(self, stream: Stream, request: dict[str, Any]) -> Response:
        def activate() -> None:
            if not stream.closed:
                stream.on_close(self.component_updates.subscribe(stream.component, stream))

        return Response(
            NS + "SubscribeToComponentUpdatesResponse", {}, streaming=True, on_sent=activate
        )

    def defer_component_update(self, stream: Stream, request: dict[str, Any]) -> Response:
        self.component_updates.defer(
            stream.component,
            request.get("deploymentId"),
            request.get("recheckAfterMs"),
            request.get("message"),
        )
        return Response(NS + "DeferComponentUpdateResponse", {})

    # ---------------------------------------------------------------- secrets
    async def get_secret_value(self, stream: Stream, request: dict[str, Any]) -> Response:
        secret_id = request.get("secretId")
        if not isinstance(secret_id, str) or not secret_id:
            raise InvalidArgumentsError("secretId is required: the secret's ARN or name")
        version_id = request.get("versionId")
        version_stage = request.get("versionStage")
        for field, value in (("versionId", version_id), ("versionStage", version_stage)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentsError(f"{field} must be a string, not {value!r}")
        refresh = request.get("refresh")
        if refresh is not None and not isinstance(refresh, bool):
            raise InvalidArgumentsError(f"refresh must be a boolean, not {refresh!r}")
        manager = await self._call_host(self.host.secret_manager)
        if manager is None:
            raise ServiceError(
                f"GetSecretValue is served by {secrets.SECRET_MANAGER}, which is not deployed "
                "on this device; add it to the deployment with the secret's ARN in its "
                "cloudSecrets configuration"
            )
        arn = manager.arn_of(secret_id)
        if arn is None:
            raise ResourceNotFoundError(
                f"Secret not found {secret_id}; this device has only the secrets listed in "
                f"cloudSecrets of {secrets.SECRET_MANAGER}",
                resource_type="secret",
                resource_name=secret_id,
            )
        # The full ARN, or the (partial) ARN cloudSecrets names it by.
        self._authorize(
            stream, secrets.SECRET_MANAGER, GET_SECRET_VALUE, arn, *manager.aliases(arn)
        )
        try:
            payload = await self._call_host(
                lambda: manager.lookup(arn, version_id, version_stage, refresh=bool(refresh))
            )
        except secrets.SecretLookupError as exc:
            if exc.not_found:
                raise ResourceNotFoundError(
                    str(exc), resource_type="secret", resource_name=secret_id
                ) from exc
            raise ServiceError(str(exc)) from exc
        return Response(NS + "GetSecretValueResponse", payload)
