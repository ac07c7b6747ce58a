"""The model agent: the SageMaker Edge Manager agent's gRPC service on a unix socket.

``AgentServer`` serves ``AWS.SageMaker.Edge.Agent`` (see protos/agent.proto)
with a thread pool, so Predicts for one or several models run concurrently.
Requests that the API defines as failing end with the status code the API
names (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, FAILED_PRECONDITION, ...)
and a message that says what to fix. Beside it, the fast socket
(:mod:`edgekit.agent.fastpath`) serves shared-memory Predicts and, as CALLs, every
other method, with the same code, status codes and messages.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from edgekit.agent.capture import CapturedData, CapturedTensor, CaptureStore, CaptureUploader
from edgekit.agent.fastpath import FastPredictServer, fast_socket_path
from edgekit.agent.identity import PackageIdentity
from edgekit.agent.models import (
    ModelRegistry,
    TensorSpec,
    check_input,
    input_specs,
    output_specs,
)
from edgekit.agent.paths import GRPC_SOCKET_LIMIT
from edgekit.agent.protos import agent_pb2, agent_pb2_grpc
from edgekit.agent.sealed import MappedSegments
from edgekit.agent.shm import BufferPool, Lease, SegmentCache
from edgekit.agent.status import AgentStatusError, invalid_argument
from edgekit.agent.tensors import DATA_TYPES, dtype_name, from_bytes, set_metadata, to_proto
from edgekit.errors import AgentError, PackageError
from edgekit.model.loaded import LoadedModel
from edgekit.package import load_public_key
from edgekit.package.keys import load_public_keys
from edgekit.unix_socket import clear_stale_socket

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
UNARY_METHODS = (
    "LoadModel",
    "UnLoadModel",
    "ListModels",
    "DescribeModel",
    "CaptureData",
    "GetCaptureDataStatus",
)
"""The methods the fast socket serves as CALLs (Predict has its own frames)."""


class _CallContext:
    """The part of a grpc.ServicerContext the methods use, for a CALL on the fast socket:
    ``abort`` raises the AgentStatusError the fast socket answers with."""

    @staticmethod
    def abort(code: grpc.StatusCode, details: str) -> NoReturn:
        raise AgentStatusError(code.name, details)


def _model_proto(model: LoadedModel, identity: PackageIdentity | None) -> agent_pb2.Model:
    def meta(spec: TensorSpec) -> agent_pb2.TensorMetadata:
        return agent_pb2.TensorMetadata(name=spec.name, data_type=spec.data_type, shape=spec.shape)

    return agent_pb2.Model(
        url=model.source,
        name=model.name,
        input_tensor_metadatas=[meta(s) for s in input_specs(model)],
        output_tensor_metadatas=[meta(s) for s in output_specs(model)],
        version=model.version or "",
        package_sha256=(identity.package_sha256 or "") if identity else "",
        package_sha256_source=(identity.source or "") if identity else "",
        key_fingerprint=identity.key_fingerprint if identity else "",
    )


@dataclass
class _Prepared:
    """A fast-socket Predict whose tensors all lie in the connection's sealed segments,
    decoded and checked once: ``feeds`` are views of the mappings, ``responses`` the
    serialized replies by the outputs' (name, dtype, shape), whose placement in the
    output segment is the same every call."""

    model: LoadedModel
    feeds: dict[str, np.ndarray]
    request: Any
    responses: dict[tuple[tuple[str, str, tuple[int, ...]], ...], bytes] = field(
        default_factory=dict
    )


def _byte_chunks(results: list[tuple[str, np.ndarray]]) -> list[memoryview]:
    """Each output's bytes, in order, as written into an output segment."""
    return [memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)) for _, a in results]


def _all_sealed(request: Any, sealed: MappedSegments) -> bool:
    """Every input and the output target of ``request`` lie in ``sealed`` segments."""
    if not request.HasField("output_shared_memory"):
        return False
    if request.output_shared_memory.segment_name not in sealed:
        return False
    return all(
        t.WhichOneof("data") == "shared_memory_handle"
        and t.shared_memory_handle.segment_name in sealed
        for t in request.tensors
    )


