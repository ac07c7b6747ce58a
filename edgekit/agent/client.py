"""A small client for the model agent, for code that does not want protobuf.

It speaks the same API as any client generated from agent.proto (the
SageMaker Edge Manager agent's), adds numpy in and out, and optionally passes
inputs through POSIX shared memory instead of the gRPC message, which saves
a serialization and a copy per tensor for large inputs.

Before its first call, again after a call found no agent, and at most every
:data:`PEER_CHECK_INTERVAL` seconds, the client checks who listens on a unix socket
(``SO_PEERCRED``, on Linux): a process of another user (not root) is not this device's
agent, and every call fails with PERMISSION_DENIED naming the socket, the process and its
uid, instead of trusting what it answers.

With an agent that has the fast socket (:mod:`edgekit.agent.fastpath`), every call but an
inline or POSIX-shared-memory Predict goes over it, and the client imports grpc (some
16 MB resident) only when a call needs gRPC: an agent without the fast socket, a Predict
with ``shared_memory=False``, or a call made while the fast socket is gone.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.agent import sealed
from edgekit.agent.fastpath import FastPredictClient, fast_socket_path
from edgekit.agent.peer import check_connected_peer, check_peer, listening
from edgekit.agent.protos import agent_pb2
from edgekit.agent.sealed import SealedSegment
from edgekit.agent.shm import OUTPUT_ALIGN, PosixSegment, SharedMemoryPool
from edgekit.agent.status import AgentStatusError
from edgekit.agent.tensors import DATA_TYPE_NAMES, DATA_TYPES, data_type_of, to_proto

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
PEER_CHECK_INTERVAL = 10.0
"""Seconds a check of the socket's owner holds (an agent restart may replace the socket)."""
FAST_SOCKET_GRACE = 0.5
"""Seconds :meth:`AgentClient.wait_ready` waits for the fast socket once the gRPC socket
answers (the agent opens the fast socket right after it) before it settles for gRPC."""
READY_POLL = 0.02
"""Seconds between :meth:`AgentClient.wait_ready`'s looks at the sockets."""


def _grpc() -> Any:
    """The grpc module, imported by the first call that goes over gRPC, not with this
    module: a client that the agent's fast socket serves never loads it (16 MB)."""
    import grpc

    return grpc


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    """-1 marks a dimension the model leaves open."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    url: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    version: str | None = None
    """The package's version; None from an agent that does not report it (the original)."""
    package_sha256: str | None = None
    """sha256 of the package archive as the agent knows it (see edgekit.agent.identity)."""
    package_sha256_source: str | None = None
    """"archive" or "install-marker"; None when the sha256 is unknown."""
    key_fingerprint: str | None = None
    """Fingerprint of the public key the agent verified the package with."""


def _tensor_info(meta: Any) -> TensorInfo:
    return TensorInfo(meta.name, DATA_TYPES[meta.data_type], tuple(int(d) for d in meta.shape))


def _model_info(model: Any) -> ModelInfo:
    return ModelInfo(
        name=model.name,
        url=model.url,
        inputs=tuple(_tensor_info(m) for m in model.input_tensor_metadatas),
        outputs=tuple(_tensor_info(m) for m in model.output_tensor_metadatas),
        version=model.version or None,
        package_sha256=model.package_sha256 or None,
        package_sha256_source=model.package_sha256_source or None,
        key_fingerprint=model.key_fingerprint or None,
    )


def socket_path_of(target: str) -> str | None:
    """The filesystem path of a ``unix:`` gRPC target; None for other targets."""
    if target.startswith("unix://"):
        return target[len("unix://") :]
    if target.startswith("unix:"):
        return target[len("unix:") :]
    return None


MAX_REMEMBERED = 16
"""Serialized requests and replies a client remembers (one model's repeat calls need two)."""


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= MAX_REMEMBERED:
        cache.clear()
    cache[key] = value


