"""The agent reports what it verified: the package archive's sha256 and its own key's fingerprint.

Both directions of the API extension (Model fields 100-103) are tested: an
original client reads an edgekit agent's replies, and edgekit's client reads
an agent that does not fill the new fields (as the original agent).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from edgekit.agent import agent_pb2, agent_pb2_grpc
from edgekit.agent.client import AgentClient
from edgekit.agent.identity import ARCHIVE, INSTALL_MARKER, identify, marker_path, read_marker
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, signed_package
from edgekit.files import sha256_file
from edgekit.package.keys import fingerprint, key_id, load_public_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pkg(workdir: Path) -> SignedPackage:
    return signed_package(workdir, version="2.3.4")


@pytest.fixture(scope="module")
def client(workdir: Path, pkg: SignedPackage) -> Iterator[AgentClient]:
    with (
        AgentServer(workdir / "id.sock", pkg.public_key) as server,
        AgentClient(server.socket_path) as c,
    ):
        yield c


def _unpack(pkg: SignedPackage, folder: Path) -> Path:
    if not folder.exists():
        with tarfile.open(pkg.package) as tar:
            tar.extractall(folder, filter="data")
    return folder


def test_fingerprint_is_the_key_id_of_a_key_path_or_pem(pkg: SignedPackage) -> None:
    key = load_public_key(pkg.public_key)
    assert fingerprint(pkg.public_key) == key_id(key) == fingerprint(pkg.public_key.read_bytes())
    assert len(fingerprint(key)) == 16


def test_an_archive_is_hashed_by_the_agent(client: AgentClient, pkg: SignedPackage) -> None:
    info = client.load_model("arch", pkg.package)
    try:
        assert info.package_sha256 == sha256_file(pkg.package)
        assert info.package_sha256_source == ARCHIVE
        assert info.key_fingerprint == fingerprint(pkg.public_key)
        assert info.version == "2.3.4"
        assert client.describe_model("arch") == info
        assert [m for m in client.list_models() if m.name == "arch"] == [info]
    finally:
        client.unload_model("arch")


def test_a_folder_reports_the_install_marker_or_nothing(
    client: AgentClient, pkg: SignedPackage, workdir: Path
) -> None:
    folder = _unpack(pkg, workdir / "installed" / "package")
    marker_path(folder).unlink(missing_ok=True)
    info = client.load_model("nomarker", folder)
    client.unload_model("nomarker")
    assert (info.package_sha256, info.package_sha256_source) == (None, None)
    assert info.key_fingerprint == fingerprint(pkg.public_key)  # verified all the same

    marker_path(folder).write_text(sha256_file(pkg.package))  # as the model component writes it
    info = client.load_model("marker", folder)
    client.unload_model("marker")
    assert info.package_sha256 == sha256_file(pkg.package)
    assert info.package_sha256_source == INSTALL_MARKER
    marker_path(folder).unlink()


@pytest.mark.parametrize(
    ("content", "sha", "problem"),
    [
        (None, None, None),
        ("a" * 64 + "\n", "a" * 64, None),
        ("A" * 64, "a" * 64, None),
        ("not a hash", None, "not a sha256 of 64 hex digits"),
        ("a" * 63, None, "not a sha256"),
        (b"\xff\xfe", None, "cannot read the install marker"),
    ],
    ids=["absent", "newline", "uppercase", "text", "short", "binary"],
)
def test_read_marker_table(
    tmp_path: Path, content: str | bytes | None, sha: str | None, problem: str | None
) -> None:
    folder = tmp_path / "package"
    folder.mkdir()
    if isinstance(content, bytes):
        marker_path(folder).write_bytes(content)
    elif content is not None:
        marker_path(folder).write_text(content)
    got_sha, got_problem = read_marker(folder)
    assert got_sha == sha
    if problem is None:
        assert got_problem is None
    else:
        assert problem in got_problem and str(marker_path(folder)) in got_problem
    identity = identify(folder, "f" * 16)
    assert identity.package_sha256 == sha and identity.key_fingerprint == "f" * 16


def test_a_package_signed_by_another_key_names_both_fingerprints(
    client: AgentClient, pkg: SignedPackage, workdir: Path
) -> None:
    other = signed_package(workdir / "other", name="other", key_dir=workdir / "other-keys")
    with pytest.raises(AgentStatusError) as info:
        client.load_model("other", other.package)
    details = info.value.details
    assert info.value.code == "FAILED_PRECONDITION"
    assert fingerprint(other.public_key) in details  # the signer's
    assert fingerprint(pkg.public_key) in details  # the agent's
    assert str(other.package) in details
    assert "other" not in [m.name for m in client.list_models()]


def _original_model_file() -> descriptor_pb2.FileDescriptorProto:
    """Model and DescribeModelResponse as the original agent.proto has them (no 100+ fields)."""
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="original_model.proto", package="Orig", syntax="proto3"
    )
    meta = proto.message_type.add(name="TensorMetadata")
    meta.field.add(name="name", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    meta.field.add(name="data_type", number=2, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    meta.field.add(name="shape", number=3, type=f.TYPE_INT32, label=f.LABEL_REPEATED)
    model = proto.message_type.add(name="Model")
    model.field.add(name="url", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    model.field.add(name="name", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    for number, name in ((3, "input_tensor_metadatas"), (4, "output_tensor_metadatas")):
        model.field.add(
            name=name,
            number=number,
            type=f.TYPE_MESSAGE,
            label=f.LABEL_REPEATED,
            type_name=".Orig.TensorMetadata",
        )
    reply = proto.message_type.add(name="DescribeModelResponse")
    reply.field.add(
        name="model", number=1, type=f.TYPE_MESSAGE, label=f.LABEL_OPTIONAL, type_name=".Orig.Model"
    )
    return proto


def test_an_original_client_reads_an_edgekit_reply(
    client: AgentClient, pkg: SignedPackage, workdir: Path
) -> None:
    """The bytes on the wire from DescribeModel parse with the original messages, fields intact."""
    classes = message_factory.GetMessages(
        [_original_model_file()], pool=descriptor_pool.DescriptorPool()
    )
    original = classes["Orig.DescribeModelResponse"]
    client.load_model("wire", pkg.package)
    try:
        raw = client.stub.DescribeModel(agent_pb2.DescribeModelRequest(name="wire"))
        assert raw.model.package_sha256 == sha256_file(pkg.package)
        old = original.FromString(raw.SerializeToString())
        assert (old.model.name, old.model.url) == ("wire", str(pkg.package))
        assert [m.name for m in old.model.input_tensor_metadatas] == ["image"]
        # ...and what an original agent sends reads as "not reported" in edgekit's client.
        sent = original(model=classes["Orig.Model"](url="/m", name="m"))
        back = agent_pb2.DescribeModelResponse.FromString(sent.SerializeToString())
        assert (back.model.name, back.model.package_sha256, back.model.version) == ("m", "", "")
    finally:
        client.unload_model("wire")


class _OldAgent(agent_pb2_grpc.AgentServicer):
    """An agent that knows only the original fields (like SageMaker's)."""

    def _model(self) -> agent_pb2.Model:
        return agent_pb2.Model(url="/models/old", name="old")

    def LoadModel(self, request, context):  # noqa: N802
        return agent_pb2.LoadModelResponse(model=self._model())

    def ListModels(self, request, context):  # noqa: N802
        return agent_pb2.ListModelsResponse(models=[self._model()])

    def DescribeModel(self, request, context):  # noqa: N802
        return agent_pb2.DescribeModelResponse(model=self._model())


def test_edgekit_client_against_an_agent_without_the_new_fields(workdir: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    agent_pb2_grpc.add_AgentServicer_to_server(_OldAgent(), server)
    sock = workdir / "old.sock"
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        with AgentClient(sock, timeout=10) as c:
            info = c.load_model("old", "/models/old")
            assert info.name == "old"
            assert (
                info.version,
                info.package_sha256,
                info.package_sha256_source,
                info.key_fingerprint,
            ) == (None, None, None, None)
            assert c.describe_model("old") == info
    finally:
        server.stop(0).wait()
