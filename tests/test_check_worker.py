"""md.check's warm worker: a fresh, forked check each time, and a hang or crash costs only that check."""

import os
import sys

import pytest

from mini_diffusion._course.check_worker import Worker

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm worker needs os.fork (POSIX)")

CHECKS = '''
import os, time, pathlib

def test_reads_the_file_afresh():
    assert pathlib.Path(os.environ["PROBE_FILE"]).read_text() == "right"

def test_hangs():
    time.sleep(600)

def test_crashes():
    os._exit(3)
'''


@pytest.fixture
def worker(tmp_path):
    (tmp_path / "test_probe.py").write_text(CHECKS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    handle = Worker(tmp_path, tmp_path, env)
    yield handle, tmp_path
    handle.close()


def args(folder, name):
    return [str(folder / "test_probe.py"), "-q", "-p", "no:cacheprovider", "-k", name]


def test_each_check_sees_the_file_as_saved_now(worker):
    handle, folder = worker
    probe = folder / "probe.txt"
    env = {"PROBE_FILE": str(probe)}
    probe.write_text("wrong")
    assert handle.run(args(folder, "afresh"), env, timeout=60)["returncode"] == 1, "the check reads 'wrong' and fails"
    probe.write_text("right")
    assert handle.run(args(folder, "afresh"), env, timeout=60)["returncode"] == 0, "after the edit it passes"


def test_a_hanging_check_is_stopped_at_its_deadline_and_the_worker_goes_on(worker):
    handle, folder = worker
    reply = handle.run(args(folder, "hangs"), {}, timeout=2)
    assert reply["timed_out"], "the hanging check must be stopped at 2 s"
    assert handle.alive(), "the worker survives"
    (folder / "probe.txt").write_text("right")
    again = handle.run(args(folder, "afresh"), {"PROBE_FILE": str(folder / "probe.txt")}, timeout=60)
    assert again["returncode"] == 0, "and answers the next check"


def test_a_crashing_check_is_reported_and_the_worker_goes_on(worker):
    handle, folder = worker
    reply = handle.run(args(folder, "crashes"), {}, timeout=60)
    assert reply["returncode"] == 3 and not reply["timed_out"]
    assert handle.alive()


def test_a_dead_worker_is_restarted_on_the_next_check(worker):
    handle, folder = worker
    handle.run(args(folder, "crashes"), {}, timeout=60)
    handle.process.kill()
    handle.process.wait()
    assert not handle.alive()
    assert handle.run(args(folder, "crashes"), {}, timeout=60)["returncode"] == 3, "a new worker took over"
