"""The bundle's worker between exercises: a forked child per session, and everything it left killed and removed.

With a control channel (sandbox.py gives the bundle's worker one) the worker's first process never
runs learner code. For each session the judge opens (one per exercise graded) it forks a child
that imports the learner's files and answers the calls (serve_worker.py); when the session ends it
kills that child and every other process of its user, removes what they wrote (its folder, their
files in the shared temporary folders, their IPC objects) and drops whatever the judge sent that
nobody read. So nothing a learner function saw, the grader's stand-ins' answers included, reaches
the next exercise.
"""

import os
import select
import signal
import time


def serve_sessions(connection, reader, control, serve_calls) -> None:
    """The worker's parent, which never runs learner code: a child per session, each running
    serve_calls(connection) (serve_worker.py)."""
    from mini_diffusion._course import wire

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, signal.SIG_IGN)  # as the namespace's first process, only its handlers count
    _dumpable(False)  # no process of its user may read or trace its memory (/proc/<pid>/mem, ptrace)
    own_user = os.environ.get("MINI_DIFFUSION_WORKER_OWN_USER") == "1"
    private = [p for p in os.environ.get("MINI_DIFFUSION_PRIVATE_DIRS", "").split(":") if p]
    folder = os.getcwd()
    control_fd = control.reader.fileno()
    while True:
        try:
            message, _ = control.receive()
        except wire.WireError:
            _end_session(None, own_user, folder, private, reader)
            return
        if message.get("op") != "session":
            continue
        pid = os.fork()
        if pid == 0:  # the session's process: the learner's code runs here only
            try:
                os.close(control_fd)
                os.close(control.writer.fileno())
                for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                    signal.signal(number, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _dumpable(True)
                serve_calls(connection)
            finally:
                os._exit(0)
        why = _wait_session(pid, control)
        code = _end_session(pid, own_user, folder, private, reader)
        try:
            control.send({"op": "ended", "code": code, "why": why})
        except (OSError, ValueError):
            return
        if why == "closed":
            return


def _wait_session(pid: int, control) -> str:
    """Wait until the session's process ends ("exited") or the judge ends the session ("end", "closed")."""
    from mini_diffusion._course import wire

    control_fd = control.reader.fileno()
    try:
        process_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        process_fd = None
    try:
        while True:
            watched = [control_fd] + ([process_fd] if process_fd is not None else [])
            ready, _, _ = select.select(watched, [], [], None if process_fd is not None else 0.05)
            if control_fd in ready:
                try:
                    message, _ = control.receive()
                except (wire.WireError, OSError, ValueError):
                    return "closed"  # the judge has gone
                if message.get("op") == "end":
                    return "end"
                continue
            if process_fd is not None and process_fd in ready:
                return "exited"
            if process_fd is None and os.waitpid(pid, os.WNOHANG) != (0, 0):
                return "exited"
    finally:
        if process_fd is not None:
            os.close(process_fd)


def _end_session(pid, own_user: bool, folder: str, private: list, reader) -> int | None:
    """Kill the session's process and (under a user of its own) every other process of that user, reap them,
    remove what they wrote (this folder's contents; their files in the shared temporary folders; their IPC
    objects), and drop whatever the judge sent that nobody read. Returns the process's exit status."""
    code = None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(50):
        if own_user:
            try:
                os.kill(-1, signal.SIGKILL)  # every process of this user but this one (in its namespace)
            except ProcessLookupError:
                pass
        try:
            while True:
                done, status = os.waitpid(-1, os.WNOHANG)
                if done == 0:
                    break
                if done == pid:
                    code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            break
        time.sleep(0.01)
    from mini_diffusion._course.sandbox_mounts import clean_private

    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    if own_user:
        clean_private(os.getuid(), private)
    fd = reader.fileno()
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 1 << 16):
            pass
    except (BlockingIOError, OSError):
        pass
    finally:
        os.set_blocking(fd, blocking)
    return code


def _dumpable(value: bool) -> None:
    """prctl(PR_SET_DUMPABLE): off, no other process of the same user may trace this one or read its
    memory or descriptors through /proc."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 1 if value else 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
