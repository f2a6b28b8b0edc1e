"""Fixtures for the browser tests: headless Chromium, a JupyterLab server, tabs.

Chromium is Debian's (tools/install_browser.sh), driven by Playwright. A browser that cannot
start fails the run in CI (CI=true) and skips it on a developer's machine. The server's
kernels get MINI_DIFFUSION_SOLUTIONS=1.
"""

import shutil

import pytest

from lab_driver import ARTIFACTS, CHROMIUM_ARGS, CHROMIUM_NAMES, VIEWPORT, Lab, LabServer, browser_unavailable, \
    copy_course, find_chromium


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """Headless Chromium with a fresh profile, shared by every test."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        browser_unavailable(f"Playwright is not installed ({error}); pip install -e '.[dev]'")
    executable = find_chromium()
    if executable is None:
        browser_unavailable(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH, and $CHROMIUM); "
                            "run tools/install_browser.sh")
    try:
        playwright = sync_playwright().start()
    except Exception as error:  # its node driver failed to start: a broken Playwright install
        browser_unavailable(f"Playwright did not start: {error}")
    try:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT)
    except PlaywrightError as error:
        playwright.stop()
        browser_unavailable(f"{executable} did not start: {str(error).strip().splitlines()[0]}")
    yield context
    context.close()
    playwright.stop()


@pytest.fixture(scope="session")
def lab_server(browser_context, tmp_path_factory):
    """JupyterLab on a copy of notebooks/ (as `jupyter lab notebooks/`), kernels with MINI_DIFFUSION_SOLUTIONS=1."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError as error:
        browser_unavailable(f"JupyterLab is not installed ({error}); pip install -e '.[course]'")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # no picture from an earlier run can pass for this one's
    ARTIFACTS.mkdir(parents=True)
    scratch = tmp_path_factory.mktemp("jupyter")
    server = LabServer(copy_course(scratch / "course"), scratch, ARTIFACTS / "jupyter-server.log")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def open_lab(browser_context, lab_server):
    """open_lab(workspace) -> Lab: a new tab with JupyterLab. Tabs still open at the end are closed."""
    tabs = []

    def open_tab(workspace: str) -> Lab:
        tabs.append(Lab(browser_context.new_page(), lab_server, workspace))
        return tabs[-1]

    yield open_tab
    for tab in tabs:
        if not tab.page.is_closed():
            tab.close()
