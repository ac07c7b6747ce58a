"""Shared fixtures. Tests that need the real photos skip cleanly without them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from edgekit.agent.testing import SignedPackage
    from edgekit.local.mqtt import Broker
    from edgekit.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TAG_SCRATCHES = Path(
    os.environ.get("EDGEKIT_TAG_SCRATCHES", REPO.parent / "shared" / "datasets" / "tag-scratches")
)

os.environ.setdefault("EDGEKIT_QUIET", "1")
# Compiles in tests run for real (tests of the compile cache pass their own cache folder).
os.environ.setdefault("EDGEKIT_COMPILE_CACHE", "off")
# Keep tests (and the notebook kernels nbval starts, which inherit this) out of the
# user's own local home: keys, endpoints and devices go to a throwaway folder.
_THROWAWAY_HOME: str | None = None
if "EDGEKIT_LOCAL_HOME" not in os.environ:
    _THROWAWAY_HOME = os.environ["EDGEKIT_LOCAL_HOME"] = tempfile.mkdtemp(
        prefix="edgekit-test-home-"
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop what tests left on the throwaway home, then remove it."""
    if _THROWAWAY_HOME is None:
        return
    from edgekit.local.endpoints import down

    down(_THROWAWAY_HOME)
    shutil.rmtree(_THROWAWAY_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tag_scratches() -> Path:
    """The shared Ground Truth data set of real photos, or a clean skip."""
    if not (TAG_SCRATCHES / "labels.csv").is_file():
        pytest.skip(f"real data set not found at {TAG_SCRATCHES}")
    return TAG_SCRATCHES


# ---------------------------------------------------------------- model agent packages
# Module-scoped: each test module gets its own folder and package; a module may
# override either by defining the same name (e.g. a package of another version).


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A short folder (unix socket paths are limited to 108 bytes), removed after."""
    from edgekit.agent.testing import short_tempdir

    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pkg(workdir: Path) -> SignedPackage:
    """A signed package of a tiny random detector (64 x 96 input), keys in ``workdir/keys``."""
    from edgekit.agent.testing import signed_package

    return signed_package(workdir)


# ---------------------------------------------------------------- servers on loopback
# Shared by several test modules. Module-scoped fixtures defined here still give each
# test module its own server; a module may override one by defining the same name.


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A ThreadedMotoServer on a free loopback port; its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# Variables that would steer boto3 or edgekit away from moto's test credentials.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "EDGEKIT_BACKEND",
    "EDGEKIT_ARTIFACT_BUCKET",
    "EDGEKIT_SAGEMAKER_ROLE_ARN",
)


@pytest.fixture
def moto_settings(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """AWS backend settings whose calls land on moto (botocore reads AWS_ENDPOINT_URL)."""
    from edgekit import clients
    from edgekit.settings import Settings

    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setattr(clients, "_sessions", {})  # no session cached with other credentials
    return Settings(backend="aws", region="us-east-1")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """The local backend's MQTT broker, in-process on a free loopback port."""
    from edgekit.local.mqtt import Broker

    b = Broker(host="127.0.0.1", port=0).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def broker_endpoint(broker: Broker) -> str:
    """The shared broker's ``host:port``."""
    return broker.endpoint


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A fresh folder under /tmp, so unix socket paths stay short; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="ekipc-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- Chromium (Debian's package, driven by Playwright; its own browser download is not used) ---

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The page size every browser test sees (tests/reports checks nothing is wider).
VIEWPORT = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    candidate = (
        os.environ.get("EDGEKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    )
    return candidate if Path(candidate).is_file() else None


@pytest.fixture(scope="module")
def chromium_context() -> Iterator[object]:
    """A headless Chromium context at 1280x900 with a fresh profile, or a skip naming what
    is missing (tests/reports and tests/browser wrap it)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium not found (apt-get install chromium, or set EDGEKIT_CHROMIUM)")
    with (
        sync_api.sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="edgekit-chromium-") as profile,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()
