"""The generated agent modules reproduce the SageMaker Edge Manager agent's wire contract.

EXPECTED below was transcribed from the public protoc output of the original
agent.proto (DougAnsonAustinTX/SageMakerEdgeAgentContainer,
sagemaker-agent-pt/commonjs/*.js and agent_grpc_pb.js, agent 1.20210820) and
the SageMaker developer guide page edge-manage-model.md. Wire compatibility
means: same package, service, method names and types; same message names;
for every field the same name, number, type, label and oneof; same enum values.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2

from edgekit.agent import agent_pb2, agent_pb2_grpc

F = descriptor_pb2.FieldDescriptorProto
S, B, U64, I32, I64 = F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_UINT64, F.TYPE_INT32, F.TYPE_INT64
MSG, ENUM = F.TYPE_MESSAGE, F.TYPE_ENUM
ONE, REP = "optional", "repeated"

# message -> [(field, number, type, label, message/enum type or None, oneof or None)]
EXPECTED: dict[str, list[tuple]] = {
    "TensorMetadata": [
        ("name", 1, S, ONE, None, None),
        ("data_type", 2, ENUM, ONE, "DataType", None),
        ("shape", 3, I32, REP, None, None),
    ],
    "SharedMemoryHandle": [
        ("size", 1, U64, ONE, None, None),
        ("offset", 2, U64, ONE, None, None),
        ("segment_id", 3, U64, ONE, None, None),
    ],
    "Tensor": [
        ("tensor_metadata", 1, MSG, ONE, "TensorMetadata", None),
        ("byte_data", 4, B, ONE, None, "data"),
        ("shared_memory_handle", 5, MSG, ONE, "SharedMemoryHandle", "data"),
    ],
    "Model": [
        ("url", 1, S, ONE, None, None),
        ("name", 2, S, ONE, None, None),
        ("input_tensor_metadatas", 3, MSG, REP, "TensorMetadata", None),
        ("output_tensor_metadatas", 4, MSG, REP, "TensorMetadata", None),
    ],
    "PredictRequest": [
        ("name", 1, S, ONE, None, None),
        ("tensors", 2, MSG, REP, "Tensor", None),
    ],
    "PredictResponse": [("tensors", 1, MSG, REP, "Tensor", None)],
    "LoadModelRequest": [("url", 1, S, ONE, None, None), ("name", 2, S, ONE, None, None)],
    "LoadModelResponse": [("model", 1, MSG, ONE, "Model", None)],
    "UnLoadModelRequest": [("name", 1, S, ONE, None, None)],
    "UnLoadModelResponse": [],
    "ListModelsRequest": [],
    "ListModelsResponse": [("models", 1, MSG, REP, "Model", None)],
    "DescribeModelRequest": [("name", 1, S, ONE, None, None)],
    "DescribeModelResponse": [("model", 1, MSG, ONE, "Model", None)],
    "Timestamp": [("seconds", 1, I64, ONE, None, None), ("nanos", 2, I32, ONE, None, None)],
    "AuxilaryData": [
        ("name", 1, S, ONE, None, None),
        ("encoding", 2, ENUM, ONE, "Encoding", None),
        ("byte_data", 3, B, ONE, None, "data"),
        ("shared_memory_handle", 4, MSG, ONE, "SharedMemoryHandle", "data"),
    ],
    "CaptureDataRequest": [
        ("model_name", 1, S, ONE, None, None),
        ("capture_id", 2, S, ONE, None, None),
        ("inference_timestamp", 3, MSG, ONE, "Timestamp", None),
        ("input_tensors", 4, MSG, REP, "Tensor", None),
        ("output_tensors", 5, MSG, REP, "Tensor", None),
        ("inputs", 6, MSG, REP, "AuxilaryData", None),
        ("outputs", 7, MSG, REP, "AuxilaryData", None),
    ],
    "CaptureDataResponse": [],
    "GetCaptureDataStatusRequest": [("capture_id", 1, S, ONE, None, None)],
    "GetCaptureDataStatusResponse": [("status", 1, ENUM, ONE, "CaptureDataStatus", None)],
}
EXPECTED_ENUMS = {
    "DataType": {
        "UINT8": 0,
        "INT16": 1,
        "INT32": 2,
        "INT64": 3,
        "FLOAT16": 4,
        "FLOAT32": 5,
        "FLOAT64": 6,
    },
    "Encoding": {"CSV": 0, "JSON": 1, "NONE": 2, "BASE64": 3},
    "CaptureDataStatus": {"FAILURE": 0, "SUCCESS": 1, "IN_PROGRESS": 2, "NOT_FOUND": 3},
}
EXPECTED_METHODS = {
    "Predict": ("PredictRequest", "PredictResponse"),
    "LoadModel": ("LoadModelRequest", "LoadModelResponse"),
    "UnLoadModel": ("UnLoadModelRequest", "UnLoadModelResponse"),
    "ListModels": ("ListModelsRequest", "ListModelsResponse"),
    "DescribeModel": ("DescribeModelRequest", "DescribeModelResponse"),
    "CaptureData": ("CaptureDataRequest", "CaptureDataResponse"),
    "GetCaptureDataStatus": ("GetCaptureDataStatusRequest", "GetCaptureDataStatusResponse"),
}
# Fields edgekit adds (wire compatible: a new number, ignored by old peers).
EDGEKIT_ADDITIONS = {
    ("SharedMemoryHandle", "segment_name"): (100, S),
    # Predict's outputs into the caller's shared memory (edgekit/agent/server.py).
    ("PredictRequest", "output_shared_memory"): (100, F.TYPE_MESSAGE),
    # What the agent verified at load (edgekit/agent/identity.py).
    ("Model", "version"): (100, S),
    ("Model", "package_sha256"): (101, S),
    ("Model", "package_sha256_source"): (102, S),
    ("Model", "key_fingerprint"): (103, S),
}

PACKAGE = "AWS.SageMaker.Edge"


def _file() -> descriptor_pb2.FileDescriptorProto:
    """The generated module's descriptor as a FileDescriptorProto (a stable API)."""
    proto = descriptor_pb2.FileDescriptorProto()
    agent_pb2.DESCRIPTOR.CopyToProto(proto)
    return proto


