"""Where to run: pick a device, pick a CPU thread count by measuring, describe the machine.

Small networks on a small CPU are a special case worth knowing about: PyTorch splits each
operation over all cores, and for tiny tensors the cost of sharing the work can exceed the
work itself (on a 2-core CPU a small MLP has been seen to run 10x slower with the default
threads than with one). Whether that happens depends on the machine, so we time it.
"""

import os
import platform
import statistics
import time

import torch


def pick_device(device=None) -> torch.device:
    """The device to train or sample on.

    device: None or "auto" picks the best one present (CUDA, then Apple MPS, then CPU);
    a string such as "cpu", "cuda", "cuda:1", "mps" or a torch.device is used as given,
    after checking that this machine has it.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, 'auto', a string like 'cuda' or a torch.device; got {type(device).__name__}")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{device!r} is not a device name; use 'cpu', 'cuda', 'cuda:0', 'mps' or None for automatic") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was asked for, but PyTorch sees no CUDA GPU here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "pass device=None to use what is available"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but Apple's MPS backend is not available here; pass device=None")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {device.type!r} is not supported here; use 'cpu', 'cuda' or 'mps'")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


# The winner of each measurement, so that a notebook re-running a cell does not pay again.
_fastest_threads: dict = {}


def best_num_threads(fn, candidates=None, *, key=None, repeats: int = 3) -> int:
    """The CPU thread count under which `fn()` runs fastest, found by timing it.

    fn: a small piece of the real work, e.g. a few training steps on a copy of the model.
    candidates: thread counts to try; by default 1, 2 and the current count.
    key: when given (e.g. (model class, batch shape)), the answer is remembered under it
        and later calls with the same key return it without timing again.

    One call warms up (allocations, lazy initialisation), then `repeats` rounds time each
    candidate in turn; a candidate more than twice as slow as the best so far leaves the
    race, so a badly slow setting is paid for only once. Each is judged by its median time,
    and more threads must be at least 10% faster to win: fewer are the safer bet when the
    times are close. The thread count in force before the call is restored, also on error.
    """
    if key is not None and key in _fastest_threads:
        return _fastest_threads[key]
    current = torch.get_num_threads()
    candidates = sorted({1, min(2, current), current} if candidates is None else _checked_counts(candidates))
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {repeats!r}")
    times = {n: [] for n in candidates}
    if len(candidates) > 1:
        try:
            torch.set_num_threads(candidates[0])
            fn()
            racing = candidates
            # Rounds interleave the candidates so that a slow moment of the machine hits all alike.
            for _ in range(repeats):
                for n in racing:
                    torch.set_num_threads(n)
                    start = time.perf_counter()
                    fn()
                    times[n].append(time.perf_counter() - start)
                fastest = min(statistics.median(times[n]) for n in racing)
                racing = [n for n in racing if statistics.median(times[n]) <= 2 * fastest]
        finally:
            torch.set_num_threads(current)
    best = candidates[0]
    for n in candidates[1:]:
        if statistics.median(times[n]) < 0.9 * statistics.median(times[best]):
            best = n
    if key is not None:
        _fastest_threads[key] = best
    return best


def _checked_counts(candidates) -> set:
    candidates = list(candidates)
    if not candidates or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in candidates):
        raise ValueError(f"candidates must be positive integer thread counts; got {candidates!r}")
    return set(candidates)


def describe_device(device=None) -> dict:
    """What ran the work, for a manifest: device, its name, torch version, CPU count."""
    device = pick_device(device)
    info = {
        "device": str(device),
        "type": device.type,
        "name": platform.processor() or platform.machine() or "cpu",
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    elif device.type == "mps":
        info["name"] = f"Apple MPS ({platform.machine()})"
    return info
