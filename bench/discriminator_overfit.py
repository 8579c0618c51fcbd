"""Do the discriminators memorise the training clips? Their logits on train, held-out and generated clips.

A small dataset lets a discriminator learn its training clips by heart: its logits on them climb while held-out
real clips look fake to it (what ADA, Karras et al. 2020, watches), and its judgement stops teaching the generator.
For every checkpoint of a run's work folder (`bench/quality.py` or `bench/learning_curve.py` leave them), each
discriminator judges n train clips, n val clips (never trained on) and n clips of the raw generator it trained
against, without augmentation; the table gives the mean logits, the train - val gap (memorisation) beside the
val - generated margin (what it still tells apart). Writes
`bench/results/discriminator_overfit_<name>.json`.

    python bench/discriminator_overfit.py --workdir <folder> --name vgan_b32_s0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import REPO, git_commit, public_command  # noqa: E402

import torch  # noqa: E402

from vgan.data.loader import real_clips  # noqa: E402
from vgan.models.zoo import build_model  # noqa: E402
from vgan.params import load_params, params_from  # noqa: E402
from vgan.train.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from vgan.util.io import write_json  # noqa: E402


def mean_logit(D, views: dict) -> float:
    """``D``'s mean logit over a set's view; a fixed seed for the discriminators that pick frames."""
    torch.manual_seed(1)
    return D(views[D.view]).float().mean().item()


def judge_checkpoint(state: dict, train: torch.Tensor, val: torch.Tensor) -> dict:
    params = params_from(state["params"])
    G, discriminators = build_model(params.model, pretrained=False)
    G.load_state_dict(state["G"])
    Ds = torch.nn.ModuleDict(discriminators)
    Ds.load_state_dict(state["D"])
    Ds.eval()  # spectral norm's power iteration stays put
    G.train()  # as the discriminators saw it: batch statistics
    torch.manual_seed(0)
    with torch.no_grad():
        generated = G.views(G.sample_z(len(train)), None, None)
        sets = {"train": G.real_views(train), "val": G.real_views(val), "generated": generated}
        row = {"step": int(state["step"])}
        for name, D in Ds.items():
            scores = {which: mean_logit(D, views) for which, views in sets.items()}
            row[name] = {**{which: round(mean, 4) for which, mean in scores.items()},
                         "train_minus_val": round(scores["train"] - scores["val"], 4),
                         "val_minus_generated": round(scores["val"] - scores["generated"], 4)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a work folder with one run's checkpoints")
    parser.add_argument("--name", required=True, help="names the results file")
    parser.add_argument("--n", type=int, default=256, help="clips per set")
    args = parser.parse_args()
    runs = sorted((args.workdir / "checkpoints").glob("*/"))
    if len(runs) != 1:
        parser.error(f"{args.workdir}/checkpoints holds {len(runs)} runs' checkpoints; expected one")
    params = load_params(args.workdir / "params.yaml")
    shards = str(args.workdir / params.shards.out_dir)
    rows, real = [], None
    for path in list_checkpoints(runs[0]):
        state = load_checkpoint(path)
        if real is None:  # read once, with the model's channels (1 reads grey clips' first channel)
            channels = params_from(state["params"]).model.channels
            real = [real_clips(shards, split, limit=args.n, seed=0, channels=channels)[0] for split in ("train", "val")]
        rows.append(judge_checkpoint(state, *real))
        cells = [f"{name}: {v['train']:+.2f} {v['val']:+.2f} {v['generated']:+.2f} (gap {v['train_minus_val']:+.2f}, "
                 f"margin {v['val_minus_generated']:+.2f})"
                 for name, v in rows[-1].items() if name != "step"]
        print(f"step {rows[-1]['step']:6d}  " + " | ".join(cells), flush=True)
    out = REPO / "bench" / "results" / f"discriminator_overfit_{args.name}.json"
    write_json(out, {"command": public_command("bench/discriminator_overfit.py", sys.argv[1:]),
                     "date": time.strftime("%Y-%m-%d"), "git_commit": git_commit(), "n": args.n,
                     "columns": "mean logits on train / val / generated clips, train - val, val - generated",
                     "rows": rows}, indent=1)
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
