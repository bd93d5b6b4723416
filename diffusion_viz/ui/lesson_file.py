""""Download lesson (HTML)": one self-contained file with a finished run and its step player.

A teacher puts it on a USB stick or a learning platform; it opens from ``file://`` in any current browser
with the network off: no server, no CDN, no web fonts, every picture inside the file. It carries the same
payload as the in-app player (see player.py for its shape) and decodes it with the same JavaScript
(decode_js.DECODE_JS), so every step shows exactly the pixels the app showed.

    html = lesson_html(payload, title="Cat from noise", settings={"prompt": "cat", "model": ..., ...})

``lesson_html`` refuses a file over MAX_LESSON_BYTES (InvalidInputError, size in MB); the app can call
``lesson_size_bytes`` first to say how big a download will be (Stable Diffusion runs are the big ones).
"""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

from ..errors import InvalidInputError
from . import explain, logic
from .decode_js import DECODE_JS
from .player import ICONS, PANEL_TITLES

MAX_LESSON_BYTES = 3 * 2**20  # fits a learning platform's upload limit and a mail attachment
MB = 2**20

# The settings table: (label, keys to look for in ``settings``, first one present wins).
SETTING_ROWS = [
    ("Prompt", ("prompt",)), ("Model", ("model",)), ("Sampler", ("sampler", "scheduler")),
    ("Noise schedule", ("schedule",)), ("Steps", ("steps",)), ("Seed", ("seed",)),
    ("Guidance", ("guidance",)),
]
PANEL_ALT = {p: re.sub(r"<[^>]*>", "", t) for p, t in PANEL_TITLES.items()}  # captions as plain text
DATA_URI = re.compile(r"data:image/(png|jpeg|webp);base64,[A-Za-z0-9+/=]+")


# ---- sizes and names ------------------------------------------------------------------------------
def size_text(n_bytes: int) -> str:
    """Bytes as people read them on a USB stick: "1.23 MB" (1 MB = 2**20 bytes, like MAX_LESSON_BYTES)."""
    return f"{n_bytes / MB:.2f} MB"


def check_lesson_size(n_bytes: int) -> int:
    """Refuse a lesson file a learning platform or a mail would reject, saying how big it would be."""
    if n_bytes > MAX_LESSON_BYTES:
        raise InvalidInputError(
            f"This lesson file would be {size_text(n_bytes)}; the limit is {size_text(MAX_LESSON_BYTES)}. "
            "Use fewer steps, fewer columns or a smaller model, then download it again.")
    return n_bytes


def lesson_size_bytes(payload: dict, **kwargs) -> int:
    """How big ``lesson_html(payload, **kwargs)`` is (UTF-8), without refusing: for "Download (x MB)"."""
    return len(_document(payload, **kwargs).encode("utf-8"))


def lesson_filename(model_name: str, settings) -> str:
    """"cat-emoji-exact-ddim-cosine-50steps-seed0-lesson.html": says what it is in a folder of downloads.
    ``settings``: a SampleSettings or a dict with its fields (missing ones: the app's defaults)."""
    if isinstance(settings, dict):
        d = logic.DEFAULTS
        settings = SimpleNamespace(**{k: settings.get(k, d[k]) for k in
                                      ("prompt", "scheduler", "schedule", "steps", "seed", "guidance")})
    return logic.download_name(model_name, settings) + "-lesson.html"


# ---- the document ---------------------------------------------------------------------------------
def lesson_html(payload: dict, *, title: str, settings: dict, explanation_md: str = "") -> str:
    """The whole lesson as one HTML5 document (a str). ``payload``: logic.player_payload(...) of a finished
    run (one column: Denoise; several: Compare). ``settings``: what ran (prompt, model, sampler or
    scheduler, schedule, steps, seed, guidance; missing ones are left out of the table).
    ``explanation_md``: extra text after the panel explanation (**bold**, *italic*, <sub>, paragraphs).
    Raises InvalidInputError for an empty run or a file over MAX_LESSON_BYTES."""
    doc = _document(payload, title=title, settings=settings, explanation_md=explanation_md)
    check_lesson_size(len(doc.encode("utf-8")))
    return doc


