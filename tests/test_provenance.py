"""Published figures carry no machine's paths: committed docs and bench results name only repository paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# an absolute path into a temp or home folder of some machine; `.dvc/tmp/` (relative) is not one
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:tmp|home|work|root)/")


def committed_files(*folders: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--", *folders], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in listed.stdout.splitlines() if not name.endswith(".png")]


def test_the_pattern_finds_machine_paths_and_spares_relative_ones():
    assert MACHINE_PATH.search('"pictures": ["/tmp/eH.png"]')
    assert MACHINE_PATH.search("--workdir /home/me/x") and MACHINE_PATH.search("file:///work/main/a")
    assert not MACHINE_PATH.search(".dvc/tmp/flow-logs/") and not MACHINE_PATH.search("docs/results/a.png")


def test_no_committed_doc_or_result_names_a_machine_path():
    offenders = []
    for path in committed_files("docs", "bench/results", "README.md"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not offenders, "machine paths in committed files:\n" + "\n".join(offenders)
