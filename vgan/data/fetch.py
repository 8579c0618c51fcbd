"""The fetch stage: bring the configured source's videos into `data.raw_dir` and write its index.json."""

from __future__ import annotations

from pathlib import Path

from vgan.data.sources import fetch_folder, fetch_ucf101, fetch_urls, write_index

FETCHERS = {"folder": fetch_folder, "urls": fetch_urls, "ucf101": fetch_ucf101}


def fetch(params) -> dict:
    """Run the source named by `data.source`; returns the index it wrote to `<raw_dir>/index.json`."""
    data = params.data
    if data.source == "moving_digits":
        from vgan.data.digits import synthesize

        return synthesize(data)  # writes its own mp4s and index.json
    index = FETCHERS[data.source](data)
    write_index(Path(data.raw_dir), index)
    return index
