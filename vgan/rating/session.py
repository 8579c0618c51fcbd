"""A rating session: the pairs (drawn with a seed, blind by design), the answers (one fsynced JSONL line each,
appended by the session's only writer, so a killed server loses nothing answered and the same command resumes),
the score, its report and its MLflow run.

Folder ``<rate.out_dir>/<session>/``: ``clips/*.npy`` (the frames served, every clip of one shape),
``clips/*.gif`` (the same clips for people to look at), ``session.json`` (the pairs and which clip is which:
never served), ``answers.jsonl``, ``report.md`` and ``.writer.lock``.

Blindness: both sides show the same number of distinct clips in the same pattern (in every block of that many
pairs each clip of either side appears once), so remembering a clip says nothing about its side; every clip is
served as raw frames of one size with the same headers (``server.py``), so no byte count or header does either.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from vgan.rating.answers import append_answer, posted_answer, read_answers
from vgan.rating.clips import common_shape, folder_clips, harmonised, real_clips
from vgan.rating.lock import SessionLock
from vgan.util.errors import DataError, ParamsError
from vgan.util.io import atomic_path, write_json, write_text

PROTOCOL_VERSION = 2  # 1: GIFs of differing sizes, generated clips repeated more often than real ones
SIDE_NAMES = {"generated": "generated", "real": "real", "A": "model A", "B": "model B"}

CHOICES = ("left", "right")
# per mode: the two groups (the score counts choices of the first), the question and the score's name
MODES = {
    "real": {"groups": ("generated", "real"), "question": "Which clip is real?", "metric": "fool_rate",
             "meaning": "the generated clip was chosen as real", "chance": "0.5 = indistinguishable"},
    "models": {"groups": ("A", "B"), "question": "Which clip looks more realistic?", "metric": "preference_a",
               "meaning": "model A's clip was chosen as more realistic", "chance": "0.5 = no preference"},
}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at small n and at 0 or n successes); (0, 1) for
    n = 0. SciPy's, imported here because scipy.stats costs about a second to import."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


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
    writer: SessionLock | None = None  # this process is the session's only writer while it holds this

    def close(self) -> None:
        """Let another `vgan rate` open the session (the lock also goes when the process ends)."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None

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

    def clip_bytes(self, key: str) -> bytes:
        """The frames of clip ``key`` as served: raw RGB, uint8 (T, H, W, 3) of the session's clip shape."""
        path = self.folder / "clips" / f"{key}.npy"
        try:
            video = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path} ({err}); remove {self.folder} to prepare the session again") from None
        if list(video.shape) != [*self.meta["clip_shape"], 3] or video.dtype != np.uint8:
            raise DataError(f"{path} holds frames of shape {list(video.shape)}, not the session's "
                            f"{self.meta['clip_shape']} + [3]; remove {self.folder} to prepare the session again")
        return np.ascontiguousarray(video).tobytes()

    def state(self) -> dict:
        """What the page may know: progress, and the current pair as two opaque URLs."""
        state = {"answered": len(self.answers), "total": self.total, "done": self.done}
        if not self.done:
            pair = self.meta["pairs"][len(self.answers)]
            state.update(round=pair["round"], left=f"clip/{pair['left']['token']}",
                         right=f"clip/{pair['right']['token']}")
        return state

    def record(self, round_index, choice, ms) -> dict:
        """Append one answer (checked against the schema, then fsynced; a ValueError names what is wrong); an answer
        to a round already answered is ignored (a double key press), so each round counts once."""
        posted = posted_answer({"round": round_index, "choice": choice, "ms": ms})
        with self.lock:
            if posted.round != len(self.answers) or self.done:
                return self.state()
            pair = self.meta["pairs"][posted.round]
            other = CHOICES[1 - CHOICES.index(posted.choice)]
            clips = self.meta["clips"]
            answer = {"round": posted.round, "choice": posted.choice,
                      "chosen": clips[pair[posted.choice]["clip"]]["group"],
                      "chosen_source": clips[pair[posted.choice]["clip"]]["source"],
                      "other_source": clips[pair[other]["clip"]]["source"],
                      "ms": None if posted.ms is None else round(posted.ms),
                      "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self.answers.append(append_answer(self.answers_file, answer))
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
    """(index in group 0, index in group 1, group 0 on the left) per round. Both groups show the same number of
    distinct clips (a seeded subset where a group has more) in the same pattern, each side holds group 0 half
    the time: neither memory nor position says which group a clip belongs to."""
    rng = np.random.default_rng(seed)
    distinct = min(rounds, *counts)
    pools = [sorted(rng.choice(count, distinct, replace=False).tolist()) for count in counts]
    first, second = ([pool[index] for index in _cycled(distinct, rounds, rng)] for pool in pools)
    on_left = rng.permutation([index % 2 == 0 for index in range(rounds)]).tolist()
    return list(zip(first, second, on_left))


def protocol_text(meta: dict) -> str:
    """The protocol of a session in one paragraph: what the page says and the report repeats."""
    pairs, (first, second) = meta["pairs"], meta["groups"]
    distinct, (frames, height, width) = meta["distinct_per_side"], meta["clip_shape"]
    low, extra = divmod(len(pairs), distinct)
    shown = f"{low} time{'s' if low > 1 else ''}" if not extra else \
        f"{low} or {low + 1} times (the same counts on both sides)"
    on_left = sum(meta["clips"][pair["left"]["clip"]]["group"] == first for pair in pairs)
    return (f"Blind two-alternative forced choice: {len(pairs)} pairs, each of one {SIDE_NAMES[first]} and one "
            f"{SIDE_NAMES[second]} clip; {distinct} distinct clips per side, each shown {shown}, so a clip seen "
            f"before is as likely one as the other. Every clip has {frames} frames of {width}x{height} pixels at "
            f"{meta['fps']:g} frames/s and is served as raw frames of the same size "
            f"({frames * height * width * 3:,} bytes) with the same headers under a new random address each time. "
            f"The {SIDE_NAMES[first]} clip is on the left in {on_left} of the {len(pairs)} pairs, in a random "
            f"order drawn with seed {meta['seed']}.")


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
    """The session of these params, opened for writing (``Session.close()`` ends that): resumed when its folder
    was made from the same inputs, else made afresh. Another process holding it open is a DataError."""
    cfg = params.rate
    folder = Path(cfg.out_dir) / (cfg.session or f"{cfg.mode}-seed{cfg.seed}")
    groups = _inputs(params)
    digest = _digest(cfg, groups)
    folder.mkdir(parents=True, exist_ok=True)
    writer = SessionLock(folder)  # before reading or writing anything of the session
    try:
        session = _resume(folder, digest) if (folder / "session.json").exists() else \
            _prepare(folder, params, groups, digest)
    except BaseException:
        writer.release()
        raise
    session.writer = writer
    return session


def _resume(folder: Path, digest: str) -> Session:
    try:
        meta = json.loads((folder / "session.json").read_text())
    except ValueError:
        raise DataError(f"{folder / 'session.json'} is not readable JSON; remove {folder} to start the session "
                        f"again") from None
    if meta.get("protocol_version") != PROTOCOL_VERSION:
        raise DataError(f"{folder} was prepared by an older `vgan rate` whose page was not blind (file sizes and "
                        f"repeats told the clips apart); move it away or choose another --session")
    if meta.get("inputs_digest") != digest:
        raise DataError(f"{folder} holds a rating of other clips or settings (mode, seed, rounds, fps); choose "
                        f"another --session, or remove {folder} to start it again")
    session = Session(folder, meta, read_answers(folder / "answers.jsonl", len(meta["pairs"])))
    if session.done:
        session.finished.set()
    return session


def _prepare(folder: Path, params, groups, digest: str) -> Session:
    from vgan.util.media import write_gif

    cfg = params.rate
    if (folder / "answers.jsonl").exists():  # answers whose pairs are gone: not ours to overwrite
        raise DataError(f"{folder} holds answers.jsonl but no session.json (the pairs they answer); move it away "
                        f"or choose another --session")
    names = MODES[cfg.mode]["groups"]
    shape = common_shape(*groups)
    clips, pairs = {}, []
    draws = _draw_pairs(cfg.rounds, tuple(map(len, groups)), cfg.seed)
    for round_index, (first, second, first_left) in enumerate(draws):
        keys = []
        for name, group, index in zip(names, groups, (first, second)):
            key = f"{name.lower()}-{index:03d}"
            if key not in clips:
                source, video = group[index]
                video = harmonised(video, shape)
                with atomic_path(folder / "clips" / f"{key}.npy") as tmp:
                    np.save(tmp, video, allow_pickle=False)
                write_gif(video, folder / "clips" / f"{key}.gif", fps=cfg.fps)
                clips[key] = {"group": name, "source": source}
            keys.append(key)
        left, right = keys if first_left else keys[::-1]
        pairs.append({"round": round_index, "left": {"token": secrets.token_hex(8), "clip": left},
                      "right": {"token": secrets.token_hex(8), "clip": right}})
    meta = {"protocol_version": PROTOCOL_VERSION, "mode": cfg.mode, "question": MODES[cfg.mode]["question"],
            "groups": list(names), "inputs_digest": digest, "clip_shape": list(shape), "fps": cfg.fps,
            "seed": cfg.seed, "distinct_per_side": len({first for first, _, _ in draws}),
            "sources": {names[0]: cfg.samples_dir,
                        names[1]: f"{params.shards.out_dir} ({cfg.real_split})" if cfg.mode == "real" else cfg.other_dir},
            "clips": clips, "pairs": pairs}
    meta["protocol"] = protocol_text(meta)
    write_json(folder / "session.json", meta, indent=1)  # last: a session interrupted while preparing starts again
    return Session(folder, meta)


def summary_line(session: Session, result: dict) -> str:
    mode = MODES[session.meta["mode"]]
    metric = mode["metric"]
    what = "fool rate" if metric == "fool_rate" else "preference for A"
    return (f"{what} {result[metric]:.3f} [{result[f'{metric}_ci_low']:.3f}, {result[f'{metric}_ci_high']:.3f}] "
            f"({result['ci_level']:.0%} Wilson interval; in {result['hits']} of {result['answers']} pairs "
            f"{mode['meaning']}; {mode['chance']})")


def write_report(session: Session, result: dict) -> Path:
    """``report.md`` of a scored session: the score with its interval, then the protocol it was measured under."""
    path = session.folder / "report.md"
    write_text(path, f"# Rating {session.name}\n\n{session.meta['question']}\n\n**{summary_line(session, result)}**\n\n"
                     f"## Protocol\n\n{session.meta['protocol']}\n\nAnswers: `answers.jsonl` ({len(session.answers)} "
                     f"lines); the pairs and the source of every clip: `session.json`.\n")
    return path


def log_rating(params, cfg, session: Session, result: dict) -> str:
    """One MLflow run named for the rating, nested under the pipeline run of ``params``: the rating's settings
    ``cfg`` (params.rate with the command-line flags), the score and its interval, the answers and the pairs
    as artifacts. Returns the run id."""
    from vgan.tracking.runs import stage_run

    with stage_run(params, "rate") as logger:
        logger.set_tags({"mlflow.runName": f"rate-{session.name}", "vgan.rating": session.name,
                         "vgan.rating.question": session.meta["question"],
                         "vgan.rating.protocol": session.meta["protocol"]})
        logger.log_params({"rate": {**cfg.model_dump(mode="json"), "session": session.name},
                           "rating": {"clip_shape": session.meta["clip_shape"], **{
                               f"source_{group}": source for group, source in session.meta["sources"].items()}}})
        logger.log_metrics(result)
        logger.log_artifact(session.answers_file, "rating")
        logger.log_artifact(session.folder / "session.json", "rating")
        if (session.folder / "report.md").exists():
            logger.log_artifact(session.folder / "report.md", "rating")
        return logger.run_id
