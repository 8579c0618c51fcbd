"""Does this run reproduce the committed reference run? Compares outputs with it by content hash, stage by stage.

    make check-reference                       # after `make run`: against dvc.lock and metrics/evaluate.json at HEAD
    python scripts/check_reference.py --rev v1.0
    python scripts/check_reference.py --lock other/dvc.lock --metrics other/evaluate.json

The reference is what a commit records: the md5 of every stage output in its ``dvc.lock`` (DVC's own hashes: a
file's md5, or for a folder the md5 of its sorted listing of file md5s) and the values in its
``metrics/evaluate.json``. The run is what lies in the working tree now. One line per stage, in pipeline order:
``same``, ``DIFFERS`` (the first stage whose outputs differ) or ``differs`` (a later one, which may only follow
from the first), with the outputs that differ and, for ``metrics/evaluate.json``, the values; a stage whose code or
params changed since the reference says so, because then a difference is expected and the reference is stale.
Outputs that change from run to run by design are listed once and not compared. Exit status 0 when every compared
output equals the reference, 1 when one differs, 2 when there is no reference to compare with.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vgan.util.errors import VganError

METRICS_FILE = "metrics/evaluate.json"
# Outputs that differ between two runs of the same code on the same machine: not compared.
NOT_COMPARED = {
    "metrics/train.json": "throughput, a timing",
    "plots/train_losses.csv": "throughput, a timing",
    "metrics/register.json": "MLflow run id and registry version",
}


class ReferenceError(VganError):
    """No reference to compare with (not committed, unreadable)."""

    exit_code = 2


# -- hashes, as DVC computes them ------------------------------------------------------------------
def _ignored(root: Path) -> list[str]:
    """The patterns of the project's .dvcignore (the folder and file-name globs it uses)."""
    path = root / ".dvcignore"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _skip(relpath: str, patterns: list[str]) -> bool:
    parts = relpath.split("/")
    for pattern in patterns:
        if pattern.endswith("/") and pattern.rstrip("/") in parts[:-1]:
            return True
        if not pattern.endswith("/") and fnmatch.fnmatch(parts[-1], pattern):
            return True
    return False


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_hash(path: Path, ignore: list[str] = ()) -> tuple[str, int] | None:
    """(md5 as dvc.lock writes it, number of files) of a file or folder; None when it does not exist.

    A folder's md5 is DVC's: the md5 of the JSON list of {"md5", "relpath"} of its files sorted by relpath, plus
    ".dir"."""
    if path.is_file():
        return file_md5(path), 1
    if not path.is_dir():
        return None
    entries = []
    for item in path.rglob("*"):
        relpath = item.relative_to(path).as_posix()
        if item.is_file() and not _skip(relpath, list(ignore)):
            entries.append({"md5": file_md5(item), "relpath": relpath})
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing).hexdigest() + ".dir", len(entries)


# -- the reference ---------------------------------------------------------------------------------
def _git_show(root: Path, rev: str, path: str) -> str | None:
    try:
        result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ReferenceError("git is not installed; pass the reference as --lock FILE (and --metrics FILE)") from None
    return result.stdout if result.returncode == 0 else None


def load_reference(root: Path, rev: str = "HEAD", lock: Path | None = None, metrics: Path | None = None):
    """(the reference dvc.lock as a dict, its metrics/evaluate.json values or None)."""
    if lock is not None:
        if not lock.is_file():
            raise ReferenceError(f"reference lock {lock} does not exist")
        lock_text, where = lock.read_text(), str(lock)
    else:
        lock_text, where = _git_show(root, rev, "dvc.lock"), f"{rev}:dvc.lock"
        if lock_text is None:
            raise ReferenceError(f"no committed reference: {where} cannot be read in {root} (no git repository, or "
                                 f"dvc.lock not committed there); pass --rev REV or --lock FILE")
    try:
        reference = yaml.safe_load(lock_text)
        stages = reference["stages"]
        assert isinstance(stages, dict)
    except Exception:  # noqa: BLE001 - any malformed lock is the same problem for the user
        raise ReferenceError(f"{where} is not a dvc.lock (no 'stages' mapping)") from None
    if metrics is not None:
        if not metrics.is_file():
            raise ReferenceError(f"reference metrics {metrics} does not exist")
        metrics_text = metrics.read_text()
    else:
        metrics_text = _git_show(root, rev, METRICS_FILE) if lock is None else None
    try:
        values = json.loads(metrics_text) if metrics_text else None
    except json.JSONDecodeError:
        raise ReferenceError(f"reference {METRICS_FILE} is not JSON") from None
    return reference, values


