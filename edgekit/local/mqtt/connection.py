"""The server side of one client's network connection.

It reads packets (nothing else in the broker awaits), acts on them through
the `Router`, and writes replies and deliveries straight into the transport
without waiting for them to drain: the write buffer is the connection's
bounded outgoing queue (`BrokerLimits.max_outgoing_bytes`). A protocol
violation, a keep-alive timeout or an error of this connection closes this
connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import secrets
import time
from typing import Any

from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.packets import (
    CONNECT,
    MQTT_5,
    MQTT_311,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Ack,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    UnsupportedProtocolLevel,
    decode_body,
    encode,
    encode_publish,
    read_packet,
)
from edgekit.local.mqtt.router import Router, message_properties
from edgekit.local.mqtt.sessions import Delivery, Message, Sent, Session, Subscription
from edgekit.local.mqtt.topics import SHARED_PREFIX, topic_filter_error
from edgekit.local.mqtt.wire import (
    MAX_UINT32,
    PROTOCOL_ERROR,
    TOPIC_ALIAS_INVALID,
    ProtocolError,
)

log = logging.getLogger("edgekit.local.mqtt")

# MQTT 5 reason codes the connection sends (spec table 2-6).
NOT_AUTHORIZED = 0x87
QUOTA_EXCEEDED = 0x97
BAD_AUTHENTICATION_METHOD = 0x8C
SERVER_SHUTTING_DOWN = 0x8B
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
NO_SUBSCRIPTION_EXISTED = 0x11
PACKET_ID_NOT_FOUND = 0x92
TOPIC_FILTER_INVALID = 0x8F
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
DISCONNECT_WITH_WILL = 0x04
V311_REFUSED_PROTOCOL = 0x01
V311_REFUSED_IDENTIFIER = 0x02
V311_SERVER_UNAVAILABLE = 0x03
V311_REFUSED_NOT_AUTHORIZED = 0x05
V311_SUBSCRIBE_FAILURE = 0x80

_CONTROL_SLACK = 64 * 1024  # acks may exceed the outgoing limit by this much before we give up
_CLOSE_GRACE_S = 1.0  # time a closing connection gets to flush its last packet
_DRAIN_POLL_S = 0.005  # how soon a session waiting for the write buffer looks again...
_DRAIN_POLL_MAX_S = 0.1  # ...backing off to this while the client does not read


def _is_loopback(peer: Any) -> bool:
    try:
        ip = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class Connection:
    """One client connection; `run` serves it until it closes."""

    def __init__(
        self,
        router: Router,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: BrokerLimits,
    ) -> None:
        self.router = router
        self.reader = reader
        self.transport = writer.transport
        self.limits = limits
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.loopback = _is_loopback(peer)
        self.version = MQTT_311
        self.client_id = ""
        self.session: Session | None = None
        self.connected = False  # CONNACK sent
        self.closed = False
        self.keep_alive = 0
        self.window = limits.max_inflight
        self.client_max_packet = MAX_UINT32
        self.will: Any = None
        self.will_delay = 0
        self.normal_disconnect = False
        self.aliases: dict[int, str] = {}
        self.acks_waiting = 0  # acknowledgements waiting for the durable store
        self.dropped_qos0 = 0
        self._drain_waiters: list[Any] = []

    def __repr__(self) -> str:
        return f"<Connection {self.client_id or '?'} from {self.peer}>"

    @property
    def v5(self) -> bool:
        return self.version == MQTT_5

    # ------------------------------------------------------------ main loop
    async def run(self) -> None:
        try:
            await self._serve()
        except ProtocolError as exc:
            log.info("closing %r: %s", self, exc)
            self._close(Disconnect(exc.reason_code, self._reason(str(exc))))
        except TimeoutError:
            what = "keep-alive" if self.connected else "CONNECT"
            log.info("closing %r: no packet within its %s timeout", self, what)
            self._close(Disconnect(KEEP_ALIVE_TIMEOUT))
        except (asyncio.IncompleteReadError, ConnectionError):
            log.debug("%r: connection lost", self)
        except Exception:  # a broker bug must cost this connection only, never the broker
            log.exception("closing %r after an unexpected error", self)
            self._close(None)
        finally:
            self._close(None)
            if self.session is not None:
                will = None if self.normal_disconnect else self.will
                self.router.connection_closed(self.session, self, will, self.will_delay)

    async def _serve(self) -> None:
        first, body = await asyncio.wait_for(
            read_packet(self.reader, self.limits.max_packet_size, expect=CONNECT),
            self.limits.connect_timeout,
        )
        try:
            connect = decode_body(first, body, MQTT_311)
        except UnsupportedProtocolLevel as exc:
            log.info("refusing %r: %s", self, exc)
            self._write(encode(Connack(False, V311_REFUSED_PROTOCOL), MQTT_311))
            self._close(None)
            return
        assert isinstance(connect, Connect)
        if not self._accept(connect):
            return
        max_size = self.limits.max_packet_size
        while not self.closed:
            if self.keep_alive:
                async with asyncio.timeout(self.keep_alive * 1.5):
                    first, body = await read_packet(self.reader, max_size)
            else:
                first, body = await read_packet(self.reader, max_size)
            self._dispatch(decode_body(first, body, self.version))

    # ------------------------------------------------------------ CONNECT
    def _accept(self, connect: Connect) -> bool:
        self.version = connect.protocol_level
        props = connect.properties
        if self.v5 and "authentication_method" in props:
            return self._refuse(BAD_AUTHENTICATION_METHOD, "enhanced authentication unsupported")
        if not self.loopback and not self.limits.allow_remote:
            code = NOT_AUTHORIZED if self.v5 else V311_REFUSED_NOT_AUTHORIZED
            return self._refuse(code, "anonymous clients are accepted from loopback only")
        client_id, assigned = connect.client_id, None
        if not client_id:
            if not self.v5 and not connect.clean_start:
                return self._refuse(V311_REFUSED_IDENTIFIER, "empty client id needs clean session")
            client_id = assigned = f"edgekit-{secrets.token_hex(8)}"
        longest = self.limits.session_expiry
        if self.v5:
            asked = props.get("session_expiry_interval", 0)
            expiry = min(asked, longest)
            self.window = min(props.get("receive_maximum", 0xFFFF), self.limits.max_inflight)
            self.client_max_packet = props.get("maximum_packet_size", MAX_UINT32)
        else:
            asked = expiry = 0 if connect.clean_start else longest
        if not self.router.make_room(client_id):
            code = QUOTA_EXCEEDED if self.v5 else V311_SERVER_UNAVAILABLE
            why = f"max_sessions ({self.limits.max_sessions}) reached and all are online"
            return self._refuse(code, why)
        self.client_id = client_id
        self.keep_alive = connect.keep_alive
        self.will = connect.will
        if connect.will is not None and self.v5:
            self.will_delay = connect.will.properties.get("will_delay_interval", 0)
        session, present = self.router.open_session(
            client_id, self, connect.clean_start, expiry, self.version
        )
        self.session = session
        ack: dict[str, Any] = {}
        if self.v5:
            ack = {
                "maximum_packet_size": self.limits.max_packet_size,
                "topic_alias_maximum": self.limits.topic_alias_maximum,
                "shared_subscription_available": 0,
            }
            if assigned:
                ack["assigned_client_identifier"] = assigned
            if expiry != asked:  # MQTT 5 3.2.2.3.2: the server says which interval it uses
                ack["session_expiry_interval"] = expiry
        self._write(encode(Connack(present, 0, ack), self.version))
        self.connected = True
        log.debug("%r connected (MQTT level %d, session present %s)", self, self.version, present)
        session.attach(self)
        return True

    def _refuse(self, code: int, why: str) -> bool:
        log.info("refusing %r: %s", self, why)
        props = {"reason_string": why} if self.v5 else {}
        self._write(encode(Connack(False, code, props), self.version))
        self._close(None)
        return False

    # ------------------------------------------------------------ dispatch
    def _dispatch(self, packet: Packet) -> None:
        session = self.session
        assert session is not None
        if isinstance(packet, Publish):
            self._on_publish(packet, session)
        elif isinstance(packet, Ack):
            self._on_ack(packet, session)
        elif isinstance(packet, Subscribe):
            self._on_subscribe(packet, session)
        elif isinstance(packet, Unsubscribe):
            codes = [
                0 if self.router.unsubscribe(session, f) else NO_SUBSCRIPTION_EXISTED
                for f in packet.filters
            ]
            self._ack_when_durable(encode(Unsuback(packet.packet_id, codes), self.version))
        elif isinstance(packet, PingReq):
            self._write(b"\xd0\x00")
        elif isinstance(packet, Disconnect):
            self._on_disconnect(packet, session)
        elif isinstance(packet, Connect):
            raise ProtocolError("a second CONNECT on one connection")
        elif isinstance(packet, Auth):
            raise ProtocolError("AUTH without enhanced authentication")
        else:
            raise ProtocolError(f"a client must not send {type(packet).__name__.upper()}")

    def _on_publish(self, packet: Publish, session: Session) -> None:
        topic, props = packet.topic, packet.properties
        if self.v5:
            alias = props.get("topic_alias")
            if alias is not None:
                if alias > self.limits.topic_alias_maximum:
                    raise ProtocolError(
                        f"topic alias {alias} exceeds the maximum of "
                        f"{self.limits.topic_alias_maximum}",
                        TOPIC_ALIAS_INVALID,
                    )
                if topic:
                    self.aliases[alias] = topic
                elif alias in self.aliases:
                    topic = self.aliases[alias]
                else:
                    raise ProtocolError(f"topic alias {alias} was never set", PROTOCOL_ERROR)
            if "subscription_identifier" in props:
                raise ProtocolError("a client's PUBLISH must not carry a subscription identifier")
        if packet.qos == 2 and packet.packet_id in session.incoming_qos2:
            self._write(encode(Ack(PUBREC, packet.packet_id), self.version))  # duplicate
            return
        forwarded, expires_at = message_properties(props)
        message = Message(
            topic,
            packet.payload,
            packet.qos,
            packet.retain,
            self.client_id,
            forwarded,
            expires_at,
        )
        self.router.publish(message)
        if packet.qos == 1:
            self._ack_when_durable(encode(Ack(PUBACK, packet.packet_id), self.version))
        elif packet.qos == 2:
            session.incoming_qos2.add(packet.packet_id)
            self._ack_when_durable(encode(Ack(PUBREC, packet.packet_id), self.version))

    def _on_ack(self, packet: Ack, session: Session) -> None:
        pid = packet.packet_id
        if packet.kind == PUBACK:
            session.puback(pid)
        elif packet.kind == PUBREC:
            failed = packet.reason_code >= 0x80
            known = session.pubrec(pid, failed)
            if not failed:
                code = 0 if known or not self.v5 else PACKET_ID_NOT_FOUND
                self._write(encode(Ack(PUBREL, pid, code), self.version))
        elif packet.kind == PUBREL:
            known = pid in session.incoming_qos2
            session.incoming_qos2.discard(pid)
            code = 0 if known or not self.v5 else PACKET_ID_NOT_FOUND
            self._write(encode(Ack(PUBCOMP, pid, code), self.version))
        else:
            session.pubcomp(pid)

    def _on_subscribe(self, packet: Subscribe, session: Session) -> None:
        ids = packet.properties.get("subscription_identifier")
        identifier = ids[0] if ids else None
        codes: list[int] = []
        retained: list[Subscription] = []
        for topic_filter, options in packet.subscriptions:
            problem = topic_filter_error(topic_filter)
            if problem:
                log.info("%r: refused filter %r: %s", self, topic_filter, problem)
                codes.append(TOPIC_FILTER_INVALID if self.v5 else V311_SUBSCRIBE_FAILURE)
                continue
            if self.v5 and topic_filter.startswith(SHARED_PREFIX):
                codes.append(SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
                continue
            limit = self.limits.max_subscriptions
            if topic_filter not in session.subscriptions and len(session.subscriptions) >= limit:
                self.router.stats.subscriptions_refused += 1
                log.warning("%r: refused filter %r: %d subscriptions", self, topic_filter, limit)
                codes.append(QUOTA_EXCEEDED if self.v5 else V311_SUBSCRIBE_FAILURE)
                continue
            sub = Subscription(topic_filter, options, identifier)
            existed = self.router.subscribe(session, sub)
            codes.append(options.qos)
            if options.retain_handling == 0 or (options.retain_handling == 1 and not existed):
                retained.append(sub)
        self._ack_when_durable(encode(Suback(packet.packet_id, codes), self.version))
        for sub in retained:
            sub_ids = (identifier,) if identifier is not None else ()
            session.deliver_retained(
                [
                    Delivery(message, min(message.qos, sub.options.qos), True, sub_ids)
                    for message in self.router.retained_for(sub.topic_filter)
                ]
            )

    def _on_disconnect(self, packet: Disconnect, session: Session) -> None:
        expiry = packet.properties.get("session_expiry_interval")
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                raise ProtocolError("DISCONNECT sets a session expiry after CONNECT asked for 0")
            session.expiry_interval = min(expiry, self.limits.session_expiry)
        self.normal_disconnect = packet.reason_code != DISCONNECT_WITH_WILL
        log.debug("%r disconnected (reason 0x%02x)", self, packet.reason_code)
        self._close(None)

    def _ack_when_durable(self, data: bytes) -> None:
        """Write a PUBACK, PUBREC, SUBACK or UNSUBACK once what it acknowledges is on disk.

        With a durable store, a change still being written (a queued message, a retained
        message, a subscription) is acknowledged only after its fsync; acknowledgements
        keep their order. A store that cannot write closes the connection unacknowledged.
        """
        persistence = self.router.persistence
        if persistence is None or not (persistence.store.pending or self.acks_waiting):
            self._write(data)
            return
        self.acks_waiting += 1

        def durable(error: BaseException | None) -> None:
            self.acks_waiting -= 1
            if error is None:
                self._write(data)
            elif not self.closed:
                log.error("closing %r unacknowledged: %s", self, error)
                self._close(None)

        persistence.store.when_durable(durable)

    # ------------------------------------------------------------ writing (the session's Link)
    def _write(self, data: bytes) -> None:
        """Write a control packet; a client that never reads them is disconnected."""
        if self.closed:
            return
        if self.transport.get_write_buffer_size() > self.limits.max_outgoing_bytes + _CONTROL_SLACK:
            self.overflow("it does not read its acknowledgements")
            return
        self.transport.write(data)

    def writable(self) -> bool:
        if self.closed:
            return False
        return self.transport.get_write_buffer_size() < self.limits.max_outgoing_bytes

    def when_writable(self, callback: Any) -> None:
        """Call ``callback`` once the write buffer is below half its limit (polled)."""
        if callback in self._drain_waiters:
            return
        self._drain_waiters.append(callback)
        if len(self._drain_waiters) == 1:
            asyncio.get_running_loop().call_later(_DRAIN_POLL_S, self._check_drained, _DRAIN_POLL_S)

    def _check_drained(self, delay: float) -> None:
        if self.closed:
            self._drain_waiters.clear()
            return
        if self.transport.get_write_buffer_size() > self.limits.max_outgoing_bytes // 2:
            delay = min(delay * 2, _DRAIN_POLL_MAX_S)  # a client that stopped reading
            asyncio.get_running_loop().call_later(delay, self._check_drained, delay)
            return
        waiters, self._drain_waiters = self._drain_waiters, []
        for callback in waiters:
            callback()

    def send_publish(self, delivery: Delivery, dup: bool = False) -> Sent:
        if self.closed:
            return Sent.FULL
        if self.transport.get_write_buffer_size() >= self.limits.max_outgoing_bytes:
            if delivery.qos == 0:
                self.dropped_qos0 += 1
                self.router.stats.qos0_dropped += 1
                log.warning(
                    "%r does not keep up: dropped a QoS 0 message on %r (%d so far)",
                    self,
                    delivery.message.topic,
                    self.dropped_qos0,
                )
            return Sent.FULL
        message = delivery.message
        props = message.properties
        if self.v5 and (delivery.subscription_ids or message.expires_at is not None):
            props = dict(props)
            if delivery.subscription_ids:
                props["subscription_identifier"] = list(delivery.subscription_ids)
            if message.expires_at is not None:
                left = math.ceil(message.expires_at - time.monotonic())
                props["message_expiry_interval"] = max(left, 1)
        data = encode_publish(
            Publish(
                message.topic,
                message.payload,
                delivery.qos,
                delivery.retain,
                dup,
                delivery.packet_id,
                props,
            ),
            self.v5,
        )
        if len(data) > self.client_max_packet:
            self.router.stats.oversize_skipped += 1
            log.warning(
                "%r: dropped a message on %r: %d bytes exceed the client's maximum packet size",
                self,
                message.topic,
                len(data),
            )
            return Sent.SKIPPED
        self.transport.write(data)
        return Sent.OK

    def send_pubrel(self, packet_id: int) -> Sent:
        if self.closed:
            return Sent.FULL
        self._write(encode(Ack(PUBREL, packet_id), self.version))
        return Sent.FULL if self.closed else Sent.OK

    def overflow(self, reason: str) -> None:
        if self.closed:
            return
        log.warning("disconnecting %r: %s", self, reason)
        if self.session is not None and self.session.link is self:
            self.session.link = None
        self.closed = True
        self.transport.abort()

    def taken_over(self) -> None:
        log.info("%r: another connection took over client id %r", self, self.client_id)
        self._close(Disconnect(SESSION_TAKEN_OVER))

    def shutdown(self) -> None:
        """The broker is stopping."""
        self._close(Disconnect(SERVER_SHUTTING_DOWN))
        self.transport.abort()

    # ------------------------------------------------------------ closing
    def _reason(self, text: str) -> dict[str, Any]:
        return {"reason_string": text[:200]} if self.v5 else {}

    def _close(self, disconnect: Disconnect | None) -> None:
        """Close once; MQTT 5 clients past CONNACK first get ``disconnect``."""
        if self.closed:
            if not self.transport.is_closing():
                self.transport.close()
            return
        if disconnect is not None and self.v5 and self.connected:
            with contextlib.suppress(ValueError):  # reason string too long for its packet
                self.transport.write(encode(disconnect, MQTT_5))
        self.closed = True
        self.transport.close()
        if self.transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, self.transport.abort)
