"""Start the worker that runs a submission's code, locked down; end it and everything it started.

Under root (Gradescope's container, CI) the worker runs:
- as an unprivileged user of its own (WORKER_UID, in no group), with no new privileges (setpriv);
- in its own network namespace (no network, not even the judge's loopback), PID namespace
  (when the worker dies, the kernel ends every process it left behind), IPC namespace, and mount
  namespace with an empty tmpfs of its own on /tmp, /var/tmp, /dev/shm and /run/lock, where
  `unshare` is allowed;
- under limits on address space, processes, CPU time, file size and core dumps (prlimit);
- with a scrubbed environment, in a fresh folder of its own (removed by `end`), reading a tree that
  holds only the package and the submission's files, which it cannot write.

Where unshare is refused, the worker still runs as its own user with the limits, and `end` kills
every process of that user and removes what it left in the shared temporary folders (`clean_private`).
Without root (a learner's laptop) none of this is possible: the worker runs as the learner, with the
limits, in its own process group. `describe()` says which.

This file is the public API (prepare_tree, start, startup_output, end, and the names below from the
parts): the worker's user and limits are in sandbox_user.py, its mount namespace and private folders
in sandbox_mounts.py, the view of the judge's Python it gets where it cannot read the interpreter in
sandbox_python.py.

Whatever keeps the worker from starting (a tool missing, a permission or a limit refused, a file it
cannot read) raises `CannotRun`: the grader's failure, which the grade reports as such, never as the
submission's.

The sandbox files import one another relatively and nothing but the standard library: the
autograder's driver (release.py, run with `python -I`) loads this folder by path, apart from the package.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .sandbox_mounts import clean_private, keep_paths, namespace_script, private_dirs
from .sandbox_python import interpreter
from .sandbox_user import (LIMITS, TOOLS, WORKER_GID, WORKER_UID, CannotRun, alive, capabilities, describe, kill_user,
                           require, shared_temp, unreadable)

__all__ = ["WORKER_UID", "WORKER_GID", "CannotRun", "capabilities", "describe", "require", "kill_user", "alive",
           "shared_temp", "clean_private", "interpreter", "worker_command", "worker_environment", "prepare_tree",
           "start", "startup_output", "end"]


def worker_command(tree: Path, fds, caps: dict, python: str = sys.executable, mounts=(), keep=()) -> list[str]:
    """The command that starts the worker: fds are its ends of the pipes (data in, data out, control in,
    control out). With namespaces it gets, in its own mount namespace and before it drops to its user,
    the read-only `mounts` (a view of the judge's Python) and an empty tmpfs of its own on each of
    PRIVATE_DIRS, on which the paths of `keep` that lie under them are bound back as they were (its own
    folder, the Python it runs); they vanish with the namespace when the worker ends."""
    # -s and PYTHONSAFEPATH (not -I, which would drop PYTHONPATH): the tree is the only place to import from
    tools = caps.get("tools") or {name: name for name in TOOLS}
    command = [python, "-s", "-m", "mini_diffusion._course.worker", "serve", *map(str, fds)]
    if caps["setpriv"]:
        command = [tools["setpriv"], f"--reuid={WORKER_UID}", f"--regid={WORKER_GID}", "--clear-groups",
                   "--no-new-privs", "--", *command]
    if caps["prlimit"]:
        command = [tools["prlimit"], *(f"--{name}={value}" for name, value in LIMITS.items()), "--", *command]
    if caps["namespaces"]:
        script = namespace_script(tools.get("mount") or "mount", mounts, private_dirs(), keep)
        command = [tools["unshare"], "--net", "--pid", "--ipc", "--fork", "--kill-child=SIGKILL", "--mount-proc", "--",
                   "/bin/sh", "-c", script, "worker-namespace", *command]
    return command


def worker_environment(tree: Path, scratch: Path, extra: dict | None = None) -> dict:
    """Nothing of the judge's environment: no AUTOGRADER_*, no report paths, no tokens."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
            "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LC_ALL": "C.UTF-8", **(extra or {})}


def prepare_tree(package_source: Path, exercise_files: dict, where: Path) -> tuple[Path, Path]:
    """A read-only tree for the worker (the package, with exercise_files {module: path} as its exercise
    files) and a scratch folder (root's) in which each worker gets a fresh folder of its own (start).
    Returns (tree, scratch)."""
    tree, scratch = where / "tree", where / "scratch"
    shutil.copytree(package_source, tree / "mini_diffusion",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "reference_models", "weights"))
    for module, path in exercise_files.items():
        (tree / "mini_diffusion" / f"{module}.py").write_bytes(Path(path).read_bytes())
    scratch.mkdir()
    os.chmod(where, 0o755)
    for folder, dirs, files in os.walk(tree):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    if capabilities()["root"]:
        for path in (tree, *tree.rglob("*")):
            os.chown(path, 0, 0)
        os.chown(scratch, 0, 0)  # root's: each worker gets a folder of its own in it (start), removed by end
    os.chmod(scratch, 0o755)
    return tree, scratch