def _predict_request(
    name: str,
    placed: list[tuple[str, str, np.dtype, tuple[int, ...], int]],
    target: tuple[str, int] | None,
) -> Any:
    """A PredictRequest for tensors already in shared memory: ``placed`` holds each
    input's name, segment, dtype, shape and size; ``target`` the output segment and size."""
    request = agent_pb2.PredictRequest(name=name)
    for tensor_name, segment, dtype, shape, nbytes in placed:
        tensor = request.tensors.add()
        meta = tensor.tensor_metadata
        meta.name = tensor_name
        meta.data_type = data_type_of(dtype)
        meta.shape.extend(int(d) for d in shape)
        handle = tensor.shared_memory_handle
        handle.segment_name = segment
        handle.offset = 0
        handle.size = nbytes
    if target is not None:
        out = request.output_shared_memory
        out.segment_name, out.size = target
        out.offset = 0
    return request


def to_array(tensor: Any) -> np.ndarray:
    """A (writable) numpy array from a response Tensor."""
    meta = tensor.tensor_metadata
    dtype = DATA_TYPES[meta.data_type]
    return np.frombuffer(tensor.byte_data, dtype=dtype).reshape(tuple(meta.shape)).copy()


class AgentClient:
    """``AgentClient("/run/edgekit/agent.sock")``: load, describe, predict, capture.

    Every failed call raises :class:`~edgekit.agent.status.AgentStatusError`
    (an :class:`~edgekit.errors.AgentError`) carrying the gRPC status code.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        fast_predict: bool = True,
    ) -> None:
        """``fast_predict``: send shared-memory Predicts over the agent's fast socket
        (:mod:`edgekit.agent.fastpath`) when it has one; gRPC otherwise."""
        path = str(socket_path)
        self.target = path if path.startswith("unix:") else f"unix://{Path(path).absolute()}"
        self.timeout = timeout
        self._channel: Any = None
        self._stub: Any = None
        self._channel_lock = threading.Lock()
        self._pool: SharedMemoryPool | None = None
        self._sealed_pool: SharedMemoryPool | None = None
        self._reserved: dict[int, tuple[Any, SharedMemoryPool]] = {}
        """Segments of :meth:`shared_array` arrays, by the array's address."""
        self._output_bytes: dict[str, int] = {}
        """Per model, the bytes its outputs took in shared memory last time."""
        self._requests: dict[tuple[Any, ...], bytes] = {}
        """Serialized fast-socket PredictRequests, by what they say (see _predict_shm)."""
        self._layouts: dict[tuple[bytes, str], list[tuple[Any, ...]]] = {}
        """By serialized PredictResponse and output segment, for replies whose outputs all
        lie in that segment: each output's name, dtype, shape, offset and size."""
        self._socket = socket_path_of(self.target)
        self._peer_checked_at: float | None = None
        self._fast = (
            FastPredictClient(
                fast_socket_path(self._socket),
                timeout=timeout,
                check_peer=lambda sock, where: check_connected_peer(sock, where, method="Predict"),
            )
            if fast_predict and self._socket is not None and sealed.available()
            else None
        )

    # -- plumbing --------------------------------------------------------------
    @property
    def stub(self) -> Any:
        """The gRPC stub (``agent_pb2_grpc.AgentStub``) on this client's channel, which is
        made (and grpc imported) on first use."""
        with self._channel_lock:
            if self._stub is None:
                from edgekit.agent.protos import agent_pb2_grpc  # imports grpc: see _grpc

                self._channel = _grpc().insecure_channel(
                    self.target,
                    options=[
                        ("grpc.enable_http_proxy", 0),
                        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                    ],
                )
                self._stub = agent_pb2_grpc.AgentStub(self._channel)
            return self._stub

    def check_peer(self, method: str = "") -> None:
        """Check who listens on the agent's socket (see :func:`check_peer`) unless a check
        passed less than PEER_CHECK_INTERVAL seconds ago."""
        if self._socket is None:
            return
        checked = self._peer_checked_at
        if checked is not None and time.monotonic() - checked < PEER_CHECK_INTERVAL:
            return
        if check_peer(self._socket, method=method):
            self._peer_checked_at = time.monotonic()

    def _call(self, method: str, request: Any) -> Any:
        self.check_peer(method)
        if self._fast is not None and method != "Predict":
            raw = self._fast.unary(method, request.SerializeToString())
            if raw is not None:
                return getattr(agent_pb2, f"{method}Response").FromString(raw)
        if self._stub is None and self._socket is not None and not listening(self._socket):
            # What gRPC would answer, without loading grpc (16 MB for the process's life)
            # while the agent is down, e.g. restarting.
            self._peer_checked_at = None
            raise AgentStatusError(
                "UNAVAILABLE",
                f"no agent answers on {self.target} (nothing listens there; is the agent running?)",
                method=method,
            )
        stub = self.stub
        grpc = _grpc()
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() is not None else "UNKNOWN"
            details = exc.details() or ""
            if code == "UNAVAILABLE":
                self._peer_checked_at = None  # whoever answers next is checked again
                details = f"no agent answers on {self.target} ({details})"
            raise AgentStatusError(code, details, method=method) from None

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the agent answers (it may still be starting): on its fast socket
        when it has one, else on gRPC."""
        deadline = time.monotonic() + timeout
        fast = None if self._fast is None else self._wait_fast(deadline)
        if fast is None and self._fast is not None:
            raise AgentStatusError(
                "UNAVAILABLE", f"no agent answered on {self.target} within {timeout:.0f} s"
            )
        if not fast:
            self.stub  # noqa: B018 -- makes the channel
            grpc = _grpc()
            try:
                grpc.channel_ready_future(self._channel).result(
                    timeout=max(0.0, deadline - time.monotonic())
                )
            except grpc.FutureTimeoutError:
                raise AgentStatusError(
                    "UNAVAILABLE", f"no agent answered on {self.target} within {timeout:.0f} s"
                ) from None
        self.check_peer()

    def _wait_fast(self, deadline: float) -> bool | None:
        """True once the agent's fast socket answers; False when its gRPC socket has
        answered for FAST_SOCKET_GRACE seconds without a fast socket beside it (an agent
        without one: the caller waits on gRPC); None when neither answered by
        ``deadline``."""
        assert self._fast is not None and self._socket is not None
        grpc_since = None
        while True:
            if self._fast.ready():
                return True
            now = time.monotonic()
            if check_peer(self._socket):
                grpc_since = now if grpc_since is None else grpc_since
                if now - grpc_since >= FAST_SOCKET_GRACE:
                    return False
            if now >= deadline:
                return None if grpc_since is None else False
            time.sleep(min(READY_POLL, max(0.0, deadline - now)))

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        with self._channel_lock:
            if self._channel is not None:
                self._channel.close()
        for pool in (self._pool, self._sealed_pool):
            if pool is not None:
                pool.close()
        self._pool = self._sealed_pool = None
        self._reserved = {}

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model management ------------------------------------------------------
    def load_model(self, name: str, url: str | os.PathLike[str]) -> ModelInfo:
        reply = self._call("LoadModel", agent_pb2.LoadModelRequest(url=str(url), name=name))
        return _model_info(reply.model)

    def unload_model(self, name: str) -> None:
        self._call("UnLoadModel", agent_pb2.UnLoadModelRequest(name=name))

    def list_models(self) -> list[ModelInfo]:
        reply = self._call("ListModels", agent_pb2.ListModelsRequest())
        return [_model_info(m) for m in reply.models]

    def describe_model(self, name: str) -> ModelInfo:
        reply = self._call("DescribeModel", agent_pb2.DescribeModelRequest(name=name))
        return _model_info(reply.model)

    # -- inference -------------------------------------------------------------
    def predict(
        self, name: str, inputs: dict[str, np.ndarray], *, shared_memory: bool = False
    ) -> dict[str, np.ndarray]:
        """Run model ``name``; inputs by tensor name, outputs by tensor name.

        With ``shared_memory`` the inputs go in shared memory segments of this client, and
        the outputs come back in one too (``output_shared_memory``, an edgekit addition),
        sized by the model's previous outputs: the first call learns the size from
        outputs sent inline, as an agent that does not know the field always sends them.
        Over the agent's fast socket the segments are sealed memfds the agent uses in
        place (:mod:`edgekit.agent.sealed`); over gRPC they are POSIX segments.
        """
        if shared_memory and self._fast is not None and self._fast.begin():
            try:
                outputs = self._predict_shm(name, inputs, self._sealed_segments(), self._fast)
            finally:
                self._fast.end()
            if outputs is not None:
                return outputs
        if shared_memory:
            outputs = self._predict_shm(name, inputs, self._segments(), None)
            assert outputs is not None  # gRPC answers or raises
            return outputs
        request = agent_pb2.PredictRequest(name=name)
        for tensor_name, value in inputs.items():
            to_proto(np.ascontiguousarray(value), tensor_name, request.tensors.add())
        reply = self._call("Predict", request)
        return {t.tensor_metadata.name: to_array(t) for t in reply.tensors}

    def shared_array(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A zeroed array in this client's shared memory: fill it (e.g. preprocess an image
        straight into it) and pass it to ``predict(..., shared_memory=True)``, which then
        sends it without copying it, whenever the call goes over the transport the array
        was made for (else it is copied, as any array). It stays this caller's until the
        client closes; it must not be filled again while a predict with it runs."""
        nbytes = max(math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize, 1)
        fast = self._fast is not None and self._fast.begin()
        if fast:
            assert self._fast is not None
            self._fast.end()
        pool = self._sealed_segments() if fast else self._segments()
        seg = pool.reserve(nbytes)
        array = np.ndarray(shape, dtype, buffer=seg.buf)
        self._reserved[array.__array_interface__["data"][0]] = (seg, pool)
        return array

    def _reserved_for(self, array: np.ndarray, pool: SharedMemoryPool) -> Any:
        """The reserved segment of ``pool`` that ``array`` is (from :meth:`shared_array`)."""
        seg, owner = self._reserved.get(array.__array_interface__["data"][0], (None, None))
        if seg is None or owner is not pool or not array.flags.c_contiguous:
            return None
        return seg if array.nbytes <= seg.size else None

    def _predict_shm(
        self,
        name: str,
        inputs: dict[str, np.ndarray],
        pool: SharedMemoryPool,
        fast: FastPredictClient | None,
    ) -> dict[str, np.ndarray] | None:
        """Predict with the tensors in ``pool``'s segments: over ``fast`` (registering each
        segment once; None when the connection broke) or, without it, over gRPC."""
        lent = []
        out_seg = None
        try:
            placed = []
            for tensor_name, value in inputs.items():
                array = np.ascontiguousarray(value)
                seg = self._reserved_for(array, pool)
                if seg is None:
                    seg = pool.acquire(max(array.nbytes, 1))
                    lent.append(seg)
                    dst = np.ndarray(array.shape, array.dtype, buffer=seg.buf)
                    dst[...] = array
                    del dst  # closing a segment refuses while views exist
                elif fast is not None and not fast.register(seg):
                    return None
                placed.append((tensor_name, seg.name, array.dtype, array.shape, array.nbytes))
            need = self._output_bytes.get(name)
            if need:
                out_seg = pool.acquire(need)
                lent.append(out_seg)
            target = None if out_seg is None else (out_seg.name, out_seg.size)
            if fast is None:
                reply = self._call("Predict", _predict_request(name, placed, target))
                outputs = {
                    t.tensor_metadata.name: self._to_array(t, out_seg) for t in reply.tensors
                }
            else:
                if not all(fast.register(seg) for seg in lent):
                    return None
                key = (name, tuple(placed), target)
                body = self._requests.get(key)
                if body is None:
                    body = _predict_request(name, placed, target).SerializeToString()
                    _remember(self._requests, key, body)
                raw = fast.send(body)
                if raw is None:
                    return None
                outputs = self._outputs(raw, out_seg)
        finally:
            for seg in lent:
                pool.release(seg)
        size = 0
        for array in outputs.values():
            size = -(-size // OUTPUT_ALIGN) * OUTPUT_ALIGN + array.nbytes
        self._output_bytes[name] = max(size, self._output_bytes.get(name, 0), 1)
        return outputs

    def _outputs(
        self, raw: bytes, out_seg: PosixSegment | SealedSegment | None
    ) -> dict[str, np.ndarray]:
        """The outputs of a serialized PredictResponse. One whose outputs all lie in
        ``out_seg`` is decoded once: the agent answers the same bytes for every image."""
        key = None if out_seg is None else (raw, out_seg.name)
        layout = self._layouts.get(key) if key is not None else None
        if layout is None:
            reply = agent_pb2.PredictResponse.FromString(raw)
            outputs = {t.tensor_metadata.name: self._to_array(t, out_seg) for t in reply.tensors}
            if key is not None and all(
                t.WhichOneof("data") == "shared_memory_handle" for t in reply.tensors
            ):
                layout = [
                    (
                        t.tensor_metadata.name,
                        DATA_TYPES[t.tensor_metadata.data_type],
                        tuple(t.tensor_metadata.shape),
                        int(t.shared_memory_handle.offset),
                        int(t.shared_memory_handle.size),
                    )
                    for t in reply.tensors
                ]
                _remember(self._layouts, key, layout)
            return outputs
        return {
            tensor_name: np.frombuffer(
                out_seg.buf, dtype=dtype, count=size // dtype.itemsize, offset=offset
            )
            .reshape(shape)
            .copy()
            for tensor_name, dtype, shape, offset, size in layout
        }

    def _sealed_segments(self) -> SharedMemoryPool:
        if self._sealed_pool is None:
            self._sealed_pool = SharedMemoryPool("edgekit-sealed", factory=SealedSegment)
        return self._sealed_pool

    def _segments(self) -> SharedMemoryPool:
        if self._pool is None:
            self._pool = SharedMemoryPool()
        return self._pool

    @staticmethod
    def _to_array(tensor: Any, out_seg: PosixSegment | SealedSegment | None) -> np.ndarray:
        """An output as a (writable) array: inline bytes, or copied out of ``out_seg``."""
        if tensor.WhichOneof("data") != "shared_memory_handle":
            return to_array(tensor)
        meta = tensor.tensor_metadata
        handle = tensor.shared_memory_handle
        offset, size = int(handle.offset), int(handle.size)
        if out_seg is None or handle.segment_name != out_seg.name or offset + size > out_seg.size:
            raise AgentStatusError(
                "INTERNAL",
                f"output {meta.name!r}: the agent answered with shared memory segment "
                f"{handle.segment_name!r} bytes {offset}..{offset + size}, which this client "
                "did not offer; the agent is not edgekit's, or a newer one: send "
                "shared_memory=False",
                method="Predict",
            )
        dtype = DATA_TYPES[meta.data_type]
        view = np.frombuffer(out_seg.buf, dtype=dtype, count=size // dtype.itemsize, offset=offset)
        return view.reshape(tuple(meta.shape)).copy()

    # -- capture ---------------------------------------------------------------
    def capture_data(
        self,
        model_name: str,
        capture_id: str,
        *,
        inputs: dict[str, np.ndarray] | None = None,
        outputs: dict[str, np.ndarray] | None = None,
        aux_inputs: dict[str, tuple[str, bytes]] | None = None,
        aux_outputs: dict[str, tuple[str, bytes]] | None = None,
        inference_time: float | None = None,
    ) -> None:
        """Capture tensors and auxiliary data; ``aux_*`` map a name to (encoding, bytes).

        Encodings are the API's: CSV, JSON, NONE, BASE64.
        """
        request = agent_pb2.CaptureDataRequest(model_name=model_name, capture_id=capture_id)
        when = time.time() if inference_time is None else inference_time
        request.inference_timestamp.seconds = int(when)
        request.inference_timestamp.nanos = int(round((when - int(when)) * 1e9)) % 1_000_000_000
        for name, value in (inputs or {}).items():
            to_proto(np.asarray(value), name, request.input_tensors.add())
        for name, value in (outputs or {}).items():
            to_proto(np.asarray(value), name, request.output_tensors.add())
        for target, items in ((request.inputs, aux_inputs), (request.outputs, aux_outputs)):
            for name, (encoding, data) in (items or {}).items():
                try:
                    enc = agent_pb2.Encoding.Value(encoding.upper())
                except ValueError:
                    raise AgentStatusError(
                        "INVALID_ARGUMENT",
                        f"auxiliary data {name!r}: encoding {encoding!r} is not one of "
                        + ", ".join(agent_pb2.Encoding.keys()),
                        method="CaptureData",
                    ) from None
                target.add(name=name, encoding=enc, byte_data=data)
        self._call("CaptureData", request)

    def capture_status(self, capture_id: str) -> str:
        """IN_PROGRESS, SUCCESS or FAILURE (the API's CaptureDataStatus names)."""
        reply = self._call(
            "GetCaptureDataStatus", agent_pb2.GetCaptureDataStatusRequest(capture_id=capture_id)
        )
        return agent_pb2.CaptureDataStatus.Name(reply.status)


__all__ = ["AgentClient", "ModelInfo", "TensorInfo", "check_peer", "to_array", "DATA_TYPE_NAMES"]
