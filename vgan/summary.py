"""`python -m vgan.summary`: what a pipeline run produced and where to look next."""

from __future__ import annotations

import json
from pathlib import Path


def main() -> None:
    lines = ["", "vgan pipeline outputs:"]
    manifest = Path("data/shards/manifest.json")
    if manifest.exists():
        counts = json.loads(manifest.read_text())["counts"]
        lines.append(f"  shards      data/shards/  ({', '.join(f'{k}={v}' for k, v in counts.items())} clips)")
    lines.append("  generator   models/generator.pt   checkpoints: checkpoints/<run-id>/")
    index = Path("samples/index.json")
    if index.exists():
        sample_index = json.loads(index.read_text())
        lines.append(f"  samples     samples/{sample_index['contact_sheet']}  samples/{sample_index['grid']}  (+ GIF/MP4 per clip)")
    metrics = Path("metrics/evaluate.json")
    if metrics.exists():
        values = json.loads(metrics.read_text())
        interval = ""
        if values.get("fd_evaluator_ci_low") is not None and values.get("fd_evaluator_ci_high") is not None:
            interval = f" (CI {values['fd_evaluator_ci_low']:.4g}-{values['fd_evaluator_ci_high']:.4g})"
        static = values.get("baseline_static_fd_evaluator")
        lines.append(f"  metrics     metrics/evaluate.json  fd_evaluator={values['fd_evaluator']:.4g}{interval}"
                     + (f" static baseline={static:.4g}" if static is not None else "")
                     + f" n={values.get('num_clips', '?')} is_evaluator={values['is_evaluator']:.3g} "
                     f"evaluator_val_accuracy={values['evaluator_val_accuracy']:.3f}")
        baselines = Path("metrics/evaluate_baselines.json")
        if baselines.exists():
            lines.append(f"  standing    {json.loads(baselines.read_text())['standing']}")
        lines.append("  report      reports/evaluation.md   baselines: metrics/evaluate_baselines.json")
    register = Path("metrics/register.json")
    if register.exists():
        reg = json.loads(register.read_text())
        champion = f"v{reg['champion_version']}" if reg.get("champion_version") else "none"
        lines.append(f"  registry    {reg['name']} v{reg['version']} (champion: {champion}; {reg['reason']})")
    lines += ["", "next: source .venv/bin/activate",
              "      mlflow ui --backend-store-uri sqlite:///mlflow.db   (or: make mlflow-ui)",
              "      dvc metrics show   dvc plots show   dvc exp run -S train.steps=3000 && make exps", ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
