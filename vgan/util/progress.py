"""Progress bars that stay readable in logs: live on a terminal, one line every 30 s otherwise."""

from __future__ import annotations

import sys


def progress_bar(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
