"""A rating session: the pairs (drawn with a seed), the answers (one JSONL line each, written atomically, so a
killed server loses nothing answered and the same command resumes), the score and its MLflow run.

Folder ``<rate.out_dir>/<session>/``: ``clips/*.gif`` (every shown clip, re-encoded alike), ``session.json``
(the pairs and which clip is which: never served) and ``answers.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
from pydantic import ValidationError

from vgan.errors import DataError, ParamsError
from vgan.io import write_json, write_text
from vgan.rating.clips import common_shape, folder_clips, harmonised, real_clips

CHOICES = ("left", "right")
# per mode: the two groups (the score counts choices of the first), the question and the score's name
MODES = {
    "real": {"groups": ("generated", "real"), "question": "Which clip is real?", "metric": "fool_rate",
             "meaning": "the generated clip was chosen as real", "chance": "0.5 = indistinguishable"},
    "models": {"groups": ("A", "B"), "question": "Which clip looks more realistic?", "metric": "preference_a",
               "meaning": "model A's clip was chosen as more realistic", "chance": "0.5 = no preference"},
}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at small n and at 0 or n successes)."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, float(centre - half))  # exact ends, not 1e-17 of rounding
    return low, 1.0 if successes == n else min(1.0, float(centre + half))


def with_flags(params, **flags):
    """``params`` with command-line flags (None = not given) applied to its ``rate`` group, validated."""
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return params
    try:
        rate = type(params.rate).model_validate({**params.rate.model_dump(), **given})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"][:1].lower() + err["msg"][1:]
        raise ParamsError(f"--{str(err['loc'][0]).replace('_', '-')} {err['input']!r}: {message}") from None
    return params.model_copy(update={"rate": rate})


@dataclass
class Session:
    folder: Path
    meta: dict
    answers: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def answers_file(self) -> Path:
        return self.folder / "answers.jsonl"

    @property
    def total(self) -> int:
        return len(self.meta["pairs"])

    @property
    def done(self) -> bool:
        return len(self.answers) >= self.total

    def clip_file(self, token: str) -> Path | None:
        """The GIF behind a served token (tokens are random per shown clip; None for an unknown one)."""
        for pair in self.meta["pairs"]:
            for side in CHOICES:
                if pair[side]["token"] == token:
                    return self.folder / "clips" / f"{pair[side]['clip']}.gif"
        return None

    def state(self) -> dict:
        """What the page may know: progress, and the current pair as two opaque URLs."""
        state = {"answered": len(self.answers), "total": self.total, "done": self.done}
        if not self.done:
            pair = self.meta["pairs"][len(self.answers)]
            state.update(round=pair["round"], left=f"clip/{pair['left']['token']}.gif",
                         right=f"clip/{pair['right']['token']}.gif")
        return state

    def record(self, round_index, choice, ms) -> dict:
        """Append one answer (atomically: the whole file is rewritten under a temp name, then renamed); an answer
        to a round already answered is ignored (a double key press), so each round counts once."""
        if choice not in CHOICES or not isinstance(round_index, int):
            raise ValueError(f"expected round (int) and choice (left|right), got {round_index!r}, {choice!r}")
        with self.lock:
            if round_index != len(self.answers) or self.done:
                return self.state()
            pair = self.meta["pairs"][round_index]
            other = CHOICES[1 - CHOICES.index(choice)]
            clips = self.meta["clips"]
            answer = {"round": round_index, "choice": choice, "chosen": clips[pair[choice]["clip"]]["group"],
                      "chosen_source": clips[pair[choice]["clip"]]["source"],
                      "other_source": clips[pair[other]["clip"]]["source"],
                      "ms": int(ms) if isinstance(ms, (int, float)) and ms >= 0 else None,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            lines = "".join(json.dumps(item) + "\n" for item in [*self.answers, answer])
            write_text(self.answers_file, lines)
            self.answers.append(answer)
            if self.done:
                self.finished.set()
            return self.state()

    def score(self, level: float) -> dict:
        mode = MODES[self.meta["mode"]]
        n = len(self.answers)
        hits = sum(answer["chosen"] == mode["groups"][0] for answer in self.answers)
        low, high = wilson_interval(hits, n, level)
        times = [answer["ms"] for answer in self.answers if answer.get("ms") is not None]
        return {mode["metric"]: hits / n if n else float("nan"), f"{mode['metric']}_ci_low": low,
                f"{mode['metric']}_ci_high": high, "hits": hits, "answers": n, "ci_level": level,
                "median_seconds_per_answer": float(np.median(times)) / 1000 if times else float("nan")}


def _digest(cfg, groups) -> str:
    """What a session was made from: mode, seed, rounds, frame rate and every input clip's pixels."""
    digest = hashlib.sha256(json.dumps([cfg.mode, cfg.seed, cfg.rounds, cfg.fps]).encode())
    for group in groups:
        for source, video in group:
            digest.update(source.encode())
            digest.update(np.ascontiguousarray(video).tobytes())
    return digest.hexdigest()[:16]