# -- comparing -------------------------------------------------------------------------------------
def _listed(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _short(md5: str) -> str:
    return md5[:8] + (".dir" if md5.endswith(".dir") else "")


def metric_differences(run: dict, reference: dict, rtol: float = 0.0) -> list[str]:
    """'name value (reference value, +x %)' for each value that differs by more than rtol (relative)."""
    notes = []
    for name in [*reference, *(key for key in run if key not in reference)]:
        mine, theirs = run.get(name), reference.get(name)
        if mine is None or theirs is None:
            notes.append(f"{name} {'missing' if mine is None else 'new'}")
        elif isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
            scale = max(abs(theirs), 1e-12)
            if abs(mine - theirs) > rtol * scale:
                relative = (mine - theirs) / scale
                shown = f"{relative:+.1%}" if abs(relative) >= 1e-3 else f"relative {relative:+.1e}"
                notes.append(f"{name} {mine:.6g} (reference {theirs:.6g}, {shown})")
        elif mine != theirs:
            notes.append(f"{name} {mine!r} (reference {theirs!r})")
    return notes


def _drift(root: Path, reference: dict, name: str) -> list[str]:
    """The code files and params stage ``name`` reads that differ from the reference's (other stages' outputs
    among its deps are compared as those stages' outputs, not here)."""
    outputs = {out["path"] for stage in reference["stages"].values() for out in stage.get("outs", [])}
    stage = reference["stages"][name]
    changed = []
    for dep in stage.get("deps", []):
        path = root / dep["path"]
        if dep["path"] not in outputs and path.is_file() and dep.get("md5") and file_md5(path) != dep["md5"]:
            changed.append(dep["path"])
    current = {}
    params_file = root / "params.yaml"
    if params_file.is_file():
        current = yaml.safe_load(params_file.read_text()) or {}
    for values in (stage.get("params") or {}).values():
        for key, value in values.items():
            node = current
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                changed.append(key)
    return changed


def compare(root: Path, reference: dict, reference_metrics: dict | None, rtol: float = 0.0) -> tuple[list[str], str]:
    """(one line per stage, the first stage whose outputs differ or ''), comparing the run in ``root``."""
    ignore = _ignored(root)
    lines, first = [], ""
    skipped = []
    for number, (name, stage) in enumerate(reference["stages"].items(), 1):
        notes = []
        compared = 0
        for out in stage.get("outs", []):
            path = out["path"]
            if path in NOT_COMPARED:
                skipped.append(path)
                continue
            compared += 1
            found = output_hash(root / path, ignore)
            if found is None:
                notes.append(f"{path} missing")
            elif found[0] != out.get("md5"):
                md5, files = found
                count = f", {files} files, reference {out.get('nfiles')}" if files != out.get("nfiles", 1) else ""
                notes.append(f"{path} md5 {_short(md5)} (reference {_short(str(out.get('md5')))}{count})")
            if path == METRICS_FILE and reference_metrics is not None and (root / path).is_file():
                values = metric_differences(json.loads((root / path).read_text()), reference_metrics, rtol)
                if values:
                    shown = "; ".join(values[:4]) + (f"; {len(values) - 4} more" if len(values) > 4 else "")
                    notes.append(f"{len(values)} of {len(reference_metrics)} values differ: {shown}")
                elif found is not None and found[0] != out.get("md5"):
                    notes.append("every value " + (f"within rtol {rtol:g}" if rtol else "equal (the text differs)"))
        drift = _drift(root, reference, name)
        stale = f" [changed since the reference: {_listed(drift)}]" if drift else ""
        if not compared:
            verdict, detail = "skipped", "nothing compared"
        elif notes:
            verdict, detail = ("differs", "; ".join(notes)) if first else ("DIFFERS", "; ".join(notes))
            first = first or name
        else:
            verdict, detail = "same", f"{compared} output{'s' if compared > 1 else ''} equal"
        lines.append(f"{number:>2} {name:<10} {verdict:<8} {detail}{stale}")
    if skipped:
        lines.append("not compared (they change from run to run): "
                     + ", ".join(f"{path} ({NOT_COMPARED[path]})" for path in skipped))
    return lines, first


def cpu_kind() -> str:
    """What the float results depend on here: the architecture, the code paths the float stages are pinned to
    (VGAN_CPU_ISA, vgan/util/cpu.py), the threads and the CPU model."""
    from vgan.util.cpu import describe

    return describe()


def verdict(root: Path, reference: dict, first: str) -> str:
    if not first:
        return "check-reference: reproduced: every compared output equals the reference"
    drift = _drift(root, reference, first)
    if drift:
        return (f"check-reference: NOT reproduced: first difference at stage {first}, whose code or params changed "
                f"since the reference ({_listed(drift)}): a difference is "
                f"expected; refresh the reference (`make run`, commit dvc.lock and {METRICS_FILE}) with that change")
    return (f"check-reference: NOT reproduced: first difference at stage {first}, with the reference's code, params "
            f"and inputs; if it computes in floats, the likely cause is the machine: by default the float stages take "
            f"the CPU's widest code paths (another ISA rounds differently) with every core as threads; here: "
            f"{cpu_kind()}. Compare two runs made with VGAN_CPU_ISA=avx2 (the same bits on any Intel AVX2 CPU), or the "
            f"metric values with a tolerance (--rtol 0.05); see README 'Reproducing the reference run'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.add_argument("--rev", default="HEAD", help="the commit holding the reference (default: HEAD)")
    parser.add_argument("--lock", type=Path, help="a reference dvc.lock file instead of the committed one")
    parser.add_argument("--metrics", type=Path, help=f"a reference {METRICS_FILE} instead of the committed one")
    parser.add_argument("--rtol", type=float, default=0.0,
                        help=f"relative tolerance for the values of {METRICS_FILE} (default 0: exact)")
    args = parser.parse_args(argv)
    try:
        reference, reference_metrics = load_reference(args.root, args.rev, args.lock, args.metrics)
        lines, first = compare(args.root, reference, reference_metrics, args.rtol)
    except VganError as exc:
        print(f"check-reference: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print("\n".join(lines))
    print(verdict(args.root, reference, first))
    return 1 if first else 0


if __name__ == "__main__":
    sys.exit(main())
