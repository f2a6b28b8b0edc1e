"""Driving JupyterLab for the browser tests: the server process and a learner's hands in a tab.

The server serves a temporary copy of notebooks/ (as `jupyter lab notebooks/` does for a
learner), so running and saving notebooks never touches the working tree.
"""

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often give /dev/shm only 64 MB
]
VIEWPORT = {"width": 1400, "height": 900}
MAX_SHOT_HEIGHT = 12000  # px per screenshot; Chromium cannot capture much taller pages in one go

# JupyterLab user settings for the test server: no news or update pop-ups over the notebook,
# and every cell kept in the page (not only the visible ones), so every output can be inspected.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_unavailable(reason: str):
    """CI must not pass silently without its browser tests; a developer's machine may lack Chromium."""
    if in_ci():
        pytest.fail(f"the browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests need Chromium and Playwright: {reason}")


def find_chromium() -> str | None:
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


# --- The server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_course(target: Path) -> Path:
    """A stand-in for the repository at target: notebooks/ copied, so that runs and saves stay
    out of the working tree, with every file dated now as in a fresh clone (jupytext refuses a
    pair whose .ipynb looks newer than its .py); everything else linked, for the notebooks
    that read ../benchmarks and the like. Returns the copied notebooks folder."""
    target.mkdir()
    for entry in ROOT.iterdir():
        if entry.name != NOTEBOOKS.name:
            (target / entry.name).symlink_to(entry)
    notebooks = target / NOTEBOOKS.name
    shutil.copytree(NOTEBOOKS, notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    now = time.time()
    for path in notebooks.rglob("*"):
        os.utime(path, (now, now))
    return notebooks


def write_lab_settings(folder: Path) -> Path:
    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder


def _end_with_parent() -> None:
    """In the server's process, before it starts: on Linux, ask for SIGTERM when pytest dies, so
    that a killed test run (SIGKILL skips every finalizer) leaves no server and no kernels behind."""
    if sys.platform == "linux":
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LabServer:
    """`jupyter lab` in its own process group, serving `root` on 127.0.0.1 with a token."""

    def __init__(self, root: Path, scratch: Path, log_path: Path, solutions: str | None = "1", env=None):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._stopping_kernels = []
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(scratch / "config"), JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                   **(env or {}))
        env.pop("MINI_DIFFUSION_SOLUTIONS", None)
        if solutions is not None:  # the kernels inherit it
            env["MINI_DIFFUSION_SOLUTIONS"] = solutions
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={write_lab_settings(scratch / 'settings')}",
            f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the notebook model, for the assertions
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(command, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_end_with_parent)

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def shut_down_kernel(self, path: str) -> None:
        """Stop the kernel of the notebook at `path` (relative to the root), if it has one, in the
        background: a kernel takes seconds to exit, and the next test need not wait for it."""
        for session in self.api("sessions"):
            if session["path"] == path:
                stopping = threading.Thread(target=self._end_session, args=(session["id"],))
                stopping.start()
                self._stopping_kernels.append(stopping)

    def _end_session(self, session_id: str) -> None:
        try:
            self.api(f"sessions/{session_id}", method="DELETE", timeout=60)
        except OSError:  # already gone; the server's own shutdown stops whatever is left
            pass

    def stop(self) -> None:
        """Ask the server to stop (it shuts its kernels down); then SIGTERM, then SIGKILL the group.
        Kernels run in sessions of their own, but each exits once its parent server is gone."""
        for stopping in self._stopping_kernels:
            stopping.join(timeout=60)
        if self.process.poll() is None:
            try:
                self.api("shutdown", method="POST", timeout=10)
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):  # whatever is left of the group
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()


# --- The browser and the page ----------------------------------------------------------------

# State of the notebook in the current tab, read from JupyterLab's own model. A cell tagged
# raises-exception is meant to fail (JupyterLab's Run All goes on past it, and nbval accepts it).
NOTEBOOK_STATE_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model) return null;
    const cells = panel.content.model.toJSON().cells;
    const code = cells.filter(c => c.cell_type === 'code');
    const errors = [];
    cells.forEach((c, i) => (c.outputs || []).forEach(o => {
        const expected = (c.metadata?.tags || []).includes('raises-exception');
        if (o.output_type === 'error' && !expected) errors.push(`cell ${i + 1}: ${o.ename}: ${o.evalue}`);
    }));
    const prompts = [...panel.node.querySelectorAll('.jp-InputPrompt')].map(p => p.textContent.trim());
    return {
        kernel: panel.sessionContext.session?.kernel?.status ?? 'none',
        cells: cells.length,
        code_cells: code.length,
        not_run: code.filter(c => c.execution_count === null || c.execution_count === undefined).length,
        pending: prompts.filter(p => p.includes('*')).length,
        errors,
    };
}"""

# Problems visible in the page that the notebook model does not hold: tracebacks shown by
# Output widgets (a widget's callback failed), widgets that failed to render, and LaTeX left raw
# in widget options (radio buttons, toggle buttons and drop-downs show plain text only).
PAGE_PROBLEMS_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const found = [];
    const innermost = [...panel.node.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => !o.querySelector('.jp-OutputArea-output'));
    innermost.forEach(o => {
        const text = (o.innerText || '').trim();
        if (o.closest('.widget-output') && /Traceback \\(most recent call last\\)/.test(text))
            found.push('an Output widget shows a traceback: ' + text.split('\\n').slice(-1)[0].slice(0, 300));
        if (/Error displaying widget/.test(text))
            found.push('a widget failed to render: ' + text.slice(0, 300));
    });
    const options = '.widget-radio-box label, .widget-toggle-button, .widget-dropdown option, .widget-select option';
    panel.node.querySelectorAll(options).forEach(o => {
        if (/\\$[^$]+\\$/.test(o.textContent))
            found.push('a widget option shows raw LaTeX: ' + o.textContent.trim().slice(0, 200));
    });
    return found;
}"""


