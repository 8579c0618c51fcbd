"""What ``vgan models`` prints: sizes and FLOPs of every architecture, and a quick health check."""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from vgan.models.presets import RECIPE, RECIPE_WHY, presets_of
from vgan.models.zoo import (
    ARCHITECTURES,
    build_model,
    recommended_overrides,
    summary_line,
)

# small enough for 2 CPU cores in seconds, big enough that every layer of every architecture exists
CHECK_SIZE = dict(resolution=16, frames=8, width=4, z_dim=8, num_classes=2, channels=1)  # grey, as the default data
CHECK_BATCH = 2


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def generator_gflops(G) -> float:
    """GFLOPs (multiply-add = 2) of one generated clip; ``G`` may live on the meta device."""
    device = next(G.parameters()).device
    G.eval()
    z = G.sample_z(1, device=device)
    y = torch.zeros(1, dtype=torch.long, device=device) if G.num_classes else None
    context = G.condition(torch.zeros(1, G.channels, G.frames, G.resolution, G.resolution, device=device))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        G(z, y, context)
    return counter.get_total_flops() / 1e9


def model_row(name: str, model_params) -> dict:
    """One architecture at the configured size: parameter counts and generator GFLOPs per clip."""
    params = model_params.model_copy(update={"name": name})
    row = {"name": name, "selected": name == model_params.name,
           "size": f"{params.channels}x{params.frames}x{params.resolution}x{params.resolution}",
           "g_params": None, "d_params": {}, "gflops": None, "overrides": list(recommended_overrides(name)),
           "error": None}
    try:
        with torch.device("meta"):  # shapes and FLOPs without allocating (256x256x32 models are large)
            G, discriminators = build_model(params, pretrained=False)
        row["g_params"] = count_parameters(G)
        row["d_params"] = {key: count_parameters(D) for key, D in discriminators.items()}
        row["gflops"] = round(generator_gflops(G), 3)
    except Exception as exc:  # one broken configuration must not hide the others' rows
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def model_table(model_params=None) -> list[dict]:
    """A row per architecture (name, G params, params of each D, GFLOPs per clip, paper's overrides)."""
    # pydantic and params.yaml, kept off the import path of training
    from vgan.params import default_params

    model_params = model_params or default_params(model={"channels": 3}).model
    return [model_row(name, model_params) for name in ARCHITECTURES]


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def format_table(rows: list[dict]) -> str:
    """Plain-text table of ``model_table`` rows; ``*`` marks the configured model."""
    header = ("model", "clip CxTxHxW", "G params", "D params", "GFLOPs/clip", "paper objective (--set ...)")
    lines = [header]
    for row in rows:
        name = row["name"] + (" *" if row["selected"] else "")
        if row["error"]:
            lines.append((name, row["size"], "-", "-", "-", f"cannot build: {row['error']}"))
            continue
        d_params = " + ".join(f"{key} {_millions(n)}" for key, n in row["d_params"].items())
        lines.append((name, row["size"], _millions(row["g_params"]), d_params, f"{row['gflops']:.2f}",
                      " ".join(row["overrides"]) or "(defaults)"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths)) + "  " + line[-1] for line in lines]
    text.insert(1, "-" * len(text[0]))
    text.append("* = model.name in the params; sizes and FLOPs at the configured model.channels, frames, resolution "
                "and width")
    text.append("")
    text += [f"{row['name']:<{widths[0]}}  {summary_line(row['name'])}" for row in rows]
    return "\n".join(text + ["", presets_text([row["name"] for row in rows])])


def presets_text(names) -> str:
    """Each architecture's cpu and paper presets: their overrides and why they differ from the paper."""
    recipe = " ".join(RECIPE)
    lines = ["Presets (--set model.preset=cpu|paper; their values replace the params file's, --set replaces theirs).",
             f"recipe = {recipe}", f"         (why: {RECIPE_WHY})"]
    for name in names:
        presets = presets_of(name)
        if presets is None:
            continue
        for which, (overrides, why) in presets.items():
            shown = " ".join(overrides)
            if shown.startswith(recipe):
                shown = "recipe" + shown[len(recipe):]
            lines.append(f"{name if which == 'cpu' else '':<12} {which:<6} {shown}")
            lines.append(f"{'':<12} {'':<6}   {'why' if which == 'cpu' else 'from'}: {why}")
    return "\n".join(lines)


def check_model(name: str) -> tuple[str, bool, str]:
    """Forward and backward of one architecture at a tiny size on CPU, every regulariser included."""
    from vgan.params import default_params
    from vgan.train.losses import (
        discriminator_loss,
        generator_loss,
        gradient_penalty,
        r1_penalty,
        reconstruction_loss,
    )
    from vgan.train.steps import at_times

    started = time.perf_counter()
    try:
        torch.manual_seed(0)
        G, discriminators = build_model(default_params(model={"name": name, **CHECK_SIZE}).model)
        real = torch.rand(CHECK_BATCH, G.channels, G.frames, G.resolution, G.resolution) * 2 - 1
        labels = G.sample_labels(CHECK_BATCH)
        context = G.condition(real)
        views = G.views(G.sample_z(CHECK_BATCH), labels, context)
        real_views = G.real_views(real)
        loss = reconstruction_loss("l2", *G.reconstruction(views, real))
        for D in discriminators.values():
            fake, true = views[D.view], real_views[D.view]
            D_fake, D_true = at_times(D, views), at_times(D, real_views)
            loss = loss + discriminator_loss("bce", D_true(true, labels), D_fake(fake.detach(), labels))
            loss = loss + gradient_penalty(D_fake, true, fake, labels) + r1_penalty(D_true, true, labels)
            loss = loss + generator_loss("bce", D_fake(fake, labels))
        loss.backward()
        modules = {"G": G, **discriminators}
        missing = [f"{owner}.{pname}" for owner, module in modules.items()
                   for pname, p in module.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            return name, False, f"no gradient reaches {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")
        bad = [owner for owner, module in modules.items()
               if not all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)]
        if not torch.isfinite(loss) or bad:
            return name, False, f"non-finite loss or gradients in {', '.join(bad) or 'the loss'}"
        shape = "x".join(str(s) for s in views["video"].shape[1:])
        return name, True, (f"forward+backward ok: clip {shape}, discriminators {', '.join(discriminators)}, "
                            f"{time.perf_counter() - started:.2f} s")
    except Exception as exc:  # reported per model, so one failure does not hide the rest
        return name, False, f"{type(exc).__name__}: {exc}"


def check_models(names=None) -> list[tuple[str, bool, str]]:
    """``check_model`` for every architecture (or the given names)."""
    return [check_model(name) for name in (names or ARCHITECTURES)]


def format_check(results: list[tuple[str, bool, str]]) -> str:
    """One line per architecture, ``PASS``/``FAIL`` and the reason, then a count."""
    width = max(len(name) for name, _, _ in results)
    lines = [f"{name:<{width}}  {'PASS' if ok else 'FAIL'}  {message}" for name, ok, message in results]
    failed = sum(not ok for _, ok, _ in results)
    lines.append(f"{len(results) - failed}/{len(results)} architectures pass")
    return "\n".join(lines)