def _document(payload: dict, *, title: str, settings: dict, explanation_md: str = "") -> str:
    columns = _check_payload(payload)
    panels = [p for p in payload.get("panels") or ["x_t", "x0", "eps"] if p in PANEL_TITLES]
    multi = len(columns) > 1
    steps = max(len(c["frames"]) for c in columns)
    parts = {
        "TITLE": html.escape(str(title)),
        "CSS": CSS,
        "PLAYER": _player_html(columns, panels, multi, steps),
        "FINAL": _final_html(columns, multi),
        "EXPLAIN": _panels_html(panels) + (_markdown_html(explanation_md) if explanation_md else ""),
        "SETTINGS": _settings_html(settings),
        "DATA": _json_for_script(payload),
        "JS": JS.replace("__DECODE__", DECODE_JS).replace("__ICONS__", json.dumps(ICONS)),
    }
    return re.sub(r"@@(\w+)@@", lambda m: parts[m.group(1)], PAGE)


def _check_payload(payload) -> list[dict]:
    columns = payload.get("columns") if isinstance(payload, dict) else None
    if not columns or not all(isinstance(c, dict) and c.get("frames") and c.get("strips") for c in columns):
        raise InvalidInputError("There is no finished run to put in a lesson yet: generate one first.")
    return columns


def _json_for_script(payload: dict) -> str:
    """The payload as JSON that cannot end its <script> element: "</" becomes "<\\/" (a prompt such as
    "</script><img ...>" stays text) and "<!--" becomes "<\\u0021--" (it would change how the browser
    reads the rest of the script). Both read back as the same string in JSON.parse."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


def _canvas_size(column: dict) -> tuple[int, int]:
    h, w = column["strips"][0].get("size", [64, 64])
    return int(w), int(h)


def _player_html(columns: list[dict], panels: list[str], multi: bool, steps: int) -> str:
    """The canvases (one per panel and column) and the controls; the script fills them."""
    cols = []
    for ci, col in enumerate(columns):
        w, h = _canvas_size(col)
        head = f'<h3 class="col-title">{html.escape(str(col.get("title") or ""))}</h3>' if multi else ""
        figs = "".join(
            f'<figure class="panel"><canvas class="img" width="{w}" height="{h}" data-panel="{p}" '
            f'data-col="{ci}" role="img" aria-label="{html.escape(PANEL_ALT[p])}"></canvas>'
            f"<figcaption>{PANEL_TITLES[p]}</figcaption></figure>" for p in panels)
        cols.append(f'<div class="col">{head}<div class="panels">{figs}</div>'
                    f'<p class="numbers" data-col="{ci}"></p></div>')
    icon = ICONS
    return f"""
<div id="player" class="player{' multi' if multi else ''}" role="group" aria-busy="true"
     aria-label="Step player: space plays or pauses, arrow keys step, Home and End jump to the ends">
  <p id="status" role="status">Loading the steps…</p>
  <div class="cols">{''.join(cols)}</div>
  <div class="controls">
    <button type="button" class="btn" data-act="back" title="One step back (left arrow)">{icon['back']}<span>Back</span></button>
    <button type="button" class="btn play" data-act="play" aria-pressed="false" title="Play / pause (space)">{icon['play']}<span>Play</span></button>
    <button type="button" class="btn" data-act="fwd" title="One step forward (right arrow)">{icon['fwd']}<span>Next</span></button>
    <label class="slider-label" for="slider">Step</label>
    <input id="slider" type="range" min="0" max="{max(0, steps - 1)}" value="0" step="1">
    <label for="speed">Speed</label>
    <select id="speed"><option value="3">slow</option><option value="8" selected>normal</option>
      <option value="20">fast</option></select>
    <span id="step" class="step">step 0 / {steps}</span>
  </div>
  <p class="keys">Keys: <kbd>space</kbd> play or pause, <kbd>←</kbd> <kbd>→</kbd> one step,
    <kbd>Home</kbd> <kbd>End</kbd> first or last step.</p>