def _run_folder(scratch: Path, caps: dict) -> Path:
    """A fresh, empty folder for one worker (its working, home and temporary folder), its user's alone."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="worker-", dir=scratch))
    if caps["root"]:
        os.chown(folder, WORKER_UID, WORKER_GID)
    os.chmod(folder, 0o700)
    return folder


def start(tree: Path, scratch: Path, caps=None):
    """A fresh worker serving the learner's code of `tree`: (process, reader, writer), the data channel.
    It runs in a fresh folder of its own under `scratch` (process.run_folder, removed by `end`); with
    namespaces, its /tmp, /var/tmp, /dev/shm and /run/lock are empty tmpfs of its own. process.control
    is the (reader, writer) of its control channel (worker.py's sessions). The process's `startup_log`
    holds what it wrote before it said it is ready (worker.py's handshake); CannotRun when it cannot be
    started at all."""
    import tempfile

    caps = caps or capabilities()
    tree, scratch = Path(tree), Path(scratch)
    require(caps)
    python = interpreter(tree.parent, caps)
    run = _run_folder(scratch, caps)
    blocked = unreadable([tree / "mini_diffusion" / "__init__.py", run], caps)
    if blocked:
        shutil.rmtree(run, ignore_errors=True)
        raise CannotRun(f"the worker's user (uid {WORKER_UID}) cannot read its own folders: {', '.join(blocked)}",
                        "put them in a folder others can enter (TMPDIR)")
    pipes = [os.pipe() for _ in range(4)]  # data to the worker, data from it, control to it, control from it
    theirs = (pipes[0][0], pipes[1][1], pipes[2][0], pipes[3][1])
    ours = (pipes[0][1], pipes[1][0], pipes[2][1], pipes[3][0])
    log = tempfile.TemporaryFile()  # the worker's stderr until its handshake (it silences it then)
    env = worker_environment(tree, run, {**python["env"], "MINI_DIFFUSION_WORKER_OWN_USER": "1" if caps["setpriv"]
                                         else "", "MINI_DIFFUSION_PRIVATE_DIRS": ":".join(private_dirs())})
    keep = keep_paths(tree, python, caps.get("tools"))
    try:
        process = subprocess.Popen(
            worker_command(tree, theirs, caps, python["executable"], python["mounts"], keep),
            cwd=run, env=env, pass_fds=theirs, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True)
    except OSError as err:
        for fd in (*theirs, *ours):
            os.close(fd)
        log.close()
        shutil.rmtree(run, ignore_errors=True)
        raise CannotRun(f"the worker's command could not be started ({type(err).__name__}: {err})",
                        "check the tools and the Python the autograder uses") from None
    for fd in theirs:
        os.close(fd)
    process.caps, process.startup_log, process.python, process.run_folder = caps, log, python, run
    process.control = (os.fdopen(ours[3], "rb", buffering=0), os.fdopen(ours[2], "wb"))
    return process, os.fdopen(ours[1], "rb"), os.fdopen(ours[0], "wb")


def startup_output(process, limit: int = 1500) -> str:
    """The end of what the worker wrote before its handshake (its stderr then), for the instructor."""
    log = getattr(process, "startup_log", None)
    if log is None or log.closed:
        return ""
    log.seek(0, os.SEEK_END)
    size = log.tell()
    log.seek(max(0, size - limit))
    return log.read().decode("utf-8", "replace").strip()


def end(process) -> None:
    """Kill the worker, its process group, and (under root) every process of the worker's user."""
    for kill in (lambda: os.killpg(process.pid, signal.SIGKILL), process.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    caps = getattr(process, "caps", {})
    if caps.get("root"):
        kill_user(WORKER_UID)
    log = getattr(process, "startup_log", None)
    if log is not None:
        log.close()
    for stream in getattr(process, "control", ()):
        try:
            stream.close()
        except OSError:
            pass
    run = getattr(process, "run_folder", None)
    if run is not None:  # nothing a worker wrote outlives it: its folder, and (without namespaces) its
        shutil.rmtree(run, ignore_errors=True)  # files in the shared temporary folders
    if caps.get("root") and caps.get("setpriv"):
        clean_private(WORKER_UID)
