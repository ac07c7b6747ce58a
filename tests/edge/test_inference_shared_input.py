"""The inference app writes each image's tensor once, into shared memory (issue 16, item 4).

The Inspector preprocesses every image into one array that lives in the agent client's
shared memory (``AgentClient.shared_array``), and predict sends that array without
copying it into a segment of its own. Seen by counting the segments the client takes
of the input's size, never by time.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.shm import SharedMemoryPool
from edgekit.agent.testing import SignedPackage
from edgekit.edge.inference import Frame, Inspector

pytestmark = pytest.mark.integration

SHAPE = (1, 3, 64, 96)
NBYTES = int(np.prod(SHAPE)) * 4


@pytest.fixture(scope="module")
def folder(workdir: Path, pkg: SignedPackage) -> Path:
    out = workdir / "installed"
    with tarfile.open(pkg.package) as tar:
        tar.extractall(out, filter="data")
    return out


@pytest.fixture(scope="module")
def server(workdir: Path, pkg: SignedPackage) -> Iterator[AgentServer]:
    srv = AgentServer(workdir / "agent.sock", pkg.public_key).start()
    yield srv
    srv.stop()


@pytest.fixture
def input_segments(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the segments clients take that could hold an input tensor."""
    taken: list[int] = []
    acquire = SharedMemoryPool.acquire

    def counted(pool: SharedMemoryPool, nbytes: int):  # type: ignore[no-untyped-def]
        if nbytes >= NBYTES:
            taken.append(nbytes)
        return acquire(pool, nbytes)

    monkeypatch.setattr(SharedMemoryPool, "acquire", counted)
    return taken


def _frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(5)
    return [
        Frame(f"img{i}.png", rng.integers(0, 256, (120, 150, 3), dtype=np.uint8), time.time())
        for i in range(n)
    ]


@pytest.mark.parametrize("fast", [True, False], ids=["fast-socket", "grpc"])
def test_each_image_is_preprocessed_into_one_shared_array_and_sent_without_a_copy(
    server: AgentServer, folder: Path, input_segments: list[int], fast: bool
) -> None:
    frames = _frames(3)
    with AgentClient(server.socket_path, fast_predict=fast) as client:
        inline = Inspector(client, use_shared_memory=False)
        inline.load("inline", folder)
        want = [inline.inspect_frame(f, score_threshold=0.0) for f in frames]
        assert input_segments == []
        inspector = Inspector(client)
        inspector.load("shared", folder)
        got, buffers = [], []
        for frame in frames:
            got.append(inspector.inspect_frame(frame, score_threshold=0.0))
            buffers.append(getattr(inspector, "_input", None))
    # One segment of the input's size, taken once for the array; no copy per image.
    assert len(input_segments) == 1
    assert buffers[0] is not None and all(b is buffers[0] for b in buffers)
    for a, b in zip(got, want, strict=True):
        assert [d.score for d in a.detections] == pytest.approx(
            [d.score for d in b.detections], abs=1e-5
        )
        assert a.best_score == pytest.approx(b.best_score, abs=1e-5)


def test_a_shared_array_sends_what_it_holds_at_each_call(
    server: AgentServer, pkg: SignedPackage, input_segments: list[int]
) -> None:
    import onnxruntime as ort

    reference = ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"])
    names = [o.name for o in reference.get_outputs()]
    with AgentClient(server.socket_path) as client:
        client.load_model("direct", pkg.package)
        try:
            x = client.shared_array(SHAPE, np.float32)
            assert not x.any()
            for seed in (1, 2):
                x[...] = np.random.default_rng(seed).standard_normal(SHAPE)
                got = client.predict("direct", {"image": x}, shared_memory=True)
                want = reference.run(names, {"image": np.array(x)})
                for name, value in zip(names, want, strict=True):
                    np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
            # An ordinary array of the same size is copied into a segment, as before.
            client.predict("direct", {"image": np.array(x)}, shared_memory=True)
        finally:
            client.unload_model("direct")
    assert len(input_segments) == 2  # the shared array's, and the copy's


def test_normalize_writes_into_out_exactly_what_it_would_return() -> None:
    from edgekit.errors import ModelError
    from edgekit.model.metadata import Preprocessing
    from edgekit.model.postprocess import preprocess

    image = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for layout in ("NCHW", "NHWC"):
        pre = Preprocessing(input_name="image", height=32, width=48, layout=layout)
        want = preprocess(image, pre)
        out = np.full(want.shape, np.nan, np.float32)
        assert preprocess(image, pre, out=out) is out
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ModelError, match=r"out is float32 \[1, 3, 48, 32\]"):
        preprocess(image, pre, out=np.empty((1, 3, 48, 32), np.float32))
