"""Data stages: fetch (sources, downloads, archives) and shards (ffmpeg decode), and the clip loader.

Imports: from vgan only ``util`` and other ``vgan.data`` modules (torch, webdataset and ffmpeg where used), so every
stage can read data without pulling in another.
"""
