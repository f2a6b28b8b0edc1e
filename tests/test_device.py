"""mini_diffusion.toolkit.device: choosing the device, measuring the best CPU thread count."""

import json
import time

import pytest
import torch

from mini_diffusion.toolkit import device as device_module
from mini_diffusion.toolkit.device import best_num_threads, describe_device, pick_device


@pytest.fixture(autouse=True)
def fresh_thread_cache(monkeypatch):
    monkeypatch.setattr(device_module, "_fastest_threads", {})


def test_pick_device_prefers_cuda_then_mps_then_cpu():
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert pick_device().type == expected, "with no choice given, the best device present should be picked"
    assert pick_device("auto").type == expected, "'auto' should mean the same as None"


def test_pick_device_honours_an_explicit_choice():
    assert pick_device("cpu") == torch.device("cpu"), "an explicit 'cpu' must win even when a GPU is present"
    assert pick_device(torch.device("cpu")) == torch.device("cpu"), "a torch.device should be accepted as is"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_missing_cuda_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


def test_asking_for_a_gpu_index_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="cuda:99"):
        pick_device("cuda:99")


@pytest.mark.parametrize("bad, error", [("gpu0", ValueError), (3, TypeError), ("xla", ValueError)])
def test_bad_device_names_raise_clear_errors(bad, error):
    with pytest.raises(error):
        pick_device(bad)


def _slow_unless(threads_wanted, delay=0.02):
    """A callable that sleeps unless PyTorch runs with `threads_wanted` threads."""
    calls = []

    def fn():
        calls.append(torch.get_num_threads())
        if torch.get_num_threads() != threads_wanted:
            time.sleep(delay)

    return fn, calls


@pytest.mark.parametrize("fast", [1, 2])
def test_best_num_threads_keeps_the_faster_count(fast):
    fn, calls = _slow_unless(fast)
    assert best_num_threads(fn, candidates=[1, 2], repeats=2) == fast, (
        "the thread count under which the callable ran fastest should be returned"
    )
    assert set(calls) == {1, 2}, "every candidate should have been timed"


def test_a_much_slower_thread_count_is_timed_only_once():
    fn, calls = _slow_unless(1, delay=0.05)
    assert best_num_threads(fn, candidates=[1, 2], repeats=4) == 1
    assert calls.count(2) == 1, "a count more than twice as slow should leave the race after its first timing"
    assert calls.count(1) == 5, "the winner should be timed every round, after one warm-up call"


def test_best_num_threads_restores_the_thread_count_also_on_error():
    before = torch.get_num_threads()
    fn, _ = _slow_unless(1, delay=0)
    best_num_threads(fn, candidates=[1, 2], repeats=1)
    assert torch.get_num_threads() == before, "measuring must leave the thread count as it found it"

    def broken():
        raise ZeroDivisionError("inside the timed work")

    with pytest.raises(ZeroDivisionError):
        best_num_threads(broken, candidates=[1, 2])
    assert torch.get_num_threads() == before, "an error while timing must still restore the thread count"


def test_best_num_threads_remembers_its_answer_per_key():
    fn, calls = _slow_unless(2)
    first = best_num_threads(fn, candidates=[1, 2], key=("Net", (256, 2)), repeats=1)
    timed = len(calls)
    assert best_num_threads(fn, candidates=[1, 2], key=("Net", (256, 2))) == first
    assert len(calls) == timed, "a second call with the same key should reuse the answer, not time again"
    best_num_threads(fn, candidates=[1, 2], key=("Net", (64, 2)), repeats=1)
    assert len(calls) > timed, "another input shape is another key and must be measured"


@pytest.mark.parametrize("candidates", [[], [0, 1], [1.5], [True], ["two", 1]])
def test_best_num_threads_rejects_bad_candidates(candidates):
    with pytest.raises(ValueError, match="candidates"):
        best_num_threads(lambda: None, candidates=candidates)


def test_describe_device_is_a_json_ready_manifest_entry():
    info = describe_device("cpu")
    assert info["type"] == "cpu" and info["device"] == "cpu"
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    json.dumps(info)  # a manifest is written as JSON


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_describe_device_names_the_gpu():
    info = describe_device("cuda")
    assert info["name"] == torch.cuda.get_device_name(0), "a CUDA manifest should name the GPU model"
    assert info["cuda_version"] == torch.version.cuda
