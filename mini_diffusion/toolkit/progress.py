"""Progress bars that work in a terminal and in JupyterLab alike."""

from tqdm.auto import tqdm


def steps_bar(iterable, enabled: bool = True, desc: str | None = None, **kwargs):
    """Wrap `iterable` in a tqdm bar when enabled, else return it unchanged."""
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, leave=False, **kwargs)