class AgentServicer(agent_pb2_grpc.AgentServicer):
    """The seven RPCs, on top of a model registry, a segment cache and a capture store."""

    def __init__(
        self,
        registry: ModelRegistry,
        segments: SegmentCache,
        captures: CaptureStore | None,
        buffers: BufferPool | None = None,
    ) -> None:
        self.registry = registry
        self.segments = segments
        self.captures = captures
        self.buffers = buffers if buffers is not None else BufferPool()

    # -- helpers ---------------------------------------------------------------
    def _proto(self, model: LoadedModel) -> agent_pb2.Model:
        return _model_proto(model, self.registry.identity(model.name))

    @staticmethod
    def _abort(context: grpc.ServicerContext, method: str, exc: AgentStatusError) -> None:
        log.info("%s refused: %s %s", method, exc.code, exc.details)
        context.abort(getattr(grpc.StatusCode, exc.code), exc.details)

    def _data(
        self,
        tensor: Any,
        *,
        what: str,
        lease: Lease | None = None,
        sealed: MappedSegments | None = None,
    ) -> bytes | memoryview:
        kind = tensor.WhichOneof("data")
        if kind == "byte_data":
            return tensor.byte_data
        if kind == "shared_memory_handle":
            handle = tensor.shared_memory_handle
            if sealed is not None and handle.segment_name in sealed:
                return sealed.read(handle, what=what)  # in place: nobody can shrink it
            into = lease.take if lease is not None else None
            return self.segments.read(tensor.shared_memory_handle, what=what, into=into)
        raise invalid_argument(f"{what}: carries no data (set byte_data or shared_memory_handle)")

    def _feeds(
        self,
        model: LoadedModel,
        tensors: Any,
        lease: Lease | None = None,
        sealed: MappedSegments | None = None,
    ) -> dict[str, np.ndarray]:
        """The model's feeds; shared-memory inputs are read into ``lease``'s buffers (sealed
        segments the fast socket registered are used in place)."""
        inputs = input_specs(model)
        specs = {s.name: s for s in inputs}
        feeds: dict[str, np.ndarray] = {}
        if len(tensors) != len(inputs):
            raise invalid_argument(
                f"model {model.name!r} takes {len(inputs)} input tensor(s) "
                f"({', '.join(s.name for s in inputs)}), the request has {len(tensors)}"
            )
        for position, tensor in enumerate(tensors):
            has_meta = tensor.HasField("tensor_metadata")
            meta = tensor.tensor_metadata
            if has_meta and meta.name:
                spec = specs.get(meta.name)
                if spec is None:
                    raise invalid_argument(
                        f"model {model.name!r} has no input named {meta.name!r}; its inputs: "
                        + ", ".join(f"{s.name} ({s.describe()})" for s in inputs)
                    )
            else:
                spec = inputs[position]  # metadata is optional: match by position
            if spec.name in feeds:
                raise invalid_argument(f"input {spec.name!r} is given twice")
            if has_meta:
                data_type, shape = int(meta.data_type), [int(d) for d in meta.shape]
            else:
                if any(d < 0 for d in spec.shape):
                    raise invalid_argument(
                        f"model {model.name!r} input {spec.name!r} has open dimensions "
                        f"{spec.describe()}; send tensor_metadata with the actual shape"
                    )
                data_type, shape = spec.data_type, spec.shape
            check_input(spec, data_type, shape, model=model.name)
            data = self._data(tensor, what=f"input {spec.name!r}", lease=lease, sealed=sealed)
            feeds[spec.name] = from_bytes(data, data_type, shape, name=spec.name)
        return feeds

    def _captured_tensor(self, tensor: Any, index: int, group: str) -> CapturedTensor:
        meta = tensor.tensor_metadata if tensor.HasField("tensor_metadata") else None
        name = (meta.name if meta else "") or f"{group}{index}"
        data = self._data(tensor, what=f"{group} {name!r}")
        if meta is not None and meta.data_type in DATA_TYPES:
            shape = [int(d) for d in meta.shape]
            try:
                array = from_bytes(data, meta.data_type, shape, name=name)
            except AgentStatusError:
                array = None
            if array is not None:
                return CapturedTensor(
                    name, array=array, data_type=dtype_name(meta.data_type), shape=shape
                )
        return CapturedTensor(
            name,
            raw=bytes(data),
            data_type=dtype_name(meta.data_type) if meta else None,
            shape=[int(d) for d in meta.shape] if meta else None,
        )

    def _captured_aux(self, item: Any, index: int, group: str) -> CapturedData:
        name = item.name or f"{group}{index}"
        data = self._data(item, what=f"auxiliary {group} {name!r}")
        return CapturedData(name, agent_pb2.Encoding.Name(item.encoding), bytes(data))

    # -- RPCs ------------------------------------------------------------------
    @staticmethod
    def _run(model: LoadedModel, feeds: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        try:
            return model.run(feeds)
        except Exception as exc:  # onnxruntime's exception types are not importable
            raise AgentStatusError(
                "INTERNAL", f"model {model.name!r} failed to run: {exc}"
            ) from None

    def predict(self, request: Any, sealed: MappedSegments | None = None) -> Any:
        """A PredictResponse, or AgentStatusError: Predict on either transport (gRPC, or
        :mod:`edgekit.agent.fastpath`, whose connection may have registered ``sealed``
        segments)."""
        # Shared-memory inputs go into buffers borrowed for this call; the outputs are
        # copied into the response before the buffers go back (an output may alias an input).
        with self.buffers.lease() as lease:
            model = self.registry.get(request.name)
            feeds = self._feeds(model, request.tensors, lease, sealed)
            results = self._run(model, feeds)
            response = self._response(request, results, sealed)
            del feeds, results
        return response

    def predict_serialized(self, body: bytes, sealed: MappedSegments | None = None) -> bytes:
        """:meth:`predict` on a serialized PredictRequest (the fast path's handler).

        A request whose tensors all lie in ``sealed`` segments is decoded once per
        connection (:class:`_Prepared`): a client sends the same bytes for every image,
        so a repeat skips the decoding and the checks (they depend on nothing else but
        the model, which must still be the one loaded under that name).
        """
        try:
            prepared = sealed.prepared(body) if sealed is not None else None
            if isinstance(prepared, _Prepared):
                reply = self._predict_prepared(prepared, sealed)
                if reply is not None:
                    return reply
            try:
                request = agent_pb2.PredictRequest.FromString(body)
            except DecodeError:
                raise invalid_argument("the request is not a serialized PredictRequest") from None
            if sealed is not None and _all_sealed(request, sealed):
                model = self.registry.get(request.name)
                feeds = self._feeds(model, request.tensors, None, sealed)
                prepared = _Prepared(model, feeds, request)
                sealed.prepare(body, prepared)
                reply = self._predict_prepared(prepared, sealed)
                assert reply is not None  # the model was just taken from the registry
                return reply
            return self.predict(request, sealed).SerializeToString()
        except AgentStatusError as exc:
            log.info("Predict refused: %s %s", exc.code, exc.details)
            raise

    def _predict_prepared(self, prepared: _Prepared, sealed: MappedSegments) -> bytes | None:
        """Run a prepared request: the serialized response, or None when its model was
        unloaded or loaded again since (decode the request again)."""
        model = self.registry.get(prepared.model.name)
        if model is not prepared.model:
            return None
        results = self._run(model, prepared.feeds)
        signature = tuple((name, array.dtype.str, array.shape) for name, array in results)
        cached = prepared.responses.get(signature)
        if cached is None:
            response = self._response(prepared.request, results, sealed)
            del results
            reply = response.SerializeToString()
            if all(t.WhichOneof("data") == "shared_memory_handle" for t in response.tensors):
                prepared.responses[signature] = reply  # only the placement: same every call
            return reply
        placed = sealed.write(
            prepared.request.output_shared_memory,
            _byte_chunks(results),
            what="output_shared_memory",
        )
        assert placed is not None  # the same sizes fitted when the reply was cached
        return cached

    def call_serialized(self, method: str, body: bytes) -> bytes:
        """RPC ``method`` (one of :data:`UNARY_METHODS`) on a serialized request (the fast
        socket's CALL handler): the serialized response, or AgentStatusError with the code
        and details the gRPC call ends with."""
        if method not in UNARY_METHODS:
            raise AgentStatusError("UNIMPLEMENTED", f"Method not found: {method}")
        try:
            request = getattr(agent_pb2, f"{method}Request").FromString(body)
        except DecodeError:
            raise invalid_argument(f"the request is not a serialized {method}Request") from None
        return getattr(self, method)(request, _CallContext()).SerializeToString()

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            return self.predict(request)
        except AgentStatusError as exc:
            self._abort(context, "Predict", exc)

    def _response(
        self, request: Any, results: list[tuple[str, Any]], sealed: MappedSegments | None = None
    ) -> Any:
        """The outputs in the caller's output_shared_memory if they fit there, else inline."""
        response = agent_pb2.PredictResponse()
        arrays = [(name, np.ascontiguousarray(array)) for name, array in results]
        placed = None
        if request.HasField("output_shared_memory"):
            target = request.output_shared_memory
            into = self.segments
            if sealed is not None and target.segment_name in sealed:
                into = sealed
            placed = into.write(target, _byte_chunks(arrays), what="output_shared_memory")
        if placed is None:
            for name, array in arrays:
                to_proto(array, name, response.tensors.add())
            return response
        for (name, array), (offset, size) in zip(arrays, placed, strict=True):
            tensor = response.tensors.add()
            set_metadata(tensor, array, name)
            handle = tensor.shared_memory_handle
            handle.segment_name = target.segment_name
            handle.offset = offset
            handle.size = size
        return response

    def LoadModel(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            model = self.registry.load(request.name, request.url)
        except AgentStatusError as exc:
            self._abort(context, "LoadModel", exc)
        identity = self.registry.identity(model.name)
        log.info(
            "loaded model %s %s from %s (package sha256 %s from %s, verified with key %s)",
            model.name,
            model.version,
            model.source,
            identity.package_sha256 if identity else None,
            identity.source if identity else None,
            identity.key_fingerprint if identity else None,
        )
        return agent_pb2.LoadModelResponse(model=self._proto(model))

    def UnLoadModel(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            model = self.registry.unload(request.name)
        except AgentStatusError as exc:
            self._abort(context, "UnLoadModel", exc)
        log.info("unloaded model %s", model.name)
        return agent_pb2.UnLoadModelResponse()

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return agent_pb2.ListModelsResponse(models=[self._proto(m) for m in self.registry.list()])

    def DescribeModel(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            model = self.registry.get(request.name)
        except AgentStatusError as exc:
            self._abort(context, "DescribeModel", exc)
        return agent_pb2.DescribeModelResponse(model=self._proto(model))

    def CaptureData(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            if self.captures is None:
                raise AgentStatusError(
                    "FAILED_PRECONDITION",
                    "data capture is not configured on this agent; start it with --capture-dir",
                )
            when = None
            if request.HasField("inference_timestamp"):
                ts = request.inference_timestamp
                if not 0 <= ts.nanos < 1_000_000_000:
                    raise invalid_argument(
                        f"inference_timestamp.nanos={ts.nanos} must be in 0..999999999"
                    )
                when = ts.seconds + ts.nanos / 1e9
            self.captures.capture(
                model_name=request.model_name,
                capture_id=request.capture_id,
                inference_time=when,
                input_tensors=[
                    self._captured_tensor(t, i, "input")
                    for i, t in enumerate(request.input_tensors)
                ],
                output_tensors=[
                    self._captured_tensor(t, i, "output")
                    for i, t in enumerate(request.output_tensors)
                ],
                inputs=[self._captured_aux(a, i, "inputs") for i, a in enumerate(request.inputs)],
                outputs=[
                    self._captured_aux(a, i, "outputs") for i, a in enumerate(request.outputs)
                ],
            )
        except AgentStatusError as exc:
            self._abort(context, "CaptureData", exc)
        return agent_pb2.CaptureDataResponse()

    def GetCaptureDataStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            if self.captures is None:
                raise AgentStatusError(
                    "NOT_FOUND",
                    f"capture_id {request.capture_id!r} is not known: capture is not configured",
                )
            status = self.captures.status(request.capture_id)
        except AgentStatusError as exc:
            self._abort(context, "GetCaptureDataStatus", exc)
        return agent_pb2.GetCaptureDataStatusResponse(
            status=agent_pb2.CaptureDataStatus.Value(status)
        )


class AgentServer:
    """Serves the agent API on ``unix://<socket_path>`` until :meth:`stop`."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        public_key_path: str | os.PathLike[str] | None,
        capture_dir: str | os.PathLike[str] | None = None,
        capture_uploader: CaptureUploader | None = None,
        max_workers: int = 8,
        *,
        intra_op_threads: int = 0,
        additional_public_keys: str | os.PathLike[str] | None = None,
        unsigned_onnx: bool = False,
        fast_predict: bool = True,
    ) -> None:
        """``public_key_path`` may be None only with ``unsigned_onnx`` (the SageMaker Edge
        Manager stand-in: plain ONNX models load unverified, see
        :class:`~edgekit.agent.models.ModelRegistry`). ``fast_predict``: also serve
        Predict on ``<socket>.predict`` (:mod:`edgekit.agent.fastpath`), which
        :class:`~edgekit.agent.client.AgentClient` uses for shared-memory Predicts, and
        every other call but Predict as CALLs."""
        self.socket_path = Path(socket_path)
        if len(os.fsencode(self.socket_path.absolute())) > GRPC_SOCKET_LIMIT:
            raise AgentError(
                f"socket path {self.socket_path} is longer than {GRPC_SOCKET_LIMIT} bytes, "
                "gRPC's unix socket limit; choose a shorter path"
            )
        if capture_uploader is not None and capture_dir is None:
            raise AgentError("capture upload needs a capture folder (capture_dir / --capture-dir)")
        public_key = None
        if public_key_path is not None:
            try:
                public_key = load_public_key(Path(public_key_path))
            except Exception as exc:
                raise AgentError(f"{public_key_path}: cannot read the public key ({exc})") from exc
        additional = []
        if additional_public_keys is not None:
            try:
                additional = load_public_keys(Path(additional_public_keys))
            except PackageError as exc:
                raise AgentError(
                    f"{additional_public_keys}: cannot read the additional public keys ({exc})"
                ) from exc
        self.registry = ModelRegistry(
            public_key,
            additional_keys=additional,
            intra_op_threads=intra_op_threads,
            unsigned_onnx=unsigned_onnx,
        )
        self.segments = SegmentCache()
        self.buffers = BufferPool(per_size=max(1, max_workers))
        """Buffers Predict reads shared-memory inputs into, reused across calls."""
        self.captures = (
            CaptureStore(capture_dir, capture_uploader) if capture_dir is not None else None
        )
        self.max_workers = max_workers
        self.fast_path = fast_socket_path(self.socket_path)
        self._fast_predict = fast_predict and FastPredictServer.usable(self.fast_path)
        self._fast: FastPredictServer | None = None
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"unix://{self.socket_path.absolute()}"

    def start(self) -> AgentServer:
        with self._lock:
            if self._server is not None:
                return self
            self._remove_stale_socket()
            self.socket_path.parent.mkdir(parents=True, exist_ok=True)
            if self.captures is not None:
                self.captures.start()
            server = grpc.server(
                futures.ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="edgekit-agent"
                ),
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ],
            )
            servicer = AgentServicer(self.registry, self.segments, self.captures, self.buffers)
            agent_pb2_grpc.add_AgentServicer_to_server(servicer, server)
            try:
                server.add_insecure_port(self.target)
            except RuntimeError as exc:
                if self.captures is not None:
                    self.captures.stop()
                raise AgentError(f"cannot listen on {self.target}: {exc}") from exc
            server.start()
            # Only the agent's user (and root) may talk to it: the socket runs models.
            os.chmod(self.socket_path, 0o660)
            self._server = server
            if self._fast_predict:
                try:
                    self._fast = FastPredictServer(
                        self.fast_path,
                        servicer.predict_serialized,
                        max_connections=self.max_workers,
                        calls=servicer.call_serialized,
                    ).start()
                except AgentError:
                    self._server = None
                    server.stop(None).wait()
                    self.socket_path.unlink(missing_ok=True)
                    if self.captures is not None:
                        self.captures.stop()
                    raise
            log.info(
                "agent listening on %s; trusted keys: %s",
                self.target,
                ", ".join(self.registry.key_fingerprints) or "none",
            )
            return self

    def _remove_stale_socket(self) -> None:
        state = clear_stale_socket(self.socket_path)
        if state == "free":
            return
        if state == "not a socket":
            raise AgentError(
                f"{self.socket_path} exists and is not a socket; remove it or choose another path"
            )
        raise AgentError(
            f"another process is serving on {self.socket_path}; stop it or choose another path"
        )

    def stop(self, grace: float | None = 2.0) -> None:
        """Finish running requests (up to ``grace`` seconds), then close everything."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.stop(grace)
        server.stop(grace).wait()
        if self.captures is not None:
            self.captures.stop()
        self.segments.close()
        self.buffers.clear()
        self.socket_path.unlink(missing_ok=True)

    def wait(self, timeout: float | None = None) -> bool:
        server = self._server
        return True if server is None else server.wait_for_termination(timeout)

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
