"""Progress bars that work in a terminal and in JupyterLab alike (the samplers' bar: plumbing.sampler)."""

from tqdm.auto import tqdm


def steps_bar(iterable, enabled: bool = True, desc: str | None = None, **kwargs):
    """Wrap `iterable` in a tqdm bar when enabled, else return it unchanged.

    >>> list(steps_bar(range(3), enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, leave=False, **kwargs)
