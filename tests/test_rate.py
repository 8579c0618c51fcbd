"""`vgan rate`: a scripted rater in headless Chromium answers with the keyboard only, deciding from the pixels it
sees; the answers file, the printed score and interval, and the MLflow run come out as its choices imply."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import queue
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from conftest import BIN, workspace_on
from test_plots_offline import chromium
from vgan.cli import main
from vgan.util.errors import DataError
from vgan.util.media import write_gif
from vgan.params import load_params
from vgan.rating.session import CHOICES, _draw_pairs, open_session, wilson_interval

BRIGHT, DARK = 210, 0  # the moving digits' real clips lie between: mostly black, a bright digit


def write_clips(folder: Path, levels: list[int], size: int = 16, frames: int = 8) -> list[Path]:
    """GIF clips of a uniform level with a small square moving across (a video, not a still)."""
    paths = []
    for index, level in enumerate(levels):
        video = np.full((frames, size, size, 3), level, np.uint8)
        for t in range(frames):
            video[t, 6:9, t:t + 3] = 255 - level if level > 128 else 12
        paths.append(folder / f"clip_{index:03d}.gif")
        write_gif(video, paths[-1], fps=8)
    return paths


def test_wilson_interval_matches_published_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # the "rule of three"'s sound cousin
    assert wilson_interval(6, 8) == pytest.approx((0.4093, 0.9285), abs=1e-4)
    assert wilson_interval(50, 100, 0.99) == pytest.approx((0.3753, 0.6247), abs=1e-4)  # z = 2.5758, by hand
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(8, 8)[1] == 1.0 and wilson_interval(3, 0) == (0.0, 1.0)


@pytest.mark.parametrize("successes, n, level", [(3, 10, 0.95), (14, 40, 0.9), (97, 100, 0.99)])
def test_wilson_interval_is_the_textbook_formula(successes, n, level):
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = wilson_interval(successes, n, level)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert type(low) is float and type(high) is float  # plain floats, for the JSON of the score


def test_pairs_show_as_many_clips_of_each_side_as_often_and_each_side_half_the_time():
    pairs = _draw_pairs(12, (4, 5), seed=3)
    assert sorted(np.bincount([first for first, _, _ in pairs])) == [3, 3, 3, 3]
    seconds = np.bincount([second for _, second, _ in pairs], minlength=5)
    assert sorted(seconds) == [0, 3, 3, 3, 3]  # 4 of the 5, each as often as each of the 4 on the other side
    for block in range(3):  # in every block of 4 pairs each shown clip of either side appears once
        assert len({pairs[i][0] for i in range(4 * block, 4 * block + 4)}) == 4
        assert len({pairs[i][1] for i in range(4 * block, 4 * block + 4)}) == 4
    assert sum(left for _, _, left in pairs) == 6
    assert pairs == _draw_pairs(12, (4, 5), seed=3) != _draw_pairs(12, (4, 5), seed=4)


@pytest.mark.parametrize("sets, message", [
    (["rate.samples_dir=nowhere"], "rate.samples_dir 'nowhere' is not a directory"),
    (["rate.samples_dir=empty"], "no GIF clips in empty/ (rate.samples_dir); run `vgan sample` first"),
    (["rate.mode=models", "rate.samples_dir=gifs"], "rate.mode=models needs rate.other_dir"),
    (["rate.mode=models", "rate.samples_dir=gifs", "rate.other_dir=empty"], "no GIF clips in empty/"),
    (["rate.samples_dir=gifs"], "run `vgan shards` first"),
    (["rate.mode=fake"], "parameter rate.mode = 'fake'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, sets, message):
    monkeypatch.chdir(tmp_path)
    write_clips(tmp_path / "gifs", [BRIGHT])
    (tmp_path / "empty").mkdir()
    (tmp_path / "params.yaml").write_text("rate:\n  rounds: 4\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["rate", "--no-mlflow", *[arg for item in sets for arg in ("--set", item)]]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("vgan rate: error: ") and message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no ratings/ folder


def test_bad_flag_names_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    assert main(["rate", "--rounds", "0"]) == 2
    assert "vgan rate: error: --rounds 0: input should be greater than or equal to 1" in capsys.readouterr().err


def test_a_session_resumes_its_pairs_and_answers_and_refuses_other_clips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_clips(tmp_path / "a", [BRIGHT, DARK])
    write_clips(tmp_path / "b", [DARK, BRIGHT, 90])
    (tmp_path / "params.yaml").write_text("rate:\n  mode: models\n  samples_dir: a\n  other_dir: b\n  rounds: 5\n")
    params = load_params("params.yaml")
    session = open_session(params)
    session.record(0, "left", 800)
    session.record(0, "right", 900)  # a second press on an answered round counts once
    session.record(1, "right", 700)
    session.close()
    again = open_session(params)  # as after a killed server
    assert again.meta == session.meta and [a["choice"] for a in again.answers] == ["left", "right"]
    assert again.state()["round"] == 2 and again.state()["answered"] == 2
    for round_index in range(2, 5):
        again.record(round_index, "left", 500)
    assert again.done and again.finished.is_set()
    assert len((tmp_path / "ratings" / "models-seed0" / "answers.jsonl").read_text().splitlines()) == 5
    again.close()
    write_clips(tmp_path / "b", [DARK, BRIGHT, 91])
    with pytest.raises(DataError, match="holds a rating of other clips or settings"):
        open_session(params)


# -- the browser: Chrome DevTools Protocol over a websocket, keyboard input only -------------------------
class Browser:
    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=900,640", "--force-device-scale-factor=1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.time() < deadline and self.process.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(target for target in targets if target["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, accept, timeout: float = 20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(expression)
            if accept(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def press(self, key: str, code: str, key_code: int, text: str = "") -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code,
                      nativeVirtualKeyCode=key_code, **({"text": text} if text and kind == "keyDown" else {}))

    def brightness(self, element_ids: list[str]) -> list[float]:
        """Mean grey level of each element's box in a screenshot: what the rater sees."""
        from PIL import Image

        shot = Image.open(io.BytesIO(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])))
        grey = np.asarray(shot.convert("L"), np.float64)
        levels = []
        for element in element_ids:
            box = self.evaluate(f"JSON.stringify(document.getElementById('{element}').getBoundingClientRect())")
            box = json.loads(box)
            levels.append(grey[int(box["top"]):int(box["bottom"]), int(box["left"]):int(box["right"])].mean())
        return levels

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=20)