</div>
<noscript><p>This lesson needs JavaScript to show the steps; the finished picture and the settings are below.</p></noscript>"""


def _final_html(columns: list[dict], multi: bool) -> str:
    """The finished picture of each column, as an <img> (it shows even without JavaScript). Only a real
    image data URI is used: anything else in ``final`` is left out, never written into the page."""
    figs = []
    for col in columns:
        uri = col.get("final")
        if not isinstance(uri, str) or not DATA_URI.fullmatch(uri):
            continue
        name = html.escape(str(col.get("title") or "")) if multi else ""
        alt = "The finished picture" + (f" of {name}" if name else "")
        figs.append(f'<figure class="final"><img src="{uri}" alt="{alt}" width="192" height="192">'
                    f"<figcaption>{name or 'After the last step'}</figcaption></figure>")
    return "".join(figs) or "<p>(No finished picture was saved with this run.)</p>"


def _settings_html(settings) -> str:
    settings = dict(settings or {}) if isinstance(settings, dict) else vars(settings)
    rows = []
    for label, keys in SETTING_ROWS:
        key = next((k for k in keys if k in settings), None)
        if key is None:
            continue
        value = settings[key]
        if key == "prompt" and not str(value).strip():
            value = "(none: no prompt at all, unconditional)"
        rows.append(f'<tr><th scope="row">{label}</th><td>{html.escape(str(value))}</td></tr>')
    return ('<table class="settings"><caption>What ran</caption>' + "".join(rows) + "</table>") if rows else ""


# ---- the explanation: explain.DENOISE_PANELS, one entry per panel shown -----------------------------
PANEL_OF_POSITION = {"Left": "x_t", "Middle": "x0", "Right": "eps"}


def _inline(md: str) -> str:
    """explain.py's tiny markup as HTML: everything escaped, then only **bold**, *italic*, <sub>, <sup>."""
    h = html.escape(md.strip(), quote=False)
    h = re.sub(r"&lt;(/?)(sub|sup)&gt;", r"<\1\2>", h)
    h = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", h, flags=re.S)
    return re.sub(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])", r"<em>\1</em>", h, flags=re.S)


def _markdown_html(md: str) -> str:
    out = []
    for para in re.split(r"\n\s*\n", md.strip()):
        heading = re.match(r"#{1,6}\s+(.*)", para.strip())
        out.append(f"<h3>{_inline(heading.group(1))}</h3>" if heading else f"<p>{_inline(para)}</p>")
    return "".join(out)


def _panels_html(panels: list[str]) -> str:
    """What each shown panel is, from explain.DENOISE_PANELS ("**Left: what the model sees** ..."): the
    positions there are the Denoise tab's, so each sentence goes under its panel's name instead, and a
    Compare lesson (no noise panel) leaves the noise out. Falls back to the whole text as it is."""
    first, *rest = re.split(r"\n\s*\n", explain.DENOISE_PANELS.strip())
    found = {}
    for m in re.finditer(r"\*\*(Left|Middle|Right): (.+?)\*\*(.*?)(?=\*\*(?:Left|Middle|Right):|\Z)", first, re.S):
        found[PANEL_OF_POSITION[m.group(1)]] = (m.group(2), m.group(3))
    if set(found) != set(PANEL_OF_POSITION.values()):
        return _markdown_html(explain.DENOISE_PANELS)
    # the last sentence is about the whole step, not the noise panel: keep it for every lesson
    head_eps, _, after = found["eps"][1].partition(" The sampler ")
    if after:
        found["eps"] = (found["eps"][0], head_eps)
        rest.insert(0, "The sampler " + after)
    def sentence(text):  # " (x<sub>t</sub>): the current noisy picture." -> "The current noisy picture."
        text = re.sub(r"^\s*\([^)]*\)[:,]?\s*", "", text)
        return _inline(text[:1].upper() + text[1:])

    items = "".join(f"<dt>{PANEL_TITLES[p]}</dt><dd>{sentence(found[p][1])}</dd>" for p in panels if p in found)
    rest = [p.replace("the middle panel", "the “predicted x<sub>0</sub>” picture") for p in rest]
    return f'<dl class="panels-explained">{items}</dl>' + "".join(f"<p>{_inline(p)}</p>" for p in rest)


