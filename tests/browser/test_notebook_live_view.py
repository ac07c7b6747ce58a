"""Notebook 04 in JupyterLab, as a user runs it: Run All, then the live view keeps counting.

A local backend in a throwaway home with one device that already inspects (what notebooks
01-03 leave behind, done here with the library in one call), the notebooks as
`edgekit notebooks DIR` writes them, and JupyterLab started as `edgekit lab` starts it
(`edgekit.lab.start_lab`: this environment, 127.0.0.1, a free port, a fresh token).
Chromium opens notebook 04, runs every cell from the Run menu and the test reads what the
page shows: no cell has an error output, the live view widget renders an image, and its
"N received" line grows while nobody touches the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekit.lab import LabServer, start_lab
from edgekit.local import endpoints
from edgekit.resources import write_notebooks
from edgekit.settings import Settings
from edgekit.workflow.deployment import deploy_latest_approved

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

NOTEBOOK = "04_visualize_results.ipynb"
PROJECT = "ekbrowser"  # thing names of their own: no clash with devices of other test homes
OUTPUT_DIR = "runs/manual"  # notebook 04's default output_dir, relative to the notebook
RECEIVED = re.compile(r"(\d+) received")

# What JupyterLab keeps per user goes to the test's folder. Every cell stays in the DOM
# (the default windowing detaches cells scrolled out of view), and no news is fetched.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
JUPYTER_FOLDERS = {
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
    "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
}


@dataclass
class Lab:
    server: LabServer
    root: Path

    def page_url(self, path: str) -> str:
        return f"{self.server.base_url}/lab/tree/{path}?token={self.server.token}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab as `edgekit lab` starts it, its kernels on a throwaway local home where one
    device inspects and publishes results (what notebooks 01-03 leave); all stopped after.
    The device is deployed while JupyterLab starts.
    """
    # before anything starts: a missing jupyterlab skips at once
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install jupyterlab)")
    home = tmp_path_factory.mktemp("home")
    root = tmp_path_factory.mktemp("lab")
    write_notebooks(root)
    state = tmp_path_factory.mktemp("jupyter")
    for name, value in LAB_SETTINGS.items():
        path = state / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    settings = Settings(local_home=home, project_name=PROJECT)
    endpoints.up(home)
    try:
        with ThreadPoolExecutor(1) as pool:
            deployed = pool.submit(
                deploy_latest_approved,
                settings,
                root / OUTPUT_DIR,
                device_count=1,
                progress=False,
            )
            # JupyterLab and its kernels inherit this environment: not the test session's
            # EDGEKIT_QUIET (a scheduled run, no widgets), nor the user's Jupyter folders.
            with pytest.MonkeyPatch.context() as env:
                env.delenv("EDGEKIT_QUIET", raising=False)
                env.delenv("EDGEKIT_INTERACTIVE", raising=False)
                env.setenv("EDGEKIT_PROJECT_NAME", PROJECT)
                for name, folder in JUPYTER_FOLDERS.items():
                    env.setenv(name, str(state / folder))
                server = start_lab(settings, root, port=0)
            try:
                deployed.result()
                yield Lab(server, root)
            finally:
                server.stop()  # the kernel first: its live view subscribes to the local broker
    finally:
        endpoints.down(home)


# ---------------------------------------------------------------- reading the page

PROMPTS = "[...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
ERROR_OUTPUTS = (
    "[...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output"
    '[data-mime-type="application/vnd.jupyter.stderr"]\')].map(e => e.innerText)'
)
LIVE_STATS = (
    "[...document.querySelectorAll('.jp-Notebook .widget-vbox .widget-html')]"
    ".map(e => e.innerText).filter(t => /\\d+ received/.test(t))"
)


ERROR_SHOWN = f"{ERROR_OUTPUTS}.length > 0"
ALL_RAN = f"{PROMPTS}.length > 0 && {PROMPTS}.every(e => /\\[\\d+\\]/.test(e.innerText))"