class Lab:
    """One browser tab with JupyterLab, driven the way a learner drives it.

    Each tab gets a workspace (JupyterLab's saved layout) of its own, so that no tab reopens
    the notebooks of another."""

    def __init__(self, page, server: LabServer, workspace: str):
        self.page = page
        page.goto(f"{server.url}/lab/workspaces/{workspace}?reset&token={server.token}")
        page.locator(".jp-DirListing-item").first.wait_for(timeout=60_000)

    # Files

    def file_item(self, name: str):
        text = self.page.locator(".jp-DirListing-itemText", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
        return self.page.locator(".jp-DirListing-item", has=text)

    def open_from_file_browser(self, name: str, open_with: str | None = None) -> None:
        """Double-click the file in the file browser, or right-click → Open With → `open_with`."""
        item = self.file_item(name)
        item.wait_for(timeout=30_000)
        if open_with is None:
            item.dblclick()
        else:
            item.click(button="right")
            self.page.locator(".lm-Menu-item", has_text=re.compile(r"^\s*Open With\s*$")).hover()
            self.page.locator(".lm-Menu-item", has_text=re.compile(rf"^\s*{re.escape(open_with)}\s*$")).click()
        tab = self.page.locator(".jp-NotebookPanel:visible")
        tab.wait_for(timeout=60_000)
        self.page.wait_for_function(
            f"() => window.jupyterapp.shell.currentWidget?.title?.label === {json.dumps(name)}"
            " && window.jupyterapp.shell.currentWidget.context?.isReady", timeout=60_000)

    def state(self) -> dict:
        return self.page.evaluate(NOTEBOOK_STATE_JS)

    # Running

    def wait_for_kernel(self, timeout: float = 120) -> None:
        """Until the notebook's kernel is idle, accepting the kernel choice if JupyterLab asks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dialog = self.page.locator(".jp-Dialog")
            if dialog.count() and dialog.get_by_text("Select Kernel").count():
                dialog.locator(".jp-mod-accept").click()
            if self.state()["kernel"] == "idle":
                return
            time.sleep(0.25)
        raise AssertionError(f"the kernel did not become idle within {timeout:.0f} s (state: {self.state()})")

    def run_all_cells(self) -> None:
        """Run → Run All Cells, from the menu bar, after clearing stored outputs and counts so
        that whatever shows afterwards comes from this run."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click()
        self.page.locator(".lm-Menu-item", has_text=re.compile(r"^\s*Run All Cells\s*$")).click()

    def wait_until_run_finished(self, timeout: float) -> dict:
        """Until the kernel is idle and every code cell has run (or one failed, which stops Run All),
        seen three times, half a second apart."""
        deadline = time.monotonic() + timeout
        settled = 0
        while time.monotonic() < deadline:
            state = self.state()
            if state["kernel"] in ("dead", "autorestarting"):
                raise AssertionError(f"the kernel died while the notebook ran (out of memory?): {state}")
            done = state["kernel"] == "idle" and not state["pending"] and (not state["not_run"] or state["errors"])
            settled = settled + 1 if done else 0
            if settled >= 3:
                return state
            time.sleep(0.5)
        raise AssertionError(f"the notebook was still running after {timeout:.0f} s: {self.state()}")

    def problems(self) -> list[str]:
        state = self.state()
        found = list(state["errors"])
        if state["not_run"]:
            found.append(f"{state['not_run']} of {state['code_cells']} code cells never ran")
        return found + self.page.evaluate(PAGE_PROBLEMS_JS)

    # Pictures

    def screenshot_notebook(self, stem: str) -> list[Path]:
        """The whole notebook, top to bottom: the window grown to the notebook's height (in
        parts of at most MAX_SHOT_HEIGHT px). Returns the files written under test-artifacts/."""
        scroller = self.page.locator(".jp-NotebookPanel:visible .jp-WindowedPanel-outer")
        total = scroller.evaluate("el => el.scrollHeight")
        chrome = VIEWPORT["height"] - scroller.evaluate("el => el.clientHeight")
        height = min(total, MAX_SHOT_HEIGHT)
        self.page.set_viewport_size({"width": VIEWPORT["width"], "height": height + chrome})
        paths = []
        try:
            for part, top in enumerate(range(0, total, height), 1):
                scroller.evaluate("(el, top) => { el.scrollTop = top; }", top)
                self.page.wait_for_timeout(300)  # let images decode and lay out
                suffix = "" if total <= height else f"-part{part}"
                paths.append(ARTIFACTS / f"{stem}{suffix}.png")
                self.page.screenshot(path=paths[-1])
        finally:
            self.page.set_viewport_size(VIEWPORT)
        return paths

    def close(self) -> None:
        self.page.close()
