"""The agent trusts its public key and any additional keys (issue 11: shadow with a new key).

A package verifies against any trusted key; the identity the agent reports names the key
that verified it; a package no key verifies is FAILED_PRECONDITION naming every trusted
key. The additional keys come from a PEM bundle (``load_public_keys``), which may be empty.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.agent.client import AgentClient
from edgekit.agent.models import ModelRegistry
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, signed_package
from edgekit.errors import AgentError, PackageError
from edgekit.package.keys import fingerprint, generate_keypair, load_public_key, load_public_keys


@pytest.fixture(scope="module")
def pkg_a(workdir: Path) -> SignedPackage:
    return signed_package(workdir / "a", version="1.0.0", key_dir=workdir / "key-a")


@pytest.fixture(scope="module")
def pkg_b(workdir: Path) -> SignedPackage:
    return signed_package(workdir / "b", version="2.0.0", key_dir=workdir / "key-b")


@pytest.fixture(scope="module")
def key_c(workdir: Path) -> Path:
    return generate_keypair(workdir / "key-c").public_key


def bundle(path: Path, *keys: Path, between: str = "\n") -> Path:
    path.write_text(between.join(k.read_text() for k in keys))
    return path


# --- the PEM bundle --------------------------------------------------------------------------


def test_a_bundle_loads_every_key_in_order(
    workdir: Path, pkg_a: SignedPackage, pkg_b: SignedPackage
) -> None:
    path = bundle(workdir / "two.pem", pkg_b.public_key, pkg_a.public_key, between="\n\n")
    keys = load_public_keys(path)
    assert [fingerprint(k) for k in keys] == [
        fingerprint(pkg_b.public_key),
        fingerprint(pkg_a.public_key),
    ]
    assert [fingerprint(k) for k in load_public_keys(path.read_bytes())] == [
        fingerprint(k) for k in keys
    ]


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_an_empty_bundle_is_no_key(workdir: Path, text: str) -> None:
    path = workdir / "empty.pem"
    path.write_text(text)
    assert load_public_keys(path) == []


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("garbage\n{key}", "'garbage' is not part of a PEM block"),
        ("{key}trailing words", "'trailing words' is not part of a PEM block"),
        ("{key}{key}", "key 2 of the bundle is key 1 again"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "key 1 of the bundle: .*not a PEM public key",
        ),
        ("-----BEGIN PUBLIC KEY-----\nno end\n", "is not part of a PEM block"),
    ],
)
def test_a_bad_bundle_names_the_file_and_the_block(
    workdir: Path, pkg_a: SignedPackage, text: str, match: str
) -> None:
    path = workdir / "bad.pem"
    path.write_text(text.replace("{key}", pkg_a.public_key.read_text()))
    with pytest.raises(PackageError, match=match) as info:
        load_public_keys(path)
    assert str(path) in str(info.value)


def test_a_missing_bundle_names_the_file(workdir: Path) -> None:
    with pytest.raises(PackageError, match="missing.pem: public key bundle file not found"):
        load_public_keys(workdir / "missing.pem")


# --- the registry ----------------------------------------------------------------------------


def test_the_registry_verifies_against_any_trusted_key(
    pkg_a: SignedPackage, pkg_b: SignedPackage
) -> None:
    registry = ModelRegistry(
        load_public_key(pkg_a.public_key), additional_keys=[load_public_key(pkg_b.public_key)]
    )
    fp_a, fp_b = fingerprint(pkg_a.public_key), fingerprint(pkg_b.public_key)
    assert registry.key_fingerprint == fp_a
    assert registry.key_fingerprints == [fp_a, fp_b]
    registry.load("current", str(pkg_a.package))
    registry.load("candidate", str(pkg_b.package))
    current, candidate = registry.identity("current"), registry.identity("candidate")
    assert current is not None and candidate is not None
    assert current.key_fingerprint == fp_a
    assert candidate.key_fingerprint == fp_b  # the key that verified it, not the agent's own
    assert registry.get("candidate").version == "2.0.0"


def test_the_same_key_twice_is_trusted_once(pkg_a: SignedPackage) -> None:
    key = load_public_key(pkg_a.public_key)
    registry = ModelRegistry(key, additional_keys=[load_public_key(pkg_a.public_key)])
    assert registry.key_fingerprints == [fingerprint(key)]


def test_a_package_no_key_verifies_names_every_trusted_key(
    pkg_a: SignedPackage, pkg_b: SignedPackage, key_c: Path
) -> None:
    registry = ModelRegistry(
        load_public_key(key_c), additional_keys=[load_public_key(pkg_a.public_key)]
    )
    with pytest.raises(AgentStatusError) as info:
        registry.load("candidate", str(pkg_b.package))
    assert info.value.code == "FAILED_PRECONDITION"
    message = str(info.value)
    assert fingerprint(key_c) in message and fingerprint(pkg_a.public_key) in message
    assert "every key this agent trusts" in message
    assert fingerprint(pkg_b.public_key) in message  # who signed it, from the manifest
    assert registry.identity("candidate") is None
    # Without the additional key the package signed by A is refused too.
    alone = ModelRegistry(load_public_key(key_c))
    with pytest.raises(AgentStatusError, match="FAILED_PRECONDITION"):
        alone.load("current", str(pkg_a.package))


# --- the server and its command line ---------------------------------------------------------


@pytest.mark.integration
def test_the_server_reports_which_key_verified_each_model(
    workdir: Path, pkg_a: SignedPackage, pkg_b: SignedPackage
) -> None:
    extra = bundle(workdir / "extra.pem", pkg_b.public_key)
    with (
        AgentServer(workdir / "t.sock", pkg_a.public_key, additional_public_keys=extra) as server,
        AgentClient(server.socket_path) as client,
    ):
        a = client.load_model("current", pkg_a.package)
        b = client.load_model("candidate", pkg_b.package)
        assert a.key_fingerprint == fingerprint(pkg_a.public_key)
        assert b.key_fingerprint == fingerprint(pkg_b.public_key)
        assert {m.name: m.key_fingerprint for m in client.list_models()} == {
            "current": a.key_fingerprint,
            "candidate": b.key_fingerprint,
        }


@pytest.mark.integration
def test_the_server_with_an_empty_bundle_trusts_its_own_key_only(
    workdir: Path, pkg_a: SignedPackage, pkg_b: SignedPackage
) -> None:
    empty = workdir / "none.pem"
    empty.write_text("\n")
    with (
        AgentServer(workdir / "e.sock", pkg_a.public_key, additional_public_keys=empty) as server,
        AgentClient(server.socket_path) as client,
    ):
        with pytest.raises(AgentStatusError) as info:
            client.load_model("candidate", pkg_b.package)
        assert info.value.code == "FAILED_PRECONDITION"
        assert fingerprint(pkg_a.public_key) in str(info.value)


def test_the_server_refuses_a_bad_bundle(workdir: Path, pkg_a: SignedPackage) -> None:
    bad = workdir / "bad-bundle.pem"
    bad.write_text("not a key")
    with pytest.raises(AgentError, match="bad-bundle.pem: cannot read the additional public keys"):
        AgentServer(workdir / "b.sock", pkg_a.public_key, additional_public_keys=bad)


def test_agent_serve_takes_additional_public_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edgekit", "agent", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--additional-public-keys" in out