def wait_until(page: Any, condition: str, what: str, *, arg: Any = None, timeout: float) -> None:
    """Poll the JavaScript ``condition`` (a function of ``arg``) in the page; on timeout fail
    saying ``what`` did not happen, with the cells' prompts and error outputs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"arg => {{ {condition} }}", arg=arg, timeout=timeout * 1000, polling=500
        )
        return
    except PlaywrightTimeout:
        pass  # said below, with what the page shows, without Playwright's traceback
    prompts = page.evaluate(f"{PROMPTS}.map(e => e.innerText.trim()).join(' ')")
    pytest.fail(
        f"{what} within {timeout:g} s; prompts: {prompts}; "
        f"errors: {page.evaluate(ERROR_OUTPUTS)}; live view: {page.evaluate(LIVE_STATS)}; "
        f"page errors: {page.errors}"
    )


def received(page: Any) -> int:
    texts = page.evaluate(LIVE_STATS)
    assert len(texts) == 1, f"expected one live view counting results, found {texts}"
    match = RECEIVED.search(texts[0])
    assert match is not None
    return int(match.group(1))


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, as a user clicks it."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()


def test_notebook_04_runs_in_jupyterlab_and_its_live_view_keeps_counting(
    browser: Any, lab: Lab, screenshot_on_failure: list[Any]
) -> None:
    page = browser.new_page()
    screenshot_on_failure.append(page)
    page.goto(lab.page_url(NOTEBOOK), wait_until="domcontentloaded")
    notebook = json.loads((lab.root / NOTEBOOK).read_text())
    code_cells = sum(cell["cell_type"] == "code" for cell in notebook["cells"])
    wait_until(
        page,
        "return document.querySelectorAll('.jp-Notebook .jp-CodeCell').length === arg",
        f"JupyterLab did not show the {code_cells} code cells of {NOTEBOOK}",
        arg=code_cells,
        timeout=60,
    )
    # Run All before the kernel is up runs nothing: wait as a user waits for "Idle"
    wait_until(
        page,
        "return /\\| Idle\\b/.test(document.querySelector('#jp-main-statusbar').innerText);",
        "the kernel did not become Idle",
        timeout=60,
    )
    run_all_cells(page)
    # Every code cell ran (its prompt shows an execution count, none is queued [*]), or a
    # cell failed, which stops Run All.
    wait_until(page, f"return ({ALL_RAN}) || {ERROR_SHOWN};", "Run All did not finish", timeout=180)
    errors = page.evaluate(ERROR_OUTPUTS)
    assert errors == [], "cells with error output:\n" + "\n---\n".join(errors)
    assert page.evaluate(ALL_RAN)
    assert browser.outside == [], f"the page reached beyond loopback: {browser.outside}"

    # The live view: a widget (not a static figure) with the latest image, counting results.
    view = page.locator(".jp-Notebook .widget-vbox").filter(has=page.locator("img")).last
    view.wait_for(timeout=30_000)
    wait_until(
        page,
        "const img = [...document.querySelectorAll('.jp-Notebook .widget-vbox img')].pop();"
        "return img !== undefined && img.complete && img.naturalWidth > 100;",
        "the live view shows no image",
        timeout=30,
    )
    wait_until(page, f"return {LIVE_STATS}.length === 1;", "no live view counts", timeout=30)
    first = received(page)
    # It keeps counting while nobody touches the page (the devices publish every 0.2 s).
    wait_until(
        page,
        f"return {LIVE_STATS}.some(t => parseInt(t.match(/(\\d+) received/)[1]) > arg);",
        f"the live view stayed at {first} received",
        arg=first,
        timeout=30,
    )
    second = received(page)
    assert second > first
    caption = view.locator(".widget-html").first.inner_text()
    assert f"{PROJECT}-core-1" in caption, caption
    assert page.errors == [], page.errors
