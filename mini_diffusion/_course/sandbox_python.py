"""A view of the judge's Python that the worker's user can read, where it cannot read the interpreter itself.

The worker's user must be able to read the Python that runs it. Where the interpreter, its standard
library or its packages lie in a folder others cannot enter (an instructor's venv in a private home
folder), `interpreter()` gives the worker a view of them in a folder made for it in each grading:
read-only mounts in its own namespace, or hard links (copies where a link is not possible) of what
it cannot reach and links to what it can. The instructor's folders stay as they are.
"""

import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path

from .sandbox_user import WORKER_UID, CannotRun, capabilities, unreadable

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