# ---- the page -------------------------------------------------------------------------------------
CSS = """
:root { --img: 256px; --ink: #111; --muted: #374151; --accent: #1d4ed8; --line: #6b7280; }
.multi { --img: 176px; }
* { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
body { font-size: 20px; line-height: 1.5; color: var(--ink); background: #fff; margin: 0 auto;
       padding: 16px 24px 32px; max-width: 1200px; }
h1 { font-size: 1.8em; margin: 0.2em 0; } h2 { font-size: 1.35em; margin: 1.2em 0 0.4em; }
h3 { font-size: 1.1em; margin: 0.6em 0 0.3em; }
.lead { color: var(--muted); margin: 0; }
.cols { display: flex; gap: 20px; flex-wrap: wrap; justify-content: center; }
.col { display: flex; flex-direction: column; align-items: center; }
.col-title { text-align: center; margin: 0 0 6px; }
.panels { display: flex; gap: 16px; flex-wrap: wrap; justify-content: center; }
.multi .panels { flex-direction: column; gap: 8px; }
figure { margin: 0; display: flex; flex-direction: column; align-items: center; }
figcaption { max-width: var(--img); text-align: center; font-size: 0.9em; margin-top: 4px; }
.img { width: var(--img); height: var(--img); image-rendering: pixelated; background: #222; border-radius: 6px; }
.numbers { display: flex; gap: 4px 16px; flex-wrap: wrap; justify-content: center; margin: 8px 0;
           font-variant-numeric: tabular-nums; max-width: calc(3 * var(--img)); }
.multi .numbers { max-width: calc(var(--img) + 40px); font-size: 0.9em; }
.controls { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; margin-top: 10px; }
.btn { display: inline-flex; align-items: center; gap: 8px; font: inherit; padding: 8px 16px; cursor: pointer;
       color: var(--ink); background: #f3f4f6; border: 2px solid var(--line); border-radius: 8px; }
.btn:hover { background: #e5e7eb; }
.btn svg { width: 0.85em; height: 0.85em; fill: currentColor; flex: none; }
.play { min-width: 120px; font-weight: 700; }
#slider { flex: 1; min-width: 220px; height: 32px; accent-color: var(--accent); }
select { font: inherit; padding: 4px 8px; color: var(--ink); background: #fff; border: 2px solid var(--line);
         border-radius: 6px; }
.step { min-width: 150px; font-weight: 700; font-variant-numeric: tabular-nums; }
button:focus-visible, input:focus-visible, select:focus-visible, a:focus-visible {
  outline: 4px solid var(--accent); outline-offset: 3px; }
.keys { color: var(--muted); font-size: 0.9em; margin: 8px 0 0; }
kbd { font: inherit; font-size: 0.9em; padding: 0 6px; border: 1px solid var(--line); border-radius: 4px;
      background: #f9fafb; }
#status { margin: 0 0 8px; font-weight: 600; }
.finals { display: flex; gap: 24px; flex-wrap: wrap; }
.final img { width: 192px; height: 192px; image-rendering: pixelated; border-radius: 6px; }
dt { font-weight: 700; margin-top: 0.6em; } dd { margin: 0.2em 0 0.2em 1.2em; }
table.settings { border-collapse: collapse; }
.settings caption { text-align: left; font-weight: 700; padding-bottom: 4px; }
.settings th, .settings td { border: 1px solid var(--line); padding: 4px 12px; text-align: left;
                             vertical-align: top; }
.settings td { overflow-wrap: anywhere; max-width: 40ch; }
footer { margin-top: 2em; padding-top: 0.8em; border-top: 1px solid var(--line); color: var(--muted);
         font-size: 0.9em; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>@@CSS@@</style>
</head>
<body>
<header>
<h1>@@TITLE@@</h1>
<p class="lead">A diffusion model turns random static into a picture, one step at a time. Drag the slider
or press Play to watch it.</p>
</header>
<main>
<section aria-labelledby="h-steps"><h2 id="h-steps">Step by step</h2>@@PLAYER@@</section>
<section aria-labelledby="h-final"><h2 id="h-final">The finished picture</h2><div class="finals">@@FINAL@@</div></section>
<section aria-labelledby="h-panels"><h2 id="h-panels">What the pictures show</h2>@@EXPLAIN@@</section>
<section aria-labelledby="h-settings"><h2 id="h-settings">Settings</h2>@@SETTINGS@@</section>
</main>
<footer><p>Made with diffusion-viz. This file needs no internet: every picture and the player are inside it,
so it works from a USB stick or a learning platform.</p></footer>
<script type="application/json" id="dv-data">@@DATA@@</script>
<script>
@@JS@@
</script>
</body>
</html>
"""

