"""The rollout as the optional last stage of ``pipeline run``."""

from __future__ import annotations

import pytest

from edgekit.errors import ConfigurationError
from edgekit.pipeline import ROLLOUT_STAGE, STAGES, with_rollout
from edgekit.resources import notebooks_dir


@pytest.mark.parametrize(
    ("parameters", "flag", "expected"),
    [
        ({}, None, STAGES),
        ({"rollout": True}, None, (*STAGES, ROLLOUT_STAGE)),
        ({"rollout": True}, False, STAGES),
        ({}, True, (*STAGES, ROLLOUT_STAGE)),
        (None, True, (*STAGES, ROLLOUT_STAGE)),
    ],
)
def test_rollout_stage_is_appended_when_asked(
    parameters: dict | None, flag: bool | None, expected: tuple[str, ...]
) -> None:
    assert with_rollout(STAGES, parameters, flag) == expected
    assert with_rollout(expected, parameters, flag).count(ROLLOUT_STAGE) <= 1


def test_rollout_parameter_must_be_a_boolean() -> None:
    with pytest.raises(ConfigurationError, match="rollout='yes' must be true or false"):
        with_rollout(STAGES, {"rollout": "yes"}, None)


def test_the_rollout_notebook_ships_with_a_parameters_cell() -> None:
    import nbformat
    import papermill

    path = notebooks_dir() / f"{ROLLOUT_STAGE}.ipynb"
    declared = papermill.inspect_notebook(str(path))
    assert {"model_package", "canary", "soak", "shadow", "timeout", "min_results"} <= set(declared)
    nb = nbformat.read(str(path), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