def _cycled(count: int, length: int, rng: np.random.Generator) -> list[int]:
    """``length`` indices into ``count`` items, each used as evenly as possible, in a shuffled order."""
    order = []
    while len(order) < length:
        order += rng.permutation(count).tolist()
    return order[:length]


def _draw_pairs(rounds: int, counts: tuple[int, int], seed: int) -> list[tuple[int, int, bool]]:
    """(index in group 0, index in group 1, group 0 on the left) per round; each side holds group 0 half the time."""
    rng = np.random.default_rng(seed)
    first, second = _cycled(counts[0], rounds, rng), _cycled(counts[1], rounds, rng)
    on_left = rng.permutation([index % 2 == 0 for index in range(rounds)]).tolist()
    return list(zip(first, second, on_left))


def _inputs(params) -> tuple[list, list]:
    cfg = params.rate
    first = folder_clips(cfg.samples_dir, "rate.samples_dir")
    if cfg.mode == "real":
        second = real_clips(params.shards.out_dir, cfg.real_split, cfg.rounds, cfg.seed)
    else:
        if not cfg.other_dir:
            raise ParamsError("rate.mode=models needs rate.other_dir: model B's folder of GIFs (model A's is "
                              "rate.samples_dir)")
        second = folder_clips(cfg.other_dir, "rate.other_dir")
    return first, second


def open_session(params) -> Session:
    """The session of these params: resumed when its folder was made from the same inputs, else made afresh."""
    cfg = params.rate
    folder = Path(cfg.out_dir) / (cfg.session or f"{cfg.mode}-seed{cfg.seed}")
    groups = _inputs(params)
    digest = _digest(cfg, groups)
    meta_file = folder / "session.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("inputs_digest") != digest:
            raise DataError(f"{folder} holds a rating of other clips or settings (mode, seed, rounds, fps); choose "
                            f"another --session, or remove {folder} to start it again")
        answers = [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines() if line.strip()] \
            if (folder / "answers.jsonl").exists() else []
        session = Session(folder, meta, answers)
        if session.done:
            session.finished.set()
        return session
    from vgan.media import write_gif

    names = MODES[cfg.mode]["groups"]
    shape = common_shape(*groups)
    clips, pairs = {}, []
    for round_index, (first, second, first_left) in enumerate(_draw_pairs(cfg.rounds, tuple(map(len, groups)),
                                                                          cfg.seed)):
        keys = []
        for name, group, index in zip(names, groups, (first, second)):
            key = f"{name.lower()}-{index:03d}"
            if key not in clips:
                source, video = group[index]
                write_gif(harmonised(video, shape), folder / "clips" / f"{key}.gif", fps=cfg.fps)
                clips[key] = {"group": name, "source": source}
            keys.append(key)
        left, right = keys if first_left else keys[::-1]
        pairs.append({"round": round_index, "left": {"token": secrets.token_hex(8), "clip": left},
                      "right": {"token": secrets.token_hex(8), "clip": right}})
    meta = {"mode": cfg.mode, "question": MODES[cfg.mode]["question"], "groups": list(names),
            "inputs_digest": digest, "clip_shape": list(shape), "fps": cfg.fps, "seed": cfg.seed,
            "sources": {names[0]: cfg.samples_dir,
                        names[1]: f"{params.shards.out_dir} ({cfg.real_split})" if cfg.mode == "real" else cfg.other_dir},
            "clips": clips, "pairs": pairs}
    write_json(meta_file, meta, indent=1)  # last: a session interrupted while preparing is prepared again
    return Session(folder, meta)


def summary_line(session: Session, result: dict) -> str:
    mode = MODES[session.meta["mode"]]
    metric = mode["metric"]
    what = "fool rate" if metric == "fool_rate" else "preference for A"
    return (f"{what} {result[metric]:.3f} [{result[f'{metric}_ci_low']:.3f}, {result[f'{metric}_ci_high']:.3f}] "
            f"({result['ci_level']:.0%} Wilson interval; in {result['hits']} of {result['answers']} pairs "
            f"{mode['meaning']}; {mode['chance']})")


def log_rating(params, cfg, session: Session, result: dict) -> str:
    """One MLflow run named for the rating, nested under the pipeline run of ``params``: the rating's settings
    ``cfg`` (params.rate with the command-line flags), the score and its interval, the answers and the pairs
    as artifacts. Returns the run id."""
    from vgan.tracking import stage_run

    with stage_run(params, "rate") as logger:
        logger.set_tags({"mlflow.runName": f"rate-{session.name}", "vgan.rating": session.name,
                         "vgan.rating.question": session.meta["question"]})
        logger.log_params({"rate": {**cfg.model_dump(mode="json"), "session": session.name},
                           "rating": {"clip_shape": session.meta["clip_shape"], **{
                               f"source_{group}": source for group, source in session.meta["sources"].items()}}})
        logger.log_metrics(result)
        logger.log_artifact(session.answers_file, "rating")
        logger.log_artifact(session.folder / "session.json", "rating")
        return logger.run_id
