"""`vgan rate`'s entry point: open (or resume) the session, serve it until every pair is answered, score it."""

from __future__ import annotations

import sys

from vgan.rating.server import Rating
from vgan.rating.session import log_rating, open_session, summary_line, with_flags


def rate(params, **flags) -> dict:
    """Run a rating session; ``flags`` (rounds, port, host, session, mlflow; None = from params) override the
    ``rate`` group. Returns the score, the summary line and the MLflow run id (None with mlflow off)."""
    effective = with_flags(params, **flags)
    cfg = effective.rate
    session = open_session(effective)
    if not session.done:
        rating = Rating(session, cfg.display_px)

        def announce(url: str) -> None:
            print(f"rate: open {url} in a browser: {session.total} pairs, {len(session.answers)} answered "
                  f"(answers -> {session.answers_file}); Ctrl-C stops, the same command resumes", flush=True)

        try:
            rating.serve(cfg.host, cfg.port, announce)
        except KeyboardInterrupt:
            print(f"rate: stopped with {len(session.answers)} of {session.total} pairs answered (saved in "
                  f"{session.answers_file}); run the same command to go on", file=sys.stderr)
            raise
    result = session.score(cfg.ci_level)
    run_id = None
    if cfg.mlflow:  # nested under the pipeline run of the params as given: the command-line flags do not move it
        run_id = log_rating(params, cfg, session, result)
    return {"score": result, "line": summary_line(session, result), "run_id": run_id,
            "answers_file": str(session.answers_file)}
