"""Data stages: fetch (sources, downloads, archives) and shards (ffmpeg decode), and the clip loader."""
