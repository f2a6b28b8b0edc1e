"""The worker's private folders: a mount namespace with a tmpfs of its own on each shared temporary folder, else a clean-up.

With namespaces (`unshare`), `namespace_script` is what the worker's command runs as root in its new
mount namespace before it drops to its user: read-only binds of the view of the judge's Python
(sandbox_python.py), then an empty tmpfs on each of PRIVATE_DIRS, onto which the folders it needs
(`keep_paths`) are bound back; they vanish with the namespace. Where unshare is refused,
`clean_private` removes what the worker's user left in those folders, and its SysV IPC objects.
"""

import os
import shutil
import stat
import sys
import sysconfig
from pathlib import Path

from .sandbox_user import works


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
                removed += works([ipcrm, flag, parts[at_id]])
    return removed
