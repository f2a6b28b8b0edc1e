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
every process of that user and removes what it left in the shared temporary folders (`clean_private`). Without root (a learner's laptop) none of this is possible: the
worker runs as the learner, with the limits, in its own process group. `describe()` says which.

The worker's user must be able to read the Python that runs it. Where the interpreter, its standard
library or its packages lie in a folder others cannot enter (an instructor's venv in a private home
folder), `interpreter()` gives the worker a view of them in a folder made for it in each grading:
hard links (copies where a link is not possible) of what it cannot reach, links to what it can.
The instructor's folders stay as they are.

Whatever keeps the worker from starting (a tool missing, a permission or a limit refused, a file it
cannot read) raises `CannotRun`: the grader's failure, which the grade reports as such, never as the
submission's.
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
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


def _works(command) -> bool:
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
        and _works([tools["unshare"], "--net", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", "true"]),
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


# each world-writable folder a worker could leave something in for a later one: a private tmpfs in its own
# mount namespace; where there are no namespaces, what its user leaves there is removed (clean_private)
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
PRIVATE_SIZE = "256m"  # each private tmpfs (memory) at most


def private_dirs() -> list[str]:
    """PRIVATE_DIRS that exist here, as real paths (/var/lock is often a link to /run/lock)."""
    found = []
    for folder in PRIVATE_DIRS:
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in found:
            found.append(real)
    return found


def namespace_script(mount: str, mounts, private, keep) -> str:
    """sh that, as root in the worker's new mount namespace: binds each (source, target) of `mounts`
    read-only; then mounts an empty tmpfs (mode 1777) on each folder of `private`, onto which the
    first-level folders under it that hold a path of `keep` are bound back (recursively, with their own
    mounts) from the covered original, reached through an open descriptor; then runs "$@"."""
    import shlex

    q, m = shlex.quote, shlex.quote(mount)
    lines = []

    def step(command, what):
        lines.append(f"{command} || {{ echo {q('mount-view: could not ' + what)} >&2; exit 126; }}")

    for source, target in mounts:
        step(f"{m} --bind {q(str(source))} {q(str(target))} && {m} -o remount,bind,ro {q(str(target))}",
             f"bind {source} onto {target}")
    for folder in private:
        kept = sorted({Path(folder, Path(k).relative_to(folder).parts[0]) for k in keep
                       if Path(k).is_relative_to(folder) and Path(k) != Path(folder)})
        lines.append(f"exec 3<{q(folder)}")
        step(f"{m} -t tmpfs -o mode=1777,nosuid,nodev,size={PRIVATE_SIZE} mini-diffusion-private {q(folder)}",
             f"mount a private tmpfs on {folder}")
        for path in kept:
            step(f"mkdir -p {q(str(path))} && {m} --no-canonicalize --rbind /proc/self/fd/3/{q(path.name)} {q(str(path))}",
                 f"keep {path} in the private {folder}")
        lines.append("exec 3<&-")
    lines.append('exec "$@"')
    return "\n".join(lines)


def keep_paths(tree: Path, python: dict, tools=None) -> list[str]:
    """What the worker needs that may lie in a folder it gets a private copy of: its own folder, the
    Python that runs it and the folders of the tools run after the mounts (setpriv, prlimit) (real paths)."""
    paths = {Path(tree).resolve().parent, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent,
             Path(os.path.realpath(sys.executable)).parent, Path(os.path.realpath(python["executable"])).parent,
             *(Path(p) for p in sysconfig.get_paths().values()),
             *(Path(os.path.realpath(path)).parent for path in (tools or {}).values() if path)}
    return sorted({os.path.realpath(p) for p in paths})


def clean_private(uid: int, folders=None) -> int:
    """Remove what user uid owns in the world-writable folders (PRIVATE_DIRS and the world-writable
    folders inside them), and its SysV IPC objects. Returns how many were removed. The worker runs it
    between sessions (as its user), the judge when a worker ends (as root)."""
    removed = 0
    for top in folders if folders is not None else private_dirs():
        for folder, dirs, files in os.walk(top):
            deeper = []
            for name in dirs + files:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if info.st_uid == uid:
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        try:
                            os.unlink(path)
                        except OSError:
                            continue
                    removed += 1
                elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002:
                    deeper.append(name)  # another world-writable folder: look inside it too
            dirs[:] = deeper
    return removed + remove_ipc(uid)


def remove_ipc(uid: int) -> int:
    """Remove the SysV shared memory segments, semaphore sets and message queues that uid owns."""
    ipcrm = shutil.which("ipcrm") or "/usr/bin/ipcrm"
    removed = 0
    for kind, flag in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        head = lines[0].split() if lines else []
        if "uid" not in head or len(head) < 2:
            continue
        at_id, at_uid = 1, head.index("uid")  # columns: key, then the id (shmid, semid, msqid)
        for line in lines[1:]:
            parts = line.split()
            if len(parts) > max(at_id, at_uid) and parts[at_uid] == str(uid) and os.path.exists(ipcrm):
                removed += _works([ipcrm, flag, parts[at_id]])
    return removed


def worker_environment(tree: Path, scratch: Path, extra: dict | None = None) -> dict:
    """Nothing of the judge's environment: no AUTOGRADER_*, no report paths, no tokens."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
            "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LC_ALL": "C.UTF-8", **(extra or {})}


# --- What the worker's user can read, and a view of the interpreter where it cannot ------------


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


_STDLIB_SKIPPED = {"site-packages", "dist-packages", "test", "__phello__", "idlelib", "turtledemo"}
# never in the worker's view of site-packages: the course itself (an install of it may hold an instructor's
# own exercise files) and editable installs' finders that point into the instructor's folders
_SITE_SKIPPED_PREFIXES = ("mini_diffusion", "mini-diffusion", "__editable__", "solutions")
_INTERPRETERS: dict = {}  # folder -> the interpreter prepared there (once per grading)


def python_parts() -> dict:
    """What the worker's Python reads, by part: "base" (the interpreter, its shared library, the standard
    library) and "site" (the packages: torch, numpy, safetensors, ...)."""
    paths = sysconfig.get_paths()
    executable = Path(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "/nonexistent")
    soname = sysconfig.get_config_var("INSTSONAME") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None
    stdlib = Path(paths["stdlib"])
    site = sorted({Path(paths["purelib"]), Path(paths["platlib"])})
    return {
        "executable": executable,
        "libraries": [libdir / soname] if soname and (libdir / soname).exists() else [],
        "stdlib": stdlib,
        "dynload": Path(sysconfig.get_config_var("DESTSHARED") or Path(paths["stdlib"]) / "lib-dynload"),
        "site": site,
        "packages": [p for p in (_origin(n) for n in ("torch", "numpy", "safetensors")) if p is not None],
        "venv": Path(sys.prefix) / "pyvenv.cfg" if sys.prefix != sys.base_prefix else None,
    }


def _origin(name: str):
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def interpreter(where: Path, caps=None) -> dict:
    """How the worker runs Python: {"executable", "env", "mounts", "note"}. The judge's own interpreter
    where the worker's user can read all of it; otherwise a view of it in `where`/python, made once per
    folder (every worker of a grading shares it):
    - with namespaces, the parts it cannot read are bound (read-only) into the view inside the worker's
      own mount namespace ("mounts", done as root before it drops to its user): nothing is copied;
    - without, they are hard-linked (copied where a link is not possible) into the view.
    The instructor's folders are never changed. CannotRun when even the view cannot be read."""
    caps = caps or capabilities()
    where = Path(where)
    if where in _INTERPRETERS:
        return _INTERPRETERS[where]
    same = {"executable": sys.executable, "env": {}, "mounts": [], "note": "the judge's own Python"}
    if not caps["root"]:
        _INTERPRETERS[where] = same
        return same
    parts = python_parts()
    base = [parts["executable"], parts["stdlib"] / "os.py", parts["dynload"], *parts["libraries"]]
    site = [*parts["site"], *parts["packages"], *([parts["venv"]] if parts["venv"] else [])]
    blocked = unreadable([*base, *site], caps)
    if not blocked:
        _INTERPRETERS[where] = same
        return same
    bind = bool(caps["namespaces"] and caps["tools"].get("mount")) and all(
        Path(p).is_relative_to(sys.base_prefix) for p in (parts["executable"], parts["stdlib"], *parts["libraries"]))
    started = time.monotonic()
    made = _view(where / "python", parts, base_blocked=any(str(p) in blocked for p in base),
                 site_blocked=[any(str(p) == str(b) or str(b).startswith(str(p) + os.sep) for b in blocked)
                               for p in parts["site"]], bind=bind)
    seconds = time.monotonic() - started
    if not bind:  # a bound view can only be read inside the worker's namespace: its handshake checks it
        still = unreadable([made["executable"], *made["check"]], caps)
        if still:
            raise CannotRun(f"the worker's user (uid {WORKER_UID}) cannot read the Python that runs it, not even the "
                            f"copy made for it: {', '.join(still[:5])}", "put the autograder's Python in a folder "
                            "others can read, such as /opt (the bundle's setup.sh does)")
    how = (f"{len(made['mounts'])} read-only mounts in its namespace" if bind
           else f"{made['files']} files hard-linked or copied")
    made["note"] = (f"a view of the judge's Python made for the worker in {seconds:.2f} s, {how} (its user cannot "
                    f"read {', '.join(blocked[:3])}{' …' if len(blocked) > 3 else ''})")
    _INTERPRETERS[where] = made
    return made


def _view(folder: Path, parts: dict, base_blocked: bool, site_blocked: list, bind: bool) -> dict:
    """folder/base (the interpreter, its library and the standard library, when the worker cannot read
    them) and folder/venv (a virtual environment whose site-packages is the judge's: a link to it where the
    worker can read it; else bound there in its namespace, or hard links)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    counter, env, mounts, check = [0], {}, [], []
    if base_blocked:
        base = folder / "base"
        if bind:  # the whole base prefix, bound onto folder/base
            _mkdir(base)
            mounts.append((str(sys.base_prefix), str(base)))
            executable = base / parts["executable"].relative_to(sys.base_prefix)
            libdir = [base / library.parent.relative_to(sys.base_prefix) for library in parts["libraries"]]
        else:
            executable = base / "bin" / version
            _link_or_copy(parts["executable"], executable, counter)
            for library in parts["libraries"]:
                _link_or_copy(Path(os.path.realpath(library)), base / "lib" / library.name, counter)
            _mirror(parts["stdlib"], base / "lib" / version, counter, skip=lambda rel: rel in _STDLIB_SKIPPED)
            if parts["dynload"].parent != parts["stdlib"]:
                _mirror(parts["dynload"], base / "lib" / version / "lib-dynload", counter)
            libdir = [base / "lib"]
            check.append(base / "lib" / version / "os.py")
        home = executable.parent
        env["LD_LIBRARY_PATH"] = ":".join(sorted({str(d) for d in libdir}))  # before its own (unreadable) RUNPATH
    else:
        executable, home = parts["executable"], parts["executable"].parent
    venv = folder / "venv"
    site = venv / "lib" / version / "site-packages"
    for number, source in enumerate(parts["site"]):
        dest = site if number == 0 else venv / "lib" / version / f"site-packages-{number}"
        hidden = sorted(p for p in source.iterdir() if p.name.lower().startswith(_SITE_SKIPPED_PREFIXES)) \
            if source.is_dir() else []
        if not site_blocked[number]:
            _mkdir(dest.parent)
            os.symlink(source, dest)
        elif bind:
            _mkdir(dest)
            mounts.append((str(source), str(dest)))
            empty = folder / "empty"
            _mkdir(empty)
            # the course's own install and editable finders stay out of sight: an empty folder or /dev/null on top
            mounts += [(str(empty) if p.is_dir() else os.devnull, str(dest / p.name)) for p in hidden]
        else:
            _mirror(source, dest, counter, skip=lambda rel: rel.lower().startswith(_SITE_SKIPPED_PREFIXES))
    if len(parts["site"]) > 1:  # platlib apart from purelib (rare): read through a .pth line
        (site.parent / "_mini_diffusion_platlib.pth").write_text(
            "\n".join(str(venv / "lib" / version / f"site-packages-{n}") for n in range(1, len(parts["site"]))) + "\n")
    _mkdir(venv / "bin")
    os.symlink(executable, venv / "bin" / "python")
    (venv / "pyvenv.cfg").write_text(f"home = {home}\ninclude-system-site-packages = false\n"
                                     f"version = {'.'.join(map(str, sys.version_info[:3]))}\n", encoding="utf-8")
    os.chmod(venv / "pyvenv.cfg", 0o644)
    check += [site / p.relative_to(parts["site"][0]) for p in parts["packages"] if p.is_relative_to(parts["site"][0])]
    return {"executable": str(venv / "bin" / "python"), "env": env, "mounts": mounts, "check": check,
            "files": counter[0]}


def _mirror(source: Path, dest: Path, counter: list, skip=lambda rel: False) -> None:
    """dest: the folders of source, its files hard-linked or copied, its links as they are; the top-level
    names for which skip(name) is true left out."""
    source = Path(source)
    if not source.is_dir():
        return
    for folder, dirs, files in os.walk(source):
        here = Path(folder)
        rel = here.relative_to(source)
        target = dest / rel
        _mkdir(target)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if not skip(d)]
            files = [f for f in files if not skip(f)]
        for name in [d for d in dirs if (here / d).is_symlink()]:  # a link to a folder: kept as a link
            dirs.remove(name)
            os.symlink(os.readlink(here / name), target / name)
        for name in files:
            path = here / name
            if path.is_symlink():
                os.symlink(os.readlink(path), target / name)
            elif path.is_file():
                _link_or_copy(path, target / name, counter)


def _mkdir(path: Path) -> None:
    """path and its missing parents, each 0755 (readable by the worker, whatever the umask)."""
    if path.is_dir():
        return
    _mkdir(path.parent)
    path.mkdir()
    os.chmod(path, 0o755)


def _link_or_copy(path: Path, dest: Path, counter: list) -> None:
    """A hard link where the worker may read the file as it is and nobody but its owner may write it (the
    link changes nothing of the original); otherwise a copy, readable by all (its times kept, so that
    cached bytecode stays valid)."""
    _mkdir(dest.parent)
    info = os.stat(path)
    counter[0] += 1
    if info.st_mode & 0o004 and not info.st_mode & 0o6022:
        try:
            os.link(path, dest)
            return
        except OSError:  # another file system, or links refused: copy
            pass
    shutil.copyfile(path, dest)
    os.chmod(dest, 0o755 if info.st_mode & 0o111 else 0o644)
    os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


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
