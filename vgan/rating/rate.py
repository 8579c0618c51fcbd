"""`vgan rate`'s entry point: open (or resume) the session as its only writer, serve it until every pair is
answered, score it, write its report."""

from __future__ import annotations

import sys

from vgan.rating.server import Rating, is_loopback
from vgan.rating.session import log_rating, open_session, summary_line, with_flags, write_report


def rate(params, **flags) -> dict:
    """Run a rating session; ``flags`` (rounds, port, host, session, mlflow; None = from params) override the
    ``rate`` group. Returns the score, the summary line, the protocol, the report and the MLflow run id (None
    with mlflow off)."""
    effective = with_flags(params, **flags)
    cfg = effective.rate
    if not is_loopback(cfg.host):
        print(f"vgan rate: warning: rate.host {cfg.host} is not a loopback address: anyone who can reach this "
              f"machine can open the rating page (answers still need the page's per-session token); use "
              f"127.0.0.1 unless raters on other machines must reach it", file=sys.stderr, flush=True)
    session = open_session(effective)
    try:
        if not session.done:
            rating = Rating(session, cfg.display_px)

            def announce(url: str) -> None:
                session.writer.announce(url)
                print(f"rate: open {url} in a browser: {session.total} pairs, {len(session.answers)} answered "
                      f"(answers -> {session.answers_file}); Ctrl-C stops, the same command resumes", flush=True)

            try:
                rating.serve(cfg.host, cfg.port, announce)
            except KeyboardInterrupt:
                print(f"rate: stopped with {len(session.answers)} of {session.total} pairs answered (saved in "
                      f"{session.answers_file}); run the same command to go on", file=sys.stderr)
                raise
        result = session.score(cfg.ci_level)
        report = write_report(session, result)
        run_id = None
        if cfg.mlflow:  # nested under the pipeline run of the params as given: the command-line flags do not move it
            run_id = log_rating(params, cfg, session, result)
    finally:
        session.close()
    return {"score": result, "line": summary_line(session, result), "protocol": session.meta["protocol"],
            "report": str(report), "run_id": run_id, "answers_file": str(session.answers_file)}
