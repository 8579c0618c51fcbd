"""The rating page: one self-contained HTML file (no network), keyboard first, mouse too.

It names nothing about the clips: their URLs are random tokens the page fetches from ``state``, each clip is raw
frames of the session's one shape that the page draws on a canvas (every download the same size), the two
appear together only once both have loaded and play on one clock, and the captions are just "left" and "right".
It states the protocol, and sends the server's per-session token with each answer.
"""

from __future__ import annotations

from html import escape
from string import Template

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vgan rating</title>
<style>
  :root { color-scheme: dark; --accent: #ffb000; }
  * { box-sizing: border-box; }
  body { margin: 0; min-height: 100vh; background: #1d1f24; color: #e8e8ea;
         font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; display: flex; justify-content: center; }
  main { width: min(100%, calc(2 * ${px}px + 120px)); padding: 28px 24px; }
  header { display: flex; justify-content: space-between; align-items: baseline; gap: 16px; }
  h1 { font-size: 1.7rem; margin: 0; font-weight: 650; }
  #progress { font-variant-numeric: tabular-nums; color: #b9bbc2; white-space: nowrap; }
  .bar { height: 6px; background: #34363d; border-radius: 3px; margin: 12px 0 18px; overflow: hidden; }
  .bar > div { height: 100%; width: 0; background: var(--accent); transition: width .2s; }
  .help { color: #b9bbc2; margin: 0 0 22px; }
  kbd { background: #34363d; border: 1px solid #4a4d55; border-bottom-width: 2px; border-radius: 4px;
        padding: 0 6px; font: 1em ui-monospace, monospace; color: #fff; }
  #pair { display: flex; gap: 40px; justify-content: center; visibility: hidden; }
  #pair.shown { visibility: visible; }
  button.clip { background: #2a2c32; border: 3px solid #3a3d45; border-radius: 10px; padding: 10px;
                color: inherit; font: inherit; cursor: pointer; display: flex; flex-direction: column;
                align-items: center; gap: 8px; }
  button.clip:hover { border-color: #6b6f7a; }
  button.clip:focus-visible { outline: 4px solid var(--accent); outline-offset: 3px; }
  button.clip.picked { border-color: var(--accent); background: #3b3423; }
  button.clip canvas { width: ${px}px; height: ${px}px; image-rendering: pixelated; display: block; background: #000; }
  details.protocol { color: #9a9ca4; font-size: .9rem; margin-top: 26px; }
  details.protocol summary { cursor: pointer; }
  .key { color: #b9bbc2; font-size: .95rem; }
  #status { min-height: 1.5em; margin-top: 18px; text-align: center; color: #b9bbc2; }
  #finish { display: none; text-align: center; padding: 60px 0; }
  #finish h2 { font-size: 1.6rem; margin: 0 0 10px; }
  body.done #pair, body.done .help, body.done #status { display: none; }
  body.done #finish { display: block; }
</style>
</head>
<body>
<main>
  <header><h1 id="question">${question}</h1><div id="progress" aria-live="polite">&nbsp;</div></header>
  <div class="bar" aria-hidden="true"><div id="bar"></div></div>
  <p class="help">${help} Press <kbd>&larr;</kbd> or <kbd>1</kbd> for the left clip,
    <kbd>&rarr;</kbd> or <kbd>2</kbd> for the right one, or click it. <kbd>Tab</kbd> moves between the clips
    and <kbd>Enter</kbd> chooses the one in focus. Each pair appears once both clips have loaded.</p>
  <div id="pair">
    <button class="clip" id="left" type="button" aria-label="left clip">
      <canvas id="left-img" width="${width}" height="${height}" role="img" aria-label="left clip"></canvas>
      <span class="key"><kbd>&larr;</kbd> / <kbd>1</kbd> left</span></button>
    <button class="clip" id="right" type="button" aria-label="right clip">
      <canvas id="right-img" width="${width}" height="${height}" role="img" aria-label="right clip"></canvas>
      <span class="key">right <kbd>2</kbd> / <kbd>&rarr;</kbd></span></button>
  </div>
  <div id="status" role="status"></div>
  <details class="protocol"><summary>How this rating is kept blind</summary><p id="protocol">${protocol}</p></details>
  <section id="finish" aria-live="polite"><h2>Thank you: all pairs are rated.</h2>
    <p id="finish-text">Your answers are saved. You can close this tab.</p></section>
</main>
<script>
"use strict";
const CLIP = {frames: ${frames}, height: ${height}, width: ${width}, fps: ${fps}}, TOKEN = "${token}";
const FRAME_BYTES = CLIP.height * CLIP.width * 3;
let state = null, busy = true, shownAt = 0, timer = null;
const el = (id) => document.getElementById(id);

function progress(s) {
  const current = s.done ? s.total : s.answered + 1;
  el("progress").textContent = s.done ? s.total + " of " + s.total + " rated" : "Pair " + current + " of " + s.total;
  el("bar").style.width = (100 * s.answered / s.total) + "%";
}

async function loadClip(url) {
  const response = await fetch(url, {cache: "no-store"});
  if (!response.ok) throw new Error("HTTP " + response.status);
  const rgb = new Uint8Array(await response.arrayBuffer());
  if (rgb.length !== CLIP.frames * FRAME_BYTES) throw new Error("a clip of unexpected size");
  const frames = [];
  for (let t = 0; t < CLIP.frames; t++) {
    const image = new ImageData(CLIP.width, CLIP.height);
    for (let i = t * FRAME_BYTES, j = 0; j < image.data.length; i += 3, j += 4) {
      image.data[j] = rgb[i]; image.data[j + 1] = rgb[i + 1]; image.data[j + 2] = rgb[i + 2]; image.data[j + 3] = 255;
    }
    frames.push(image);
  }
  return frames;
}

function play(clips) {  // both clips on one clock, looping
  clearInterval(timer);
  let t = 0;
  const draw = () => {
    for (const side of ["left", "right"]) el(side + "-img").getContext("2d").putImageData(clips[side][t], 0, 0);
    t = (t + 1) % CLIP.frames;
  };
  draw();
  timer = setInterval(draw, 1000 / CLIP.fps);
}

function show(s) {
  state = s;
  progress(s);
  document.body.dataset.ready = "";
  clearInterval(timer);
  if (s.done) {
    document.body.classList.add("done");
    document.body.dataset.ready = "done";
    el("finish-text").textContent = s.total + " answers are saved. You can close this tab.";
    return;
  }
  busy = true;
  el("pair").classList.remove("shown");
  for (const side of ["left", "right"]) el(side).classList.remove("picked");
  Promise.all([loadClip(s.left), loadClip(s.right)]).then(([left, right]) => {
    if (state !== s) return;  // an answer moved on meanwhile
    play({left, right});
    reveal();
  }).catch((err) => {
    el("status").textContent = "A clip failed to load (" + err.message + "); reload the page to try again.";
  });
}

function reveal() {
  el("pair").classList.add("shown");
  el("status").textContent = "";
  shownAt = performance.now();
  busy = false;
  document.body.dataset.ready = "round-" + state.round;
}

async function choose(side) {
  if (busy || !state || state.done) return;
  busy = true;
  el(side).classList.add("picked");
  el("status").textContent = "Saved \\u2014 next pair\\u2026";
  try {
    const response = await fetch("answer", {method: "POST",
      headers: {"Content-Type": "application/json", "X-Vgan-Token": TOKEN},
      body: JSON.stringify({round: state.round, choice: side, ms: Math.round(performance.now() - shownAt)})});
    if (!response.ok) throw new Error(await response.text());
    show(await response.json());
  } catch (err) {
    el("status").textContent = "The answer was not saved (" + err.message + "); is `vgan rate` still running?";
    el(side).classList.remove("picked");
    busy = false;
  }
}

document.addEventListener("keydown", (event) => {
  if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
  const side = {ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right"}[event.key];
  if (side) { event.preventDefault(); choose(side); }
});
for (const side of ["left", "right"]) el(side).addEventListener("click", () => choose(side));
fetch("state", {cache: "no-store"}).then((r) => r.json()).then(show)
  .catch(() => { el("status").textContent = "Cannot reach `vgan rate`; is it still running?"; });
</script>
</body>
</html>
""")

HELP = {"real": "One clip of each pair is a real video and the other one is generated: pick the real one.",
        "models": "Both clips are generated, by two different models: pick the one that looks more realistic."}


def render_page(mode: str, question: str, display_px: int, *, protocol: str, token: str,
                clip_shape: tuple[int, int, int], fps: float) -> str:
    """The page of one session: its question, its protocol, its clips' shape and frame rate, its token."""
    frames, height, width = (int(side) for side in clip_shape)
    return PAGE.substitute(question=escape(question), help=escape(HELP[mode]), px=int(display_px),
                           protocol=escape(protocol), token=escape(token), frames=frames, height=height,
                           width=width, fps=float(fps))
