"""The worker's own user and its limits: what this machine allows, what that user can read, and ending its processes.

Under root the worker runs as WORKER_UID (in no group, with no new privileges: setpriv) under
LIMITS (prlimit); `capabilities()` says which of the tools and namespaces this machine offers,
`describe()` says it in words, and `require()` refuses to run a submission as root without them.
`unreadable()` asks, as the worker's user, which paths it cannot read. `kill_user()` ends every
process of that user. Whatever keeps the worker from starting raises `CannotRun`: the grader's
failure, never the submission's.
"""

import os
import shutil
import signal
import subprocess
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


TOOLS = ("setpriv", "prlimit", "unshare", "mount")  # util-linux, in Ubuntu's base image


class CannotRun(RuntimeError):
    """The worker could not be started or reached: the grader's failure, not the submission's.

    reason: what went wrong, for the instructor ("setpriv is not installed"); fix: what to do about it."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason + (f" ({fix})" if fix else ""))
        self.reason, self.fix = reason, fix


def works(command) -> bool:
    """Whether command runs and exits 0 (within 10 s)."""
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def capabilities() -> dict:
    """What this machine allows: root, setpriv, prlimit, network and PID namespaces; "tools": where
    each tool is (the worker's command runs them by these paths)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    tools = {name: shutil.which(name) for name in TOOLS}
    return {
        "root": root,
        "setpriv": root and tools["setpriv"] is not None,
        "prlimit": tools["prlimit"] is not None,
        "namespaces": root and tools["unshare"] is not None
        and works([tools["unshare"], "--net", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", "true"]),
        "tools": tools,
    }


def describe(caps=None) -> str:
    caps = caps or capabilities()
    if not caps["root"]:
        return ("the worker runs as you, in its own process group, "
                + ("with limits" if caps["prlimit"] else "without limits (no prlimit)") + " (no root: no separate user)")
    missing = [name for name in ("setpriv", "prlimit") if not caps[name]]
    if missing:
        return f"the worker cannot run: {' and '.join(missing)} missing (util-linux), so no submission can be graded"
    parts = [f"as its own unprivileged user (uid {WORKER_UID}) with no new privileges", "with limits",
             "in its own network and PID namespaces" if caps["namespaces"] else
             "without namespaces (unshare refused): its user's processes are killed at the end"]
    return "the worker runs " + ", ".join(parts)


def require(caps: dict) -> None:
    """Under root the worker must drop to its own user and take its limits: without setpriv or prlimit it
    would run the submission as root, unlimited. CannotRun then (the grader's failure)."""
    if not caps["root"]:
        return
    missing = [name for name in ("setpriv", "prlimit") if not caps[name]]
    if missing:
        raise CannotRun(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed, and the worker "
                        "must not run a submission as root without its own user and limits",
                        "install util-linux in the image (apt-get install util-linux), or run on Ubuntu's base image")


def unreadable(paths, caps=None) -> list[str]:
    """Those of `paths` that the worker's user cannot read (a folder: read and enter), found by asking
    as that user (setpriv and sh), so permissions, ACLs and mounts all count. [] without root."""
    caps = caps or capabilities()
    paths = [str(p) for p in paths]
    if not caps["root"] or not paths:
        return []
    require(caps)
    script = 'for p do if [ -d "$p" ]; then { [ -r "$p" ] && [ -x "$p" ]; } || echo "$p"; ' \
             'else [ -r "$p" ] || echo "$p"; fi; done; echo probed'
    command = [caps["tools"]["setpriv"], f"--reuid={WORKER_UID}", f"--regid={WORKER_GID}", "--clear-groups",
               "--no-new-privs", "--", "/bin/sh", "-c", script, "probe", *paths]
    try:
        run = subprocess.run(command, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CannotRun(f"setpriv could not switch to the worker's user (uid {WORKER_UID}): {err}",
                        "check that util-linux's setpriv works in this container") from None
    lines = run.stdout.splitlines()
    if run.returncode != 0 or lines[-1:] != ["probed"]:
        detail = (run.stderr or run.stdout).strip()[-500:] or f"exit code {run.returncode}"
        raise CannotRun(f"setpriv could not run a command as the worker's user (uid {WORKER_UID}): {detail}",
                        "the container must let root change to another user (setpriv --reuid)")
    return lines[:-1]


def shared_temp() -> Path:
    """A folder for the worker's own folders that the worker's user can enter: the temporary folder,
    unless TMPDIR is private, then /tmp or /var/tmp."""
    import tempfile

    candidates = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")]
    blocked = set(unreadable(candidates))
    for folder in candidates:
        if folder.is_dir() and str(folder) not in blocked:
            return folder
    raise CannotRun(f"the worker's user cannot enter any temporary folder ({', '.join(map(str, candidates))})",
                    "make /tmp world-accessible (mode 1777)")


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
