"""Shadow mode without a broker: load failures, model errors, a busy shadow are counted."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.agent.client import ModelInfo
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import signed_package
from edgekit.edge.app import InferenceApp
from edgekit.edge.health import Health
from edgekit.edge.inference import Frame, Inspector
from edgekit.edge.shadow import FAILED, RUNNING, ShadowRunner, agent_name_for
from edgekit.schemas import validate_health

SHA = "5" * 64


class FakeAgent:
    """Just enough of AgentClient: loads succeed (reporting an identity), predict may fail."""

    def __init__(self, predict_error: Exception | None = None) -> None:
        self.loaded: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.predict_error = predict_error
        self.closed = False

    def wait_ready(self, timeout: float = 10.0) -> None:
        pass

    def _info(self, name: str) -> ModelInfo:
        return ModelInfo(
            name, self.loaded[name], (), (), "1.0.0", SHA, "install-marker", "abcdabcdabcdabcd"
        )

    def list_models(self) -> list[ModelInfo]:
        return [self._info(n) for n in self.loaded]

    def load_model(self, name: str, url: str) -> ModelInfo:
        self.calls.append(("load", name))
        self.loaded[name] = str(url)
        return self._info(name)

    def unload_model(self, name: str) -> None:
        self.calls.append(("unload", name))
        del self.loaded[name]

    def predict(self, name: str, inputs: Any, shared_memory: bool = False) -> Any:
        if self.predict_error is not None:
            raise self.predict_error
        raise AssertionError("not used")

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shadowpkg")
    pkg = signed_package(root, version="1.0.0")
    folder = root / "package"
    with tarfile.open(pkg.package) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _frame() -> Frame:
    return Frame("tag-001.jpg", np.zeros((64, 96, 3), np.uint8), time.time())


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def _valid(entry: dict[str, Any]) -> None:
    msg = Health().message(
        timestamp="2026-11-23T10:00:00.000Z",
        thing_name="t",
        spool_pending=0,
        spool_dropped=0,
        model=None,
        started_at="2026-11-23T09:00:00.000Z",
        models=[entry],
    )
    validate_health(msg)


@pytest.mark.parametrize(
    ("name", "agent_name"),
    [
        ("tag-scratch-detector", "shadow-tag-scratch-detector"),
        ("my_model.v2", "shadow-my-model-v2"),
        ("__", "shadow-model"),
    ],
)
def test_agent_names_are_valid_and_apart_from_the_current_model(name: str, agent_name: str) -> None:
    assert agent_name_for(name) == agent_name


def test_a_missing_candidate_is_failed_naming_the_path(tmp_path: Path) -> None:
    agent = FakeAgent()
    missing = tmp_path / "com.qualityinspection.model.shadow" / "package"
    runner = ShadowRunner(agent, missing, name="candidate").start()
    try:
        _wait(lambda: runner.state == FAILED)
        entry = runner.entry()
        assert entry["state"] == "failed" and str(missing) in entry["problem"]
        assert entry["package_sha256"] is None and entry["role"] == "shadow"
        _valid(entry)
    finally:
        runner.stop()
    assert agent.closed and agent.calls == []


def test_model_errors_are_counted_and_never_raised(unpacked: Path) -> None:
    agent = FakeAgent(predict_error=AgentStatusError("INTERNAL", "model 'x' failed to run: boom"))
    runner = ShadowRunner(agent, unpacked, window_seconds=30).start()
    try:
        _wait(lambda: runner.state == RUNNING)
        assert runner.name == "tiny-detector"  # from the manifest
        assert agent.loaded == {"shadow-tiny-detector": str(unpacked)}
        runner.run_frame(_frame(), [], False)  # the caller (the app) never sees the error
        entry = runner.entry()
        assert entry["since_start"]["errors"] == 1 and entry["window"]["errors"] == 1
        assert entry["since_start"]["images"] == 0
        assert "tag-001.jpg" in entry["problem"] and "boom" in entry["problem"]
        assert entry["package_sha256"] == SHA and entry["key_fingerprint"] == "abcdabcdabcdabcd"
        assert entry["agreement"]["since_start"]["images_compared"] == 0
        _valid(entry)
    finally:
        runner.stop()
    assert agent.loaded == {}  # unloaded on stop


def test_a_busy_shadow_drops_frames_and_counts_them(unpacked: Path) -> None:
    runner = ShadowRunner(FakeAgent(), unpacked)  # not started: nobody drains the queue
    accepted = [runner.submit(_frame(), [], False) for _ in range(5)]
    assert accepted == [True, True, False, False, False]
    assert runner.entry()["frames_dropped"] == 3


def test_a_model_loaded_before_is_always_reloaded(unpacked: Path) -> None:
    """The model component replaces the folder in place: the agent must verify it again."""
    agent = FakeAgent()
    agent.loaded["m"] = str(unpacked)  # loaded by an earlier run of the app, same path
    inspector = Inspector(agent)
    model = inspector.load("m", unpacked)
    assert agent.calls == [("unload", "m"), ("load", "m")]
    assert model.version == "1.0.0"
    assert inspector.identity["package_sha256"] == SHA


class FakeIpc:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def get_configuration(self, key_path: list[str]) -> dict[str, Any]:
        return self.config


def test_a_relative_shadow_path_is_under_the_nucleus_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work" / "com.qualityinspection"
    env = {"EDGEKIT_MODEL_PACKAGE": "/pkg", "EDGEKIT_AGENT_SOCKET": "/tmp/a.sock"}
    config = {
        "ImageDirectory": "/camera",
        "ModelName": "m",
        "ShadowPackagePath": "com.qualityinspection.model.shadow/package",
    }
    app = InferenceApp(FakeIpc(config), thing_name="t", env=env, work_dir=work)
    parsed = app._read_config()
    assert parsed.shadow_package == tmp_path / "work" / "com.qualityinspection.model.shadow" / (
        "package"
    )
    config["ShadowPackagePath"] = "/abs/package"
    assert app._read_config().shadow_package == Path("/abs/package")


def test_published_results_count_for_the_current_model_only(unpacked: Path) -> None:
    """An earlier model's results left in the spool are delivered but counted apart."""
    import json

    app = InferenceApp(FakeIpc({}), thing_name="t", env={}, work_dir=unpacked.parent)
    app.inspector = Inspector(FakeAgent())
    app.inspector.load("m", unpacked)

    def payload(version: str, sha: str | None) -> bytes:
        model = {"name": "m", "version": version, **({"package_sha256": sha} if sha else {})}
        return json.dumps({"model": model}).encode()

    app._count_published(payload("1.0.0", SHA))
    app._count_published(payload("0.9.0", "0" * 64))  # the previous model's
    app._count_published(payload("1.0.0", None))  # same version, another (unknown) package
    app._count_published(b"not json")
    snap = app.current_stats.snapshot()
    assert snap["since_start"]["results_published"] == 1
    assert app.unattributed_published == 3
    assert app._health_soon.is_set()  # the first result triggers a health message
