"""Helpers every stage shares, none of them a stage: atomic file writes and the shards' manifest (``io``), writing and
reading the project's torch files (``torch_files``), videos people look at (``media``), progress bars (``progress``), the
project's exceptions (``errors``), the CPU math pin (``cpu``), the torch device a stage runs on (``devices``)
and retries with back-off (``retry``).

Imports: the standard library and third-party packages only (torch, numpy, PIL, tqdm imported where used), and
from vgan only other ``vgan.util`` modules, so any package may import it and it never imports them back.
"""
