"""Results from AWS IoT Core: awscrt's MQTT client over websockets signed with SigV4.

A notebook has IAM credentials (a boto3 session), not a device certificate, so
it connects the way the AWS IoT console does: MQTT over a websocket whose
handshake URL is signed with SigV4 for the ``iotdevicegateway`` service. The
endpoint is the account's ``iot:Data-ATS`` address from ``iot.describe_endpoint``.

We use awscrt's MQTT 3.1.1 connection rather than its MQTT5 client: IoT Core
speaks both and a subscriber needs nothing from MQTT5, while 3.1.1 lets the
tests run this very class (signing included, only TLS off) end to end against
the local amqtt broker, which speaks only MQTT 3.1.1. The handshake signing is
the same as ``awsiot.mqtt5_client_builder.websockets_with_default_aws_signing``.
The IAM identity needs ``iot:Connect``, ``iot:Subscribe`` on the topic filter
and ``iot:Receive`` on the topics.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigurationError
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
    from awscrt.auth import AwsCredentialsProvider

log = logging.getLogger(__name__)

WEBSOCKET_PORT = 443
SIGNING_SERVICE = "iotdevicegateway"
ENDPOINT_TYPE = "iot:Data-ATS"
KEEPALIVE_S = 30
_PERMISSIONS = "check that your IAM identity allows iot:Connect, iot:Subscribe and iot:Receive"


def iot_data_endpoint(iot_client: Any) -> str:
    """The account's ATS data endpoint (``xxxx-ats.iot.<region>.amazonaws.com``)."""
    from botocore.exceptions import BotoCoreError, ClientError

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
    """A websocket handshake transform that signs the upgrade request's query string."""
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


def _wait(future: Any, what: str, endpoint: str, timeout: float) -> Any:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError as exc:
        raise MqttError(f"{what}: no answer from {endpoint} within {timeout:g} s") from exc
    except Exception as exc:  # awscrt raises AwsCrtError / SubscribeError
        raise MqttError(f"{what} on {endpoint} failed: {exc}; {_PERMISSIONS}") from exc


class IotCoreSubscriber(SubscriberBase):
    """MQTT over SigV4-signed websockets; ``tls=False`` only for tests on loopback."""

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
    ) -> None:
        super().__init__()
        self.endpoint = f"{endpoint}:{port}"
        self.host = endpoint
        self.port = port
        self.region = region
        self.provider = provider
        self.tls = tls
        self.ca_filepath = ca_filepath
        self._client_id = client_id(client_id_prefix)
        self._connection: Any = None

    def _tls_context(self) -> Any:
        from awscrt import io

        if not self.tls:
            return None
        options = io.TlsContextOptions()
        if self.ca_filepath:
            options.override_default_trust_store_from_path(None, self.ca_filepath)
        if self.port == 443 and io.is_alpn_available():
            options.alpn_list = ["http/1.1"]
        return io.ClientTlsContext(options)

    def _on_resumed(
        self, connection: Any, return_code: Any, session_present: bool, **_: Any
    ) -> None:
        # A clean session comes back without subscriptions: make them again.
        if not session_present:
            connection.resubscribe_existing_topics()

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        from awscrt import io, mqtt

        if self._connection is not None:
            return
        client = mqtt.Client(io.ClientBootstrap.get_or_create_static_default(), self._tls_context())
        connection = mqtt.Connection(
            client,
            self.host,
            self.port,
            self._client_id,
            clean_session=True,
            keep_alive_secs=KEEPALIVE_S,
            use_websockets=True,
            websocket_handshake_transform=sigv4_handshake(self.region, self.provider),
            on_connection_resumed=self._on_resumed,
        )
        _wait(connection.connect(), "connect", self.endpoint, timeout)
        self._connection = connection

    def _require(self) -> Any:
        if self._connection is None:
            raise MqttError(f"not connected to {self.endpoint}; call connect() or use `with`")
        return self._connection

    def subscribe(
        self, topic_filter: str, on_message: OnMessage, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        from awscrt import mqtt

        connection = self._require()

        def deliver(topic: str, payload: bytes, **_: Any) -> None:
            on_message(Message(topic=topic, payload=bytes(payload)))

        future, _packet = connection.subscribe(topic_filter, mqtt.QoS.AT_LEAST_ONCE, deliver)
        _wait(future, f"subscribe {topic_filter!r}", self.endpoint, timeout)
        with self._lock:
            self._subscriptions[topic_filter] = on_message

    def unsubscribe(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        connection = self._require()
        future, _packet = connection.unsubscribe(topic_filter)
        _wait(future, f"unsubscribe {topic_filter!r}", self.endpoint, timeout)
        with self._lock:
            self._subscriptions.pop(topic_filter, None)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.disconnect().result(DEFAULT_TIMEOUT)
        except Exception as exc:  # the connection is gone either way; say so, do not mask
            log.warning("disconnect from %s failed: %s", self.endpoint, exc)


__all__ = [
    "ENDPOINT_TYPE",
    "IotCoreSubscriber",
    "credentials_provider",
    "iot_data_endpoint",
    "sigv4_handshake",
]
