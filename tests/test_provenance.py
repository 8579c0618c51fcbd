"""Published figures carry no machine's paths: committed docs, bench results and the reference run's outputs name only
repository paths."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
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
    for path in committed_files("docs", "bench/results", "README.md", "metrics", "reports", "plots", "dvc.lock"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not offenders, "machine paths in committed files:\n" + "\n".join(offenders)


RENDER = ".venv/bin/python bench/quality.py --render"


def test_the_committed_results_page_is_the_render_of_bench_results(tmp_path):
    """docs/results.md is made from bench/results/ (plus its own hand-written notes): render it into a temporary
    folder, without torch, and the committed page must be the same text."""
    page = tmp_path / "results.md"
    script = REPO / "bench" / "quality.py"
    argv = [str(script), "--render", "--docs", str(page), "--notes", str(REPO / "docs/results.md")]
    code = (f"import runpy, sys; sys.argv = {argv!r}; sys.path.insert(0, {str(script.parent)!r}); runpy.run_path({str(script)!r}, run_name='__main__'); "
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "torch not imported", "the render should need no torch"
    committed = (REPO / "docs/results.md").read_text()
    rendered = page.read_text()
    if rendered != committed:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), rendered.splitlines(True),
                                            "docs/results.md (committed)", "render of bench/results/", n=1))
        raise AssertionError(f"docs/results.md is not the render of bench/results/; regenerate it with `{RENDER}` "
                             f"(never edit the tables by hand) and commit it:\n{diff[:4000]}")
    assert (tmp_path / "results" / "curve_default.png").is_file()  # the page's picture, drawn beside it


def test_an_append_entry_is_listed_while_some_of_its_rows_are_in_the_table():
    sys.path.insert(0, str(REPO / "bench"))
    from quality import entries_with_rows

    old = {"models": ["vgan", "mocogan"]}  # recorded before entries named their seeds: 0 and 1
    seed0 = {"models": ["vgan", "mocogan"], "zoo_seeds": [0]}
    mocogan1 = {"models": ["mocogan"], "zoo_seeds": [1]}
    vgan1 = {"models": ["vgan"], "zoo_seeds": [1]}
    assert entries_with_rows([old, seed0, mocogan1]) == [old, seed0, mocogan1]  # vgan seed 1 is still old's
    assert entries_with_rows([old, seed0, mocogan1, vgan1]) == [seed0, mocogan1, vgan1]
    assert entries_with_rows([seed0, seed0]) == [seed0]  # the same command again replaces its entry
