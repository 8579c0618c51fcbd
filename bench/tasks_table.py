"""The results page's section on what the models do besides unconditional generation (super-resolution,
frame interpolation, inpainting, anomaly detection): one table from the ``bench/results/task_*_<device>.json`` files that
``bench/task_<name>.py`` writes (``bench/quality.py --tasks`` runs them), each row a model against its
baselines on one measure, with the criterion it must meet.
"""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _seconds(value) -> str:
    """Training seconds: one figure, or one per model ({"vsr": 28.1, "interp": 99.0})."""
    if isinstance(value, dict):
        return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in value.items())
    return f"{value:.0f} s"


def _met(passes) -> str:
    return "–" if passes is None else ("yes" if passes else "**no**")


def load_task_results(results_dir: Path, device: str = "cpu") -> list[dict]:
    """Every task's results file, in name order."""
    return [json.loads(path.read_text()) for path in sorted(results_dir.glob(f"task_*_{device}.json"))]


def tasks_markdown(results: list[dict], repo: Path) -> str:
    """Markdown: a table of every task's rows, then each task's command, budget and pictures."""
    if not results:
        return ""
    lines = ["## Beyond generation: super-resolution, interpolation, inpainting, anomaly detection", "",
             "Each row is a model trained by `vgan train` on the moving digits and judged by its own stage against "
             "simple baselines on the same clips (made by `bench/task_<name>.py`; `bench/quality.py --tasks` runs "
             "them all).", "",
             "| task | capability | measure | model | baselines | criterion | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        for row in result["rows"]:
            baselines = ", ".join(f"{name} {_fmt(value)}" for name, value in row["baselines"].items())
            lines.append(f"| {result['task']} | {row['capability']} | {row['measure']} | {_fmt(row['model'])} | "
                         f"{baselines} | {row.get('criterion') or '–'} | {_met(row.get('passes'))} |")
    lines.append("")
    for result in results:
        lines.append(f"- **{result['task']}**: `{result['command']}` on {result['device']} "
                     f"({result['cpu_count']} cores), torch {result['torch']}, commit {result['git_commit']}, "
                     f"{result['date']}; budget {result['budget']}"
                     + (f"; training {_seconds(result['train_seconds'])}" if result.get("train_seconds") else "")
                     + (f". {result['note'][:1].upper()}{result['note'][1:].rstrip('.')}." if result.get("note") else "."))
        for picture in result.get("pictures", []):
            relative = Path(picture).relative_to("docs") if picture.startswith("docs/") else Path("..") / picture
            if (repo / picture).exists():
                lines.append(f"  ![{result['task']}]({relative})")
    lines.append("")
    return "\n".join(lines)
