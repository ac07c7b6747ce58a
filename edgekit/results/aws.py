"""Results from AWS IoT Core: awsiotsdk's MQTT5 client over websockets signed with SigV4.

A notebook has IAM credentials (a boto3 session), not a device certificate, so
it connects the way the AWS IoT console does: MQTT over a websocket whose
upgrade request is signed with SigV4 for the ``iotdevicegateway`` service, with
credentials the boto3 session hands over at each (re)connect. The endpoint is
the account's ``iot:Data-ATS`` address from ``iot.describe_endpoint``.

The client is ``awscrt.mqtt5.Client``, built for IoT Core by
``awsiot.mqtt5_client_builder.websockets_with_default_aws_signing`` (TLS, ALPN,
IoT Core's flow-control limits). Tests run this same class end to end against
the local broker's websocket listener with ``tls=False``, the one difference:
the same options and the same SigV4 handshake transform (set in the options,
so the builder keeps it), a plain socket instead of TLS.

Sessions: the first connection starts clean; reconnects rejoin the session
(``REJOIN_POST_SUCCESS``, session expiry `SESSION_EXPIRY_S`), so the broker
keeps our subscriptions and queues QoS 1 results while the network is down.
If the broker no longer has the session (CONNACK session present = 0, e.g. it
expired or the broker restarted), the subscriber subscribes again; the awscrt
client does not do that by itself. `close` ends the session (expiry 0).
The IAM identity needs ``iot:Connect``, ``iot:Subscribe`` on the topic filter
and ``iot:Receive`` on the topics.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from edgekit.errors import ConfigurationError
from edgekit.local.mqtt.topics import matches, topic_filter_error
from edgekit.results.subscriber import (
    DEFAULT_TIMEOUT,
    Message,
    MqttError,
    OnMessage,
    SubscriberBase,
    client_id,
)

if TYPE_CHECKING:
    import boto3
    from awscrt import mqtt5
    from awscrt.auth import AwsCredentialsProvider

log = logging.getLogger(__name__)

WEBSOCKET_PORT = 443
SIGNING_SERVICE = "iotdevicegateway"
ENDPOINT_TYPE = "iot:Data-ATS"
KEEPALIVE_S = 30
SESSION_EXPIRY_S = 3600  # IoT Core's default maximum for persistent sessions (1 hour)
_PERMISSIONS = "check that your IAM identity allows iot:Connect, iot:Subscribe and iot:Receive"


def iot_data_endpoint(iot_client: Any) -> str:
    """The account's ATS data endpoint (``xxxx-ats.iot.<region>.amazonaws.com``)."""
    try:
        answer = iot_client.describe_endpoint(endpointType=ENDPOINT_TYPE)
    except (BotoCoreError, ClientError) as exc:
        raise ConfigurationError(
            f"cannot look up the AWS IoT data endpoint (iot:DescribeEndpoint "
            f"endpointType={ENDPOINT_TYPE}): {exc}; check the region and credentials "
            "(Settings.region, Settings.aws_profile)"
        ) from exc
    address = str(answer.get("endpointAddress") or "")
    if not address:
        raise ConfigurationError("iot:DescribeEndpoint returned no endpointAddress")
    return address


def credentials_provider(session: boto3.Session) -> AwsCredentialsProvider:
    """An awscrt credentials provider that asks ``session`` each time it signs.

    botocore refreshes temporary credentials (SSO, assumed roles, instance
    profiles) inside ``get_frozen_credentials``, so a long-lived subscriber that
    reconnects signs with fresh keys.
    """
    from awscrt.auth import AwsCredentials, AwsCredentialsProvider

    creds = session.get_credentials()
    if creds is None:
        profile = session.profile_name
        raise ConfigurationError(
            "no AWS credentials found for the results subscriber (boto3 session "
            f"profile {profile!r}); run `aws configure` / `aws sso login`, or set "
            "Settings.aws_profile"
        )

    def current() -> AwsCredentials:
        frozen = creds.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    return AwsCredentialsProvider.new_delegate(current)


def sigv4_handshake(region: str, provider: AwsCredentialsProvider) -> Callable[..., None]:
    """A websocket handshake transform that signs the upgrade request's query string.

    The same signing as ``websockets_with_default_aws_signing``: SigV4 query
    parameters for ``iotdevicegateway``, the session token appended unsigned.
    """
    from awscrt import auth

    def transform(transform_args: Any, **_kwargs: Any) -> None:
        try:
            config = auth.AwsSigningConfig(
                algorithm=auth.AwsSigningAlgorithm.V4,
                signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
                credentials_provider=provider,
                region=region,
                service=SIGNING_SERVICE,
                # IoT Core wants X-Amz-Security-Token appended after signing, not signed.
                omit_session_token=True,
            )
            future = auth.aws_sign_request(transform_args.http_request, config)
            future.add_done_callback(lambda f: transform_args.set_done(f.exception()))
        except Exception as exc:  # handed to awscrt, which fails the connect with it
            transform_args.set_done(exc)

    return transform


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{name}: {message}" if name else message or type(exc).__name__


