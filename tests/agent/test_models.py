"""Small pure functions of the agent: dtype mapping, shapes, URLs, backoff, names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.agent.capture import CaptureUploader
from edgekit.agent.models import MODEL_NAME, package_path
from edgekit.agent.status import AgentStatusError
from edgekit.agent.tensors import (
    data_type_of,
    format_shape,
    from_bytes,
    shape_matches,
    to_proto,
)


def test_data_types_round_trip_through_proto() -> None:
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64):
        array = np.arange(6, dtype=dtype).reshape(2, 3)
        tensor = to_proto(array, "t")
        back = from_bytes(tensor.byte_data, tensor.tensor_metadata.data_type, [2, 3], name="t")
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)
    with pytest.raises(AgentStatusError, match="bool"):
        data_type_of(np.bool_)


def test_shapes() -> None:
    assert shape_matches([1, -1, 4], [1, 7, 4])
    assert not shape_matches([1, 3, 4], [1, 3])
    assert not shape_matches([1, 3, 4], [1, 3, 5])
    assert format_shape([1, -1]) == "[1, -1]"
    with pytest.raises(AgentStatusError, match="12 bytes given"):
        from_bytes(b"\0" * 12, 5, [2, 2], name="x")
    with pytest.raises(AgentStatusError, match="negative"):
        from_bytes(b"", 5, [-1], name="x")


@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**63 - 1, 2], [2**62, 8]])
def test_shapes_whose_element_count_overflows_int64_are_invalid_arguments(
    shape: list[int],
) -> None:
    """A product of int64 dimensions wraps in numpy (2**32 * 2**32 == 0): with no data the
    byte count "matched" and reshape failed, an UNKNOWN error instead of INVALID_ARGUMENT."""
    with pytest.raises(AgentStatusError, match="INVALID_ARGUMENT.*needs"):
        from_bytes(b"", 5, shape, name="x")


def test_package_urls() -> None:
    assert package_path("/a/b.tar.gz") == Path("/a/b.tar.gz")
    assert package_path("file:///a/b%20c.tar.gz") == Path("/a/b c.tar.gz")
    assert package_path("relative/pkg") == Path("relative/pkg")
    for bad in ("", "s3://bucket/key", "https://example.com/p.tar.gz", "file://host/p"):
        with pytest.raises(AgentStatusError) as info:
            package_path(bad)
        assert info.value.code == "INVALID_ARGUMENT"


def test_model_names_follow_the_original_rule() -> None:
    for good in ("a", "resnet18", "tag-scratch-detector", "a--b"):
        assert MODEL_NAME.match(good)
    for bad in ("", "-a", "a-", "a_b", "a.b", "a b"):
        assert not MODEL_NAME.match(bad)


def test_backoff_grows_and_is_capped() -> None:
    uploader = CaptureUploader(object(), "bucket", "/p/", base_delay=1.0, max_delay=10.0)
    assert uploader.prefix == "p"
    assert uploader.key_prefix("m", "c") == "p/m/c"
    delays = [uploader.delay(n) for n in range(1, 8)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert max(delays) <= 12.0
    with pytest.raises(AgentStatusError):
        CaptureUploader(object(), "")


def test_public_exceptions_live_in_the_one_tree() -> None:
    import edgekit
    from edgekit import errors
    from edgekit.edge.spool import SpoolError
    from edgekit.schemas import InvalidMessageError

    assert AgentStatusError is errors.AgentStatusError is edgekit.AgentStatusError
    assert InvalidMessageError is errors.InvalidMessageError is edgekit.InvalidMessageError
    assert SpoolError is errors.SpoolError is edgekit.SpoolError
    assert issubclass(AgentStatusError, edgekit.AgentError)


def test_the_agent_imports_nothing_a_device_lacks() -> None:
    """The agent component's environment has no tqdm, torch or jsonschema (see its recipe)."""
    import subprocess
    import sys

    code = (
        "import sys, edgekit.agent.server, edgekit.package;"
        "print([m for m in ('tqdm', 'torch', 'jsonschema', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