KEYS = {"left": [("ArrowLeft", "ArrowLeft", 37), ("1", "Digit1", 49)],
        "right": [("ArrowRight", "ArrowRight", 39), ("2", "Digit2", 50)]}


def test_a_scripted_keyboard_rater_in_chromium_gets_the_score_its_choices_imply(tiny_shards, tmp_path):
    work = workspace_on(tiny_shards, tmp_path / "work")
    # 4 generated clips: 3 brighter than any real moving digit (the rater takes them for real), 1 darker
    levels = [BRIGHT, BRIGHT, DARK, BRIGHT]
    bright_files = {str(path.relative_to(work)) for path, level in zip(write_clips(work / "gen", levels), levels)
                    if level == BRIGHT}
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "VGAN_SYSTEM_METRICS_S": "0"}
    server = subprocess.Popen([str(BIN / "vgan"), "rate", "--set", "rate.samples_dir=gen", "--rounds", "8",
                               "--port", "0", "--set", "rate.display_px=128"],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True)
    reader.start()
    browser = None
    try:
        first = lines.get(timeout=120)
        url = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser: 8 pairs, 0 answered", first).group(1)

        # nothing served names or labels a clip: opaque URLs, raw frames of one size, the same headers
        state = json.load(urllib.request.urlopen(url + "state"))
        assert set(state) == {"answered", "total", "done", "round", "left", "right"}
        served = []
        for side in ("left", "right"):
            assert re.fullmatch(r"clip/[0-9a-f]{16}", state[side]), state
            with urllib.request.urlopen(url + state[side]) as response:
                served.append(([(k, v) for k, v in response.headers.items() if k != "Date"], response.read()))
        assert served[0][0] == served[1][0] and len(served[0][1]) == len(served[1][1]) == 8 * 16 * 16 * 3
        page = urllib.request.urlopen(url).read().decode()
        assert "frames: 8, height: 16, width: 16, fps: 8.0" in page and "Blind two-alternative forced choice" in page

        browser = Browser(tmp_path / "profile")
        browser.call("Page.navigate", url=url)
        decisions = []
        for round_index in range(8):
            browser.wait_for("document.body && document.body.dataset.ready", lambda v: v == f"round-{round_index}")
            pair_html = browser.evaluate("document.getElementById('pair').outerHTML").lower()
            assert not re.search(r"real|fake|generated|gen/|clip_0|sample|shard|val", pair_html), pair_html
            assert '<canvas id="left-img"' in pair_html and "aria-label=\"left clip\"" in pair_html
            left, right = browser.brightness(["left-img", "right-img"])
            side = "left" if left > right else "right"  # the brighter clip looks real to this rater
            decisions.append(side)
            if round_index == 0:  # Tab to the clip (its focus ring shows), Enter chooses it
                for _ in range(CHOICES.index(side) + 1):
                    browser.press("Tab", "Tab", 9)
                focused = browser.evaluate("document.activeElement.id + ' ' + "
                                           "getComputedStyle(document.activeElement).outlineStyle")
                assert focused == f"{side} solid", focused
                browser.press("Enter", "Enter", 13, text="\r")
            else:
                browser.press(*KEYS[side][round_index % 2])  # arrows and digits
        browser.wait_for("document.body.dataset.ready", lambda v: v == "done")
        assert "8 answers are saved" in browser.evaluate("document.getElementById('finish').innerText")
        assert server.wait(timeout=120) == 0, server.stderr.read()
    finally:
        if browser:
            browser.close()
        if server.poll() is None:
            server.kill()
    reader.join(timeout=10)
    out = first + "".join(lines.queue)
    answers = [json.loads(line) for line in (work / "ratings/real-seed0/answers.jsonl").read_text().splitlines()]
    assert [answer["choice"] for answer in answers] == decisions and [a["round"] for a in answers] == list(range(8))
    for answer in answers:  # the rater chose the brighter clip: a bright generated one, else the real one
        fooled = answer["chosen"] == "generated"
        assert fooled == (answer["chosen_source"] in bright_files or answer["other_source"] in bright_files), answer
    assert sum(answer["chosen"] == "generated" for answer in answers) == 6  # each clip of either side shown twice
    assert "rate: fool rate 0.750 [0.409, 0.929] (95% Wilson interval; in 6 of 8 pairs the generated clip was " \
           "chosen as real; 0.5 = indistinguishable) -> ratings/real-seed0/answers.jsonl; MLflow run " in out, out

    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`vgan.stage` = 'rate'")
    assert len(runs) == 1 and runs[0].info.run_id in out
    run = runs[0]
    assert run.info.run_name == "rate-real-seed0" and run.info.status == "FINISHED"
    assert run.data.metrics["fool_rate"] == 0.75 and run.data.metrics["answers"] == 8
    assert run.data.metrics["fool_rate_ci_low"] == pytest.approx(0.4093, abs=1e-4)
    assert run.data.params["rate.rounds"] == "8" and run.data.params["rate.samples_dir"] == "gen"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "rating")) == \
        ["rating/answers.jsonl", "rating/report.md", "rating/session.json"]
    report = (work / "ratings/real-seed0/report.md").read_text()
    assert "fool rate 0.750" in report and "4 distinct clips per side, each shown 2 times" in report
    assert run.data.tags["vgan.rating.protocol"].startswith("Blind two-alternative forced choice: 8 pairs")
