"""A shadow rollout of a candidate signed with a NEW key, end to end on local devices.

The fleet (a canary and a fleet device) runs a package signed with key A; the candidate is
signed with key B. In the shadow stage the canary's agent trusts both keys (its
``AdditionalPublicKeys`` holds B), so the candidate runs beside the current model and the
stage reports agreement; canary and fleet then run the candidate with the agent's
``PublicKey`` B and no additional key, and the rollout ends PROMOTED. Before multi-key
trust, the agent refused the shadow package and the rollout was rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import (  # noqa: E402
    build_components,
    generated_configuration,
    publish_components,
)
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy, installed_components  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.local.home import HomeLayout  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.package.keys import fingerprint, generate_keypair  # noqa: E402
from edgekit.rollout import Gates, rollout  # noqa: E402
from edgekit.rollout.shadow import TRUST_KEY, shadow_specs  # noqa: E402
from edgekit.rollout.stages import (  # noqa: E402
    AGENT_RESET,
    candidate_specs,
    group_members,
    rollback_specs,
)
from edgekit.settings import Settings  # noqa: E402

GROUP = "newkey-line"
CANARY, FLEET = "nk-canary-1", "nk-fleet-1"
GATES = Gates(min_results=3, max_defect_rate_delta=0.3, max_p95_ratio=None, max_error_rate=0.2)


S = Settings(backend="local")
MODEL, AGENT, APP = S.model_component, S.agent_component, S.inference_component
PREVIOUS = {
    MODEL: {"componentVersion": "1.0.0"},
    AGENT: {"componentVersion": "1.0.0"},
    APP: {
        "componentVersion": "1.0.0",
        "configurationUpdate": {"merge": '{"InferenceInterval": 1}'},
    },
}
PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"


def test_the_shadow_stage_makes_the_agent_trust_the_candidates_key() -> None:
    specs = shadow_specs(S, PREVIOUS, "2.0.0", trust_pem=PEM)
    agent = specs[AGENT]
    assert agent["componentVersion"] == "1.0.0"
    assert json.loads(agent["configurationUpdate"]["merge"]) == {TRUST_KEY: PEM}
    assert agent["configurationUpdate"]["reset"] == ["/PublicKey"]  # the fleet's key stays
    assert PREVIOUS[AGENT] == {"componentVersion": "1.0.0"}, "the input is not changed"


def test_a_candidate_with_the_fleets_key_changes_nothing_on_the_agent() -> None:
    agent = shadow_specs(S, PREVIOUS, "2.0.0")[AGENT]
    assert "merge" not in agent["configurationUpdate"]
    assert agent["configurationUpdate"]["reset"] == AGENT_RESET


def test_every_other_stage_and_rollback_resets_the_additional_keys() -> None:
    assert "/AdditionalPublicKeys" in AGENT_RESET
    candidate = candidate_specs(S, {AGENT: "2.0.0"}, PREVIOUS)
    assert candidate[AGENT]["configurationUpdate"]["reset"] == AGENT_RESET
    shadowed = shadow_specs(S, PREVIOUS, "2.0.0", trust_pem=PEM)
    back = rollback_specs(S, shadowed)
    assert "/AdditionalPublicKeys" in back[AGENT]["configurationUpdate"]["reset"]


def test_deploy_resets_the_agents_keys_by_the_same_rule() -> None:
    """`edgekit deploy` resets what the build generates; the rollout's stages reset the
    agent's keys; both cover PublicKey and AdditionalPublicKeys."""
    assert set(AGENT_RESET) <= set(generated_configuration(S)[AGENT])


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    home = tmp_path_factory.mktemp("home")
    endpoints.up(home)
    try:
        yield home, Settings(local_home=home, thing_group=GROUP)
    finally:
        endpoints.down(home)


def package(private: Path, settings: Settings, out: Path, version: str) -> Path:
    model = build_tiny_model(out.with_suffix(".onnx"), heatmap_bias=-8)
    return build_package(
        model, name=settings.model_name, version=version, key=private, out=out
    ).path


def agent_file(home: Path, thing: str, settings: Settings, name: str) -> Path:
    root = HomeLayout(home).device_root(thing)
    return root / "work" / settings.agent_component / name


@pytest.mark.integration
@pytest.mark.slow
def test_shadow_with_a_candidate_signed_by_a_new_key(
    local: tuple[Path, Settings], tmp_path: Path
) -> None:
    home, settings = local
    for thing in (CANARY, FLEET):
        add_device(thing, GROUP, home)
    key_a = signing_keys(None, settings)  # the fleet's key: <home>/keys
    built = build_components(
        settings,
        out_dir=tmp_path / "fleet",
        model_package=package(key_a[0], settings, tmp_path / "m1.tar.gz", "1.0.0"),
    )
    publish_components(settings, built)
    deploy(
        settings,
        thing_group=GROUP,
        configuration={settings.inference_component: {"InferenceInterval": 0.2}},
        timeout=180,
    )
    key_b = generate_keypair(tmp_path / "new-key")
    fp_a, fp_b = fingerprint(key_a[1]), fingerprint(key_b.public_key)
    assert fp_a != fp_b
    candidate = package(key_b.private_key, settings, tmp_path / "m2.tar.gz", "1.1.0")
    report = tmp_path / "report.json"

    record = rollout(
        settings,
        candidate,
        key_dir=tmp_path / "new-key",
        canary=1,
        soak=6,
        shadow=True,
        gates=GATES,
        report=report,
        timeout=180,
    )

    assert record.status == "PROMOTED", record.report()
    assert [(s.name, s.status) for s in record.stages] == [
        ("shadow", "PASSED"),
        ("canary", "PASSED"),
        ("fleet", "PASSED"),
    ]
    shadow = {g["name"]: g for g in record.stages[0].gates}
    assert shadow["shadow_agreement"]["verdict"] == "PASS"
    assert shadow["shadow_agreement"]["devices"][CANARY]["images_compared"] > 0
    assert record.devices[CANARY]["shadow"]["defect_agreement"] == 1.0
    # The canary's agent trusted both keys in the shadow stage, and said which key verified
    # which model: the current one with A, the shadow (candidate) with B.
    log = HomeLayout(home).device_root(CANARY) / "logs" / f"{settings.agent_component}.log"
    text = log.read_text(errors="replace")
    assert f"trusted keys: {fp_a}, {fp_b}" in text
    assert f"verified with key {fp_b}" in text
    # Afterwards every device runs the candidate with key B alone: the additional key was
    # reset by the canary and fleet deployments.
    sha = sha256_file(candidate)
    data = json.loads(report.read_text())
    assert data["status"] == "PROMOTED"
    for thing in (CANARY, FLEET):
        assert data["devices"][thing]["package_sha256"] == sha, data["devices"][thing]
        installed = installed_components(settings, thing)
        assert {n: v for n, (v, _s) in installed.items()} == record.candidate["components"]
        assert fingerprint(agent_file(home, thing, settings, "public_key.pem")) == fp_b
        extra = agent_file(home, thing, settings, "additional_public_keys.pem")
        assert extra.read_text().strip() == "", thing
    assert f"{settings.model_component}.shadow" not in installed_components(settings, CANARY)
    assert group_members(settings, GROUP) == [CANARY, FLEET]