# The player, standalone: the in-app player's behaviour (player.py) without Gradio or streaming.
JS = r"""
"use strict";
(() => {
const ICONS = __ICONS__;
const DATA = JSON.parse(document.getElementById('dv-data').textContent);
const root = document.getElementById('player');
const slider = document.getElementById('slider'), speed = document.getElementById('speed');
const S = {cols: [], pos: 0, timer: null};
__DECODE__
function maxLen() { return Math.max(0, ...S.cols.map(c => c.length)); }
function frameFor(frames, pos) {  // Compare: the same fraction of the run in every column
  const n = frames.length, L = maxLen();
  if (S.cols.length === 1 || L <= 1) return Math.min(pos, n - 1);
  return Math.round(pos / (L - 1) * (n - 1));
}
function show(pos) {
  const L = maxLen();
  if (!L) return;
  S.pos = Math.max(0, Math.min(Number(pos) || 0, L - 1));
  S.cols.forEach((frames, ci) => {
    const i = frameFor(frames, S.pos), f = frames[i];
    root.querySelectorAll(`canvas[data-col="${ci}"]`).forEach(cv => {
      const img = f.img[cv.dataset.panel];
      if (!img || cv.dataset.shown === String(i)) return;
      if (cv.width !== img.width || cv.height !== img.height) { cv.width = img.width; cv.height = img.height; }
      cv.getContext('2d').putImageData(img, 0, 0);
      cv.dataset.shown = String(i);
    });
    const noise = Math.sqrt(Math.max(0, 1 - f.alpha_bar));
    root.querySelector(`.numbers[data-col="${ci}"]`).innerHTML =
      `<span>step <b>${i + 1}</b>/${frames.length}</span><span>${tText(f)}</span>` +
      `<span title="ᾱ: the share of the signal's power still in x_t">ᾱ = <b>${fmtSnr(f.alpha_bar)}</b>` +
      ` (signal power left: ${fmtPct(f.alpha_bar)} %)</span>` +
      (S.cols.length > 1 ? '' : `<span title="how much of the predicted noise is really in x_t">` +
        `noise left √(1−ᾱ) = <b>${noise.toFixed(3)}</b></span><span>SNR = <b>${fmtSnr(f.snr)}</b></span>`) +
      `<span>log SNR = <b>${fmt(f.log_snr, 2)}</b></span>`;
  });
  slider.value = S.pos;
  slider.setAttribute('aria-valuetext', S.cols.length > 1 ? `${Math.round(100 * S.pos / Math.max(1, L - 1))}% of each run`
                                                          : `step ${S.pos + 1} of ${L}`);
  document.getElementById('step').textContent = S.cols.length > 1 ?
    `${Math.round(100 * S.pos / Math.max(1, L - 1))}% of each run` : `step ${S.pos + 1} / ${L}`;
}
function setPlay(on) {
  const b = root.querySelector('.play');
  b.innerHTML = (on ? ICONS.pause : ICONS.play) + `<span>${on ? 'Pause' : 'Play'}</span>`;
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
}
function stop() { if (S.timer) { clearInterval(S.timer); S.timer = null; } setPlay(false); }
function play() {
  if (S.timer) { stop(); return; }
  if (S.pos >= maxLen() - 1) show(0);
  setPlay(true);
  S.timer = setInterval(() => { if (S.pos >= maxLen() - 1) { stop(); return; } show(S.pos + 1); },
                        1000 / (Number(speed.value) || 8));
}
slider.addEventListener('input', () => { stop(); show(Number(slider.value)); });
speed.addEventListener('change', () => { if (S.timer) { stop(); play(); } });
root.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-act]'); if (!b) return;
  if (b.dataset.act === 'play') play(); else { stop(); show(S.pos + (b.dataset.act === 'fwd' ? 1 : -1)); }
});
// Keyboard, anywhere on the page: space plays/pauses, arrows step, Home/End jump to the ends.
document.addEventListener('keydown', (e) => {
  if (!S.cols.length || e.altKey || e.ctrlKey || e.metaKey || (e.target.closest && e.target.closest('select'))) return;
  const keys = {' ': 'play', 'ArrowLeft': -1, 'ArrowRight': 1, 'Home': 'home', 'End': 'end'};
  const k = keys[e.key]; if (k === undefined) return;
  if (e.key === ' ' && e.target.closest && e.target.closest('button')) return;  // a focused button acts on space
  e.preventDefault();
  if (k === 'play') { play(); return; }
  stop();
  show(k === 'home' ? 0 : k === 'end' ? maxLen() - 1 : S.pos + k);
});
// For tests and curious teachers: what a panel shows, as 0..255 RGBA values.
function pixels(panel, col) {
  const cv = root.querySelector(`canvas[data-col="${col || 0}"][data-panel="${panel}"]`);
  return Array.from(cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data);
}
const status = document.getElementById('status');
window.dvLesson = {ready: false, seek: show, play, stop, pixels, frames: maxLen, position: () => S.pos,
                   playing: () => !!S.timer};
Promise.all(DATA.columns.map(c => decodeColumn(c.frames, c.strips || []))).then((cols) => {
  S.cols = cols;
  slider.max = Math.max(0, maxLen() - 1);
  show(DATA.start === 'end' ? maxLen() - 1 : 0);
  status.textContent = '';
  status.hidden = true;
  root.setAttribute('aria-busy', 'false');
  window.dvLesson.ready = true;
}).catch((e) => { status.textContent = 'The steps could not be shown in this browser: ' + e; });
})();
"""