def _messages() -> dict[str, descriptor_pb2.DescriptorProto]:
    return {m.name: m for m in _file().message_type}


def test_package_and_file() -> None:
    proto = _file()
    assert proto.package == PACKAGE
    assert proto.syntax == "proto3"
    assert not proto.dependency  # self-contained, like the original (own Timestamp)
    assert set(_messages()) == set(EXPECTED)
    assert {e.name for e in proto.enum_type} == set(EXPECTED_ENUMS)


@pytest.mark.parametrize("message", sorted(EXPECTED))
def test_message_fields_match_the_original(message: str) -> None:
    desc = _messages()[message]
    assert not desc.nested_type and not desc.enum_type
    actual = {}
    for field in desc.field:
        if (message, field.name) in EDGEKIT_ADDITIONS:
            assert (field.number, field.type) == EDGEKIT_ADDITIONS[(message, field.name)]
            continue
        assert not field.proto3_optional
        sub = field.type_name.removeprefix(f".{PACKAGE}.") if field.type_name else None
        if field.type_name:
            assert field.type_name == f".{PACKAGE}.{sub}"
        actual[field.name] = (
            field.name,
            field.number,
            field.type,
            REP if field.label == F.LABEL_REPEATED else ONE,
            sub,
            desc.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None,
        )
    assert actual == {row[0]: row for row in EXPECTED[message]}


def test_additions_do_not_reuse_original_numbers() -> None:
    for (message, name), (number, _) in EDGEKIT_ADDITIONS.items():
        taken = {row[1] for row in EXPECTED[message]}
        assert number not in taken, f"{message}.{name}"
        assert name in {f.name for f in _messages()[message].field}


@pytest.mark.parametrize("enum", sorted(EXPECTED_ENUMS))
def test_enum_values_match_the_original(enum: str) -> None:
    (desc,) = [e for e in _file().enum_type if e.name == enum]
    assert {v.name: v.number for v in desc.value} == EXPECTED_ENUMS[enum]


def test_service_matches_the_original() -> None:
    (service,) = _file().service
    assert service.name == "Agent"
    methods = {
        m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
        for m in service.method
    }
    assert methods == {
        k: (f".{PACKAGE}.{i}", f".{PACKAGE}.{o}", False, False)
        for k, (i, o) in EXPECTED_METHODS.items()
    }
    # The paths the original clients call, e.g. /AWS.SageMaker.Edge.Agent/Predict.
    assert hasattr(agent_pb2_grpc, "AgentStub") and hasattr(agent_pb2_grpc, "AgentServicer")


def test_bytes_from_an_original_client_decode() -> None:
    """Bytes laid out by hand as the original's protoc output writes them decode as expected."""
    # SharedMemoryHandle{size=1: 12, offset=2: 4, segment_id=3: 7}: varint fields.
    handle = agent_pb2.SharedMemoryHandle.FromString(bytes([0x08, 12, 0x10, 4, 0x18, 7]))
    assert (handle.size, handle.offset, handle.segment_id, handle.segment_name) == (12, 4, 7, "")
    # TensorMetadata{name="x", data_type=FLOAT32(5), shape=[1, 3] packed}.
    meta = agent_pb2.TensorMetadata.FromString(bytes([0x0A, 1, ord("x"), 0x10, 5, 0x1A, 2, 1, 3]))
    assert (meta.name, meta.data_type, list(meta.shape)) == ("x", agent_pb2.FLOAT32, [1, 3])


def test_committed_code_matches_the_proto() -> None:
    pytest.importorskip("grpc_tools")
    from edgekit.agent.protos import generate

    problems = generate.check()
    assert not problems, "\n".join(problems)


