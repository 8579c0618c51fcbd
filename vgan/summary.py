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
        lines.append(f"  metrics     metrics/evaluate.json  fd_evaluator={values['fd_evaluator']:.4g} "
                     f"is_evaluator={values['is_evaluator']:.3g} evaluator_val_accuracy={values['evaluator_val_accuracy']:.3f}")
        lines.append("  report      reports/evaluation.md")
    register = Path("metrics/register.json")
    if register.exists():
        reg = json.loads(register.read_text())
        lines.append(f"  registry    {reg['name']} v{reg['version']} (champion: v{reg['champion_version']}; {reg['reason']})")
    lines += ["", "next: source .venv/bin/activate",
              "      mlflow ui --backend-store-uri sqlite:///mlflow.db   (or: make mlflow-ui)",
              "      dvc metrics show   dvc plots show   dvc exp run -S train.steps=1000 && dvc exp show", ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
