"""edgekit.handover: the files the notebooks leave for each other in a run's output_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import DataError
from edgekit.handover import DEPLOYMENT, PROVISIONED, read_handover, same_backend, write_handover
from edgekit.settings import Settings


def test_handover_round_trip_and_missing(tmp_path: Path) -> None:
    assert read_handover(tmp_path, DEPLOYMENT) is None
    path = write_handover(tmp_path / "run", DEPLOYMENT, {"status": "SUCCEEDED", "n": 2})
    assert path == tmp_path / "run" / "deployment.json"
    assert read_handover(tmp_path / "run", DEPLOYMENT) == {"status": "SUCCEEDED", "n": 2}
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_handover_that_is_not_an_object_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / PROVISIONED).write_text(text)
    with pytest.raises(DataError, match="provisioned.json"):
        read_handover(tmp_path, PROVISIONED)


def test_handover_values_json_does_not_know_are_written_as_text(tmp_path: Path) -> None:
    write_handover(tmp_path, DEPLOYMENT, {"path": tmp_path})
    assert read_handover(tmp_path, DEPLOYMENT) == {"path": str(tmp_path)}
    assert (tmp_path / DEPLOYMENT).read_text().endswith("}\n")


@pytest.mark.parametrize(
    ("data", "same"),
    [(None, False), ({}, True), ({"backend": "local"}, True), ({"backend": "aws"}, False)],
)
def test_same_backend(data: dict | None, same: bool) -> None:
    assert same_backend(data, Settings(backend="local")) is same