def test_generated_modules_import_as_a_package_only() -> None:
    """agent_pb2_grpc imports agent_pb2 through the package, not from sys.path."""
    from pathlib import Path

    text = Path(agent_pb2_grpc.__file__).read_text(encoding="utf-8")
    assert "from edgekit.agent.protos import agent_pb2 as agent__pb2" in text
    assert "\nimport agent_pb2" not in text
    code = "import edgekit.agent.protos.agent_pb2_grpc as g; print(g.AgentStub.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "AgentStub"


def test_import_edgekit_agent_stays_light() -> None:
    code = (
        "import sys, edgekit.agent; "
        "print(any(m in sys.modules for m in ('grpc', 'onnxruntime', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _original_file() -> descriptor_pb2.FileDescriptorProto:
    """agent.proto rebuilt from the transcribed facts alone (no edgekit additions)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="sagemaker_edge_original/agent.proto", package=PACKAGE, syntax="proto3"
    )
    for enum, values in EXPECTED_ENUMS.items():
        e = proto.enum_type.add(name=enum)
        for name, number in values.items():
            e.value.add(name=name, number=number)
    for message, rows in EXPECTED.items():
        m = proto.message_type.add(name=message)
        oneofs: list[str] = []
        for name, number, ftype, label, sub, oneof in rows:
            f = m.field.add(name=name, number=number, type=ftype)
            f.label = F.LABEL_REPEATED if label == REP else F.LABEL_OPTIONAL
            if sub:
                f.type_name = f".{PACKAGE}.{sub}"
            if oneof:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    m.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
    service = proto.service.add(name="Agent")
    for method, (req, resp) in EXPECTED_METHODS.items():
        service.method.add(
            name=method, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}"
        )
    return proto


@pytest.mark.integration
def test_a_client_built_from_the_original_contract_works() -> None:
    """Messages built from the original's facts only, sent on the original method paths."""
    import shutil

    import grpc
    import numpy as np
    import onnxruntime as ort
    from google.protobuf import descriptor_pool, message_factory

    from edgekit.agent.server import AgentServer
    from edgekit.agent.testing import short_tempdir, signed_package

    pool = descriptor_pool.DescriptorPool()
    classes = message_factory.GetMessages([_original_file()], pool=pool)
    msg = {name.rsplit(".", 1)[1]: cls for name, cls in classes.items()}
    assert "segment_name" not in msg["SharedMemoryHandle"].DESCRIPTOR.fields_by_name

    work = short_tempdir()
    try:
        pkg = signed_package(work)
        with AgentServer(work / "o.sock", pkg.public_key) as server:
            channel = grpc.insecure_channel(server.target)

            def call(method: str, request: object) -> object:
                _, resp = EXPECTED_METHODS[method]
                rpc = channel.unary_unary(
                    f"/{PACKAGE}.Agent/{method}",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=msg[resp].FromString,
                )
                return rpc(request, timeout=30)

            model = call("LoadModel", msg["LoadModelRequest"](url=str(pkg.package), name="orig"))
            assert model.model.name == "orig"
            meta = call("DescribeModel", msg["DescribeModelRequest"](name="orig"))
            meta = meta.model.input_tensor_metadatas[0]
            x = np.random.default_rng(1).standard_normal(list(meta.shape)).astype(np.float32)
            tensor = msg["Tensor"](byte_data=x.tobytes())
            tensor.tensor_metadata.CopyFrom(meta)
            reply = call("Predict", msg["PredictRequest"](name="orig", tensors=[tensor]))
            session = ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"])
            want = session.run(None, {meta.name: x})
            for out, expected in zip(reply.tensors, want, strict=True):
                got = np.frombuffer(out.byte_data, np.float32).reshape(
                    list(out.tensor_metadata.shape)
                )
                np.testing.assert_array_equal(got, expected)
            listed = call("ListModels", msg["ListModelsRequest"]())
            assert [m.name for m in listed.models] == ["orig"]
            call("UnLoadModel", msg["UnLoadModelRequest"](name="orig"))
            with pytest.raises(grpc.RpcError) as info:
                call("GetCaptureDataStatus", msg["GetCaptureDataStatusRequest"](capture_id="x"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            channel.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_generated_modules_sit_with_their_proto_and_keep_their_public_names() -> None:
    from pathlib import Path

    from edgekit.agent import protos
    from edgekit.agent.protos import agent_pb2 as direct

    folder = Path(protos.__file__).parent
    assert {"agent.proto", "generate.py", "agent_pb2.py", "agent_pb2_grpc.py"} <= {
        p.name for p in folder.iterdir()
    }
    assert agent_pb2 is direct and Path(agent_pb2_grpc.__file__).parent == folder
    for module in (agent_pb2, agent_pb2_grpc):
        assert "DO NOT EDIT" in Path(module.__file__).read_text(encoding="utf-8")[:200]
