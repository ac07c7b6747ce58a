"""`deploy --wait` on a real local device whose inference app dies a few seconds after RUNNING.

Issue 11: "deploy --wait counts a device done once components are RUNNING past a 0.5 s
settle window, so an app that dies after a few seconds is never caught." Here the app is
edgekit's own inference component, built from the shipped templates with one change: its
Run step is killed (SIGKILL, as the kernel's OOM killer would) 2.5 s after it starts. Each
life publishes one or two results of the deployed package; Greengrass restarts the app and
gives up (BROKEN) after three errors. The device never inspects for long: `deploy --wait`
(the library function and the `edgekit deploy --wait` exit code) fails naming the device,
the component, its lifecycle state and the last lines of its log, and never prints success.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit.cli import main  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy import deploy  # noqa: E402
from edgekit.errors import DeviceDeploymentError  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.resources import components_dir  # noqa: E402
from edgekit.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "edgekit-dying-app"
THING = "dying-app-device"
KILLED = "out of memory: the inference app was killed"
RUN = 'exec "{work:path}/venv/bin/python" -m edgekit.edge.app'
DYING_RUN = (
    '"{work:path}/venv/bin/python" -m edgekit.edge.app &\n'
    "app=$!\n"
    "sleep 2.5\n"
    f'echo "{KILLED} (pid $app)"\n'
    "kill -KILL $app\n"
    "exit 137"
)


@pytest.fixture(scope="module")
def dying_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    """A device of GROUP and published components whose inference app dies 2.5 s after Run."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("dying")
    endpoints.up(home)
    try:
        settings = Settings(local_home=home, thing_group=GROUP)
        add_device(THING, GROUP, home)
        templates = work / "templates"
        shutil.copytree(components_dir(), templates)
        recipe = templates / settings.inference_component / "recipe.yaml"
        text = recipe.read_text()
        assert RUN in text, "the inference recipe's Run step changed; update this test"
        line = text[: text.index(RUN)].rsplit("\n", 1)[1]  # "<spaces>Script: "
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        block = "|-\n" + "\n".join(indent + step for step in DYING_RUN.splitlines())
        recipe.write_text(text.replace(RUN, block))
        private, _ = signing_keys(None, settings)
        model = build_tiny_model(work / "tiny.onnx")
        package = build_package(
            model, name=settings.model_name, version="3.0.0", key=private, out=work / "m.tar.gz"
        ).path
        built = build_components(
            settings, out_dir=work / "build", model_package=package, templates_dir=templates
        )
        publish_components(settings, built)
        yield home, settings
    finally:
        endpoints.down(home)


def check_names_the_failure(text: str, settings: Settings) -> None:
    assert THING in text
    assert settings.inference_component in text
    assert "BROKEN" in text or "ERRORED" in text, text
    assert "last lines of" in text and KILLED in text, text


def test_deploy_wait_fails_naming_the_dying_app(dying_app: tuple[Path, Settings]) -> None:
    _home, settings = dying_app
    with pytest.raises(DeviceDeploymentError) as info:
        deploy(settings, thing_group=GROUP, timeout=90)
    error = info.value
    assert list(error.devices) == [THING] and error.device == THING
    assert error.devices[THING].component == settings.inference_component
    # Greengrass reported the deployment SUCCEEDED (the app ran past the settle window).
    assert [d.reported for d in error.result.devices] == ["SUCCEEDED"]
    assert not error.result.proofs[THING].proven
    check_names_the_failure(str(error), settings)


def test_cli_deploy_wait_exits_1_and_never_prints_success(
    dying_app: tuple[Path, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    home, settings = dying_app
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEKIT_LOCAL_HOME", str(home))
        patch.setenv("EDGEKIT_THING_GROUP", GROUP)
        code = main(["deploy", "--backend", "local", "--wait", "--timeout", "90"])
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    check_names_the_failure(captured.err, settings)
    assert "PROVEN" not in captured.out and "proof of inspection:" not in captured.out
    rows = [line for line in captured.out.splitlines() if line.startswith(THING)]
    assert rows and "FAILED" in rows[0], captured.out