def _wait(future: Any, what: str, endpoint: str, timeout: float) -> Any:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError as exc:
        raise MqttError(f"{what}: no answer from {endpoint} within {timeout:g} s") from exc
    except Exception as exc:  # awscrt raises AwsCrtError
        raise MqttError(f"{what} on {endpoint} failed: {_describe(exc)}; {_PERMISSIONS}") from exc


class IotCoreSubscriber(SubscriberBase):
    """MQTT5 over SigV4-signed websockets; ``tls=False`` only for tests on loopback."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        provider: AwsCredentialsProvider,
        *,
        port: int = WEBSOCKET_PORT,
        tls: bool = True,
        ca_filepath: str | None = None,
        client_id_prefix: str = "edgekit-results",
        session_expiry: int = SESSION_EXPIRY_S,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        super().__init__()
        self.endpoint = f"{endpoint}:{port}"
        self.host = endpoint
        self.port = port
        self.region = region
        self.provider = provider
        self.tls = tls
        self.ca_filepath = ca_filepath
        self.session_expiry = session_expiry
        self.reconnect_delay = reconnect_delay
        self.client_id = client_id(client_id_prefix)
        self.resubscribed = 0  # times the session was gone and subscriptions were made again
        self._client: mqtt5.Client | None = None
        self._state = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._failure: str | None = None
        self._stopped = threading.Event()

    # --- building the client -----------------------------------------------------------------

    def client_options(self) -> mqtt5.ClientOptions:
        """Everything but TLS: the same for IoT Core and for the loopback tests."""
        from awscrt import mqtt5

        low, high = self.reconnect_delay
        return mqtt5.ClientOptions(
            host_name=self.host,
            port=self.port,
            connect_options=mqtt5.ConnectPacket(
                client_id=self.client_id,
                keep_alive_interval_sec=KEEPALIVE_S,
                session_expiry_interval_sec=self.session_expiry,
            ),
            session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS,
            extended_validation_and_flow_control_options=(
                mqtt5.ExtendedValidationAndFlowControlOptions.AWS_IOT_CORE_DEFAULTS
            ),
            min_reconnect_delay_ms=int(low * 1000),
            max_reconnect_delay_ms=int(high * 1000),
            websocket_handshake_transform=sigv4_handshake(self.region, self.provider),
            on_publish_callback_fn=self._on_publish,
            on_lifecycle_event_connection_success_fn=self._on_connection_success,
            on_lifecycle_event_connection_failure_fn=self._on_connection_failure,
            on_lifecycle_event_disconnection_fn=self._on_disconnection,
            on_lifecycle_event_stopped_fn=self._on_stopped,
        )

    def build_client(self) -> mqtt5.Client:
        """An MQTT5 client, not started: awsiotsdk's builder for IoT Core, plain for tests."""
        from awscrt import mqtt5

        options = self.client_options()
        if not self.tls:
            return mqtt5.Client(options)
        from awsiot import mqtt5_client_builder

        # The builder fills in only what `options` leaves unset: it keeps our SigV4
        # transform and adds the TLS context (ALPN http/1.1 on 443, optional CA file).
        return mqtt5_client_builder.websockets_with_default_aws_signing(
            region=self.region,
            credentials_provider=self.provider,
            endpoint=self.host,
            client_options=options,
            ca_filepath=self.ca_filepath,
        )

    # --- awscrt callbacks (its event-loop thread) ---------------------------------------------

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        message = Message(topic=packet.topic, payload=bytes(packet.payload or b""))
        with self._lock:
            targets = [cb for f, cb in self._subscriptions.items() if matches(f, packet.topic)]
        for on_message in targets:
            on_message(message)

    def _on_connection_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        from awscrt import mqtt5

        present = bool(data.connack_packet and data.connack_packet.session_present)
        with self._state:
            reconnect = self._ever_connected
            self._connected = self._ever_connected = True
            self._state.notify_all()
        if reconnect:
            log.info("reconnected to %s (session present: %s)", self.endpoint, present)
        with self._lock:
            topics = list(self._subscriptions)
        client = self._client
        if present or not topics or client is None:
            return
        # The broker forgot the session (expired, or a broker restart): subscribe again.
        self.resubscribed += 1
        packet = mqtt5.SubscribePacket(
            [mqtt5.Subscription(t, mqtt5.QoS.AT_LEAST_ONCE) for t in topics]
        )
        client.subscribe(packet).add_done_callback(lambda f: self._check_resubscribe(f, topics))

    def _check_resubscribe(self, future: concurrent.futures.Future[Any], topics: list[str]) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("re-subscribing %s on %s failed: %s", topics, self.endpoint, _describe(exc))
            return
        for topic, code in zip(topics, future.result().reason_codes or [], strict=False):
            if int(code) >= 0x80:
                log.error("%s refused the re-subscription to %r: %r", self.endpoint, topic, code)

    def _on_connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        why = _describe(data.exception)
        connack = data.connack_packet
        if connack is not None and connack.reason_code is not None:
            why += f" (CONNACK {connack.reason_code!r}: {connack.reason_string or ''})"
        with self._state:
            first = not self._ever_connected
            if first:
                self._failure = why
            self._state.notify_all()
        if not first:
            log.warning("reconnecting to %s failed: %s; retrying", self.endpoint, why)

    def _on_disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        with self._state:
            self._connected = False
        if self._client is not None and not self._stopped.is_set():
            log.warning(
                "lost the connection to %s (%s); reconnecting",
                self.endpoint,
                _describe(data.exception),
            )

    def _on_stopped(self, data: mqtt5.LifecycleStoppedData) -> None:
        self._stopped.set()

    # --- public API ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if self._client is not None:
            return
        with self._state:
            self._failure = None
            self._ever_connected = False
        self._stopped.clear()
        client = self.build_client()
        self._client = client
        client.start()
        with self._state:
            self._state.wait_for(lambda: self._connected or self._failure is not None, timeout)
            connected, failure = self._connected, self._failure
        if not connected:
            self._stop(client, end_session=False)
            why = failure or f"no CONNACK within {timeout:g} s"
            raise MqttError(
                f"cannot connect to AWS IoT Core at {self.endpoint}: {why}; {_PERMISSIONS}"
            )

    def _require(self) -> mqtt5.Client:
        if self._client is None:
            raise MqttError(f"not connected to {self.endpoint}; call connect() or use `with`")
        return self._client

    def subscribe(
        self, topic_filter: str, on_message: OnMessage, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        from awscrt import mqtt5

        client = self._require()
        problem = topic_filter_error(topic_filter)
        if problem:
            raise MqttError(f"topic filter {topic_filter!r} is not valid MQTT: {problem}")
        with self._lock:  # before SUBACK: retained messages may arrive right behind it
            previous = self._subscriptions.get(topic_filter)
            self._subscriptions[topic_filter] = on_message
        packet = mqtt5.SubscribePacket([mqtt5.Subscription(topic_filter, mqtt5.QoS.AT_LEAST_ONCE)])
        try:
            suback = _wait(
                client.subscribe(packet), f"subscribe {topic_filter!r}", self.endpoint, timeout
            )
            codes = list(suback.reason_codes or [])
            if not codes:
                raise MqttError(f"{self.endpoint} sent an empty SUBACK for {topic_filter!r}")
            if int(codes[0]) >= 0x80:
                detail = f": {suback.reason_string}" if suback.reason_string else ""
                raise MqttError(
                    f"{self.endpoint} refused the subscription to {topic_filter!r} "
                    f"({codes[0]!r}{detail}); {_PERMISSIONS}"
                )
        except MqttError:
            with self._lock:
                if previous is None:
                    self._subscriptions.pop(topic_filter, None)
                else:
                    self._subscriptions[topic_filter] = previous
            raise

    def unsubscribe(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        from awscrt import mqtt5

        client = self._require()
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        future = client.unsubscribe(mqtt5.UnsubscribePacket([topic_filter]))
        _wait(future, f"unsubscribe {topic_filter!r}", self.endpoint, timeout)

    def _stop(self, client: mqtt5.Client, *, end_session: bool) -> None:
        from awscrt import mqtt5

        self._client = None
        # Expiry 0 on the way out: the broker drops the session instead of queueing for us.
        packet = mqtt5.DisconnectPacket(session_expiry_interval_sec=0) if end_session else None
        client.stop(packet)
        if not self._stopped.wait(DEFAULT_TIMEOUT):
            log.warning(
                "the MQTT5 client for %s did not stop in %g s", self.endpoint, DEFAULT_TIMEOUT
            )
        with self._state:
            self._connected = False

    def close(self) -> None:
        client = self._client
        if client is None:
            return
        self._stop(client, end_session=self._connected)


__all__ = [
    "ENDPOINT_TYPE",
    "SESSION_EXPIRY_S",
    "IotCoreSubscriber",
    "credentials_provider",
    "iot_data_endpoint",
    "sigv4_handshake",
]
