"""Start the worker that runs a submission's code, locked down; end it and everything it started.

Under root (Gradescope's container, CI) the worker runs:
- as an unprivileged user of its own (WORKER_UID, in no group), with no new privileges (setpriv);
- in its own network namespace (no network, not even the judge's loopback) and PID namespace
  (when the worker dies, the kernel ends every process it left behind), where `unshare` is allowed;
- under limits on address space, processes, CPU time, file size and core dumps (prlimit);
- with a scrubbed environment, in a scratch folder of its own, reading a tree that holds only
  the package and the submission's files, which it cannot write.

Where unshare is refused, the worker still runs as its own user with the limits, and `end` kills
every process of that user. Without root (a learner's laptop) none of this is possible: the
worker runs as the learner, with the limits, in its own process group. `describe()` says which.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# a user of its own, in no /etc/passwd, so its processes are its own. MINI_DIFFUSION_WORKER_UID (set by
# the driver from AUTOGRADER_WORKER_UID) gives each of several gradings on one machine its own (tests).
WORKER_UID = WORKER_GID = int(os.environ.get("MINI_DIFFUSION_WORKER_UID", "") or 64023)
LIMITS = {
    "as": 8 * 1024**3,  # bytes of address space (torch reserves a lot; real use is far less)
    "nproc": 64,  # processes and threads of the worker's user
    "cpu": 300,  # seconds of CPU time in all
    "fsize": 16 * 1024**2,  # bytes per written file
    "core": 0,
}


def _works(command) -> bool:
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def capabilities() -> dict:
    """What this machine allows: root, setpriv, prlimit, network and PID namespaces."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return {
        "root": root,
        "setpriv": root and shutil.which("setpriv") is not None,
        "prlimit": shutil.which("prlimit") is not None,
        "namespaces": root and shutil.which("unshare") is not None
        and _works(["unshare", "--net", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", "true"]),
    }


def describe(caps=None) -> str:
    caps = caps or capabilities()
    if not caps["root"]:
        return "the worker runs as you, in its own process group, with limits (no root: no separate user)"
    parts = ["as its own unprivileged user with no new privileges" if caps["setpriv"] else "as root (no setpriv!)",
             "with limits" if caps["prlimit"] else "without limits (no prlimit)",
             "in its own network and PID namespaces" if caps["namespaces"] else
             "without namespaces (unshare refused): its user's processes are killed at the end"]
    return "the worker runs " + ", ".join(parts)


def worker_command(tree: Path, read_fd: int, write_fd: int, caps: dict) -> list[str]:
    # -s and PYTHONSAFEPATH (not -I, which would drop PYTHONPATH): the tree is the only place to import from
    command = [sys.executable, "-s", "-m", "mini_diffusion._course.worker", "serve", str(read_fd), str(write_fd)]
    if caps["setpriv"]:
        command = ["setpriv", f"--reuid={WORKER_UID}", f"--regid={WORKER_GID}", "--clear-groups",
                   "--no-new-privs", "--", *command]
    if caps["prlimit"]:
        command = ["prlimit", *(f"--{name}={value}" for name, value in LIMITS.items()), "--", *command]
    if caps["namespaces"]:
        command = ["unshare", "--net", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", "--", *command]
    return command


def worker_environment(tree: Path, scratch: Path) -> dict:
    """Nothing of the judge's environment: no AUTOGRADER_*, no report paths, no tokens."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
            "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LC_ALL": "C.UTF-8"}


def prepare_tree(package_source: Path, exercise_files: dict, where: Path) -> tuple[Path, Path]:
    """A read-only tree for the worker (the package, with exercise_files {module: path} as its exercise
    files) and a scratch folder it owns. Returns (tree, scratch)."""
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
        os.chown(scratch, WORKER_UID, WORKER_GID)
    os.chmod(scratch, 0o700)
    return tree, scratch


def start(tree: Path, scratch: Path, caps=None):
    """A fresh worker serving the learner's code of `tree`: (process, reader, writer)."""
    caps = caps or capabilities()
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    process = subprocess.Popen(
        worker_command(tree, to_worker_r, from_worker_w, caps), cwd=scratch, env=worker_environment(tree, scratch),
        pass_fds=(to_worker_r, from_worker_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(to_worker_r)
    os.close(from_worker_w)
    process.caps = caps
    return process, os.fdopen(from_worker_r, "rb"), os.fdopen(to_worker_w, "wb")


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
    if getattr(process, "caps", {}).get("root"):
        kill_user(WORKER_UID)


def kill_user(uid: int, rounds: int = 5) -> int:
    """SIGKILL every process whose real or effective user is uid (scanning /proc), until none is left.
    Returns how many were killed."""
    killed = 0
    for _ in range(rounds):
        found = [pid for pid in _pids_of(uid) if pid != os.getpid()]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    return killed


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if str(uid) in status.get("Uid", "").split()[:2] and not status.get("State", "").strip().startswith("Z"):
            pids.append(int(entry.name))  # a zombie is already dead: only its parent can reap it
    return pids


def alive(uid: int = WORKER_UID) -> list[int]:
    return _pids_of(uid)
