"""The in-browser step player: all frames are sent once, scrubbing never calls the server.

The component's value is a JSON payload (see ``logic.player_payload``):

    {"mode": "full" | "reset" | "append", "panels": ["x_t", "x0", "eps"], "total": N,
     "columns": [{"title": str, "frames": [{"t", "alpha_bar", "snr", "log_snr", "x_t", "x0", "eps"}],
                  "final": data-uri}]}

"reset" starts a new run, "append" adds frames while sampling streams in, "full" replaces everything.
A Stable Diffusion run also carries ``"run"``: its id on the server, which the "Decode this step with the
VAE" button sends back together with the shown frame's ``index`` (``dvPlayers[id].run()``/``frameIndex()``).
With several columns (Compare tab) one slider drives all of them by *fraction of the run*, so runs with
different step counts stay aligned. ``window.dvPlayers[elem_id]`` exposes ``seek(i)`` and the recorded
scrub latencies for the benchmark and the browser tests.
"""

from __future__ import annotations

import json

PANEL_TITLES = {
    "x_t": "What the model sees (x<sub>t</sub>)",
    "x0": "What it thinks the picture is (predicted x<sub>0</sub>)",
    "eps": "The noise it thinks is in there (predicted ε)",
}

TEMPLATE = """
<div class="dv-player">
  <div class="dv-empty">${empty_text}</div>
  <div class="dv-cols"></div>
  <div class="dv-controls">
    <button class="dv-btn" data-act="back" title="Step back" aria-label="Step back">⏮</button>
    <button class="dv-btn dv-play" data-act="play" title="Play / pause" aria-label="Play">▶ Play</button>
    <button class="dv-btn" data-act="fwd" title="Step forward" aria-label="Step forward">⏭</button>
    <input class="dv-slider" type="range" min="0" max="0" value="0" step="1" aria-label="Step">
    <label class="dv-speed-label">speed
      <select class="dv-speed" aria-label="Playback speed">
        <option value="3">slow</option><option value="8" selected>normal</option>
        <option value="20">fast</option><option value="40">very fast</option>
      </select></label>
    <span class="dv-step">step 0 / 0</span>
  </div>
</div>
"""

JS = r"""
const root = element;
const host = root.parentElement && root.parentElement.closest('.block[id]');
const id = host ? host.id : root.id;
// Gradio re-runs this script whenever it re-renders the template (e.g. on a new value): keep the
// frames in the registry, re-bind to the fresh DOM, and register the value watcher only once.
const reg = window.dvPlayers = window.dvPlayers || {};
const watched = window.__dvWatched = window.__dvWatched || new WeakSet();
const prev = reg[id];
const S = prev ? prev.state :
  {cols: [], panels: ['x_t', 'x0', 'eps'], total: 0, pos: 0, timer: null, lat: [], paint: [], live: false, inits: 0,
   run: '', shown: []};
if (S.timer) { clearInterval(S.timer); S.timer = null; }
S.inits += 1;
const TITLES = __TITLES__;
const q = (sel) => root.querySelector(sel);
const fmt = (v, d) => (v === null || v === undefined) ? '∞' : Number(v).toFixed(d);
const fmtSnr = (v) => (v === null || v === undefined) ? '∞' : (v >= 100 || v < 0.01 ? Number(v).toExponential(2) : Number(v).toFixed(3));

function maxLen() { return Math.max(0, ...S.cols.map(c => c.frames.length)); }
function frameFor(col, pos) {
  const n = col.frames.length, L = maxLen();
  if (n === 0) return -1;
  if (S.cols.length === 1 || L <= 1) return Math.min(pos, n - 1);
  return Math.round(pos / (L - 1) * (n - 1));  // same fraction of the run in every column
}
function build() {
  const box = q('.dv-cols');
  box.innerHTML = '';
  box.classList.toggle('dv-multi', S.cols.length > 1);
  S.cols.forEach((col) => {
    const c = document.createElement('div');
    c.className = 'dv-col';
    let html = S.cols.length > 1 ? `<div class="dv-col-title">${col.title || ''}</div>` : '';
    html += '<div class="dv-panels">';
    for (const p of S.panels) {
      html += `<figure class="dv-panel"><img class="dv-img" data-panel="${p}" alt="${p}">` +
              `<figcaption>${TITLES[p] || p}</figcaption></figure>`;
    }
    html += '</div><div class="dv-numbers"></div>';
    c.innerHTML = html;
    box.appendChild(c);
  });
  q('.dv-empty').style.display = S.cols.length ? 'none' : '';
  q('.dv-controls').style.display = S.cols.length ? '' : 'none';
}
function preload(frames) {
  for (const f of frames) for (const p of S.panels) { if (f[p]) { const im = new Image(); im.src = f[p]; } }
}
function show(pos) {
  const t0 = performance.now();
  const L = maxLen();
  S.pos = Math.max(0, Math.min(pos, L - 1));
  const cols = root.querySelectorAll('.dv-col');
  S.cols.forEach((col, ci) => {
    const el = cols[ci]; if (!el) return;
    const i = frameFor(col, S.pos); if (i < 0) return;
    const f = col.frames[i];
    el.querySelectorAll('img.dv-img').forEach(img => { const s = f[img.dataset.panel]; if (s && img.src !== s) img.src = s; });
    el.querySelector('.dv-numbers').innerHTML =
      `<span>step <b>${i + 1}</b>/${col.frames.length}</span><span>t = <b>${fmt(f.t, 0)}</b></span>` +
      `<span>ᾱ (signal left) = <b>${fmtSnr(f.alpha_bar)}</b></span><span>SNR = <b>${fmtSnr(f.snr)}</b></span>` +
      `<span>log SNR = <b>${fmt(f.log_snr, 2)}</b></span>`;
  });
  const slider = q('.dv-slider');
  slider.max = Math.max(0, L - 1);
  slider.value = S.pos;
  const total = S.cols.length === 1 ? Math.max(S.total || 0, L) : L;
  q('.dv-step').textContent = S.live ? `sampling… ${L} / ${total}` :
    (S.cols.length > 1 ? `${Math.round(100 * S.pos / Math.max(1, L - 1))}% of each run` : `step ${S.pos + 1} / ${L}`);
  const t1 = performance.now();
  S.lat.push(t1 - t0);
  requestAnimationFrame(() => S.paint.push(performance.now() - t0));
  return t1 - t0;
}
function stop() { if (S.timer) { clearInterval(S.timer); S.timer = null; } q('.dv-play').textContent = '▶ Play'; }
function play() {
  if (S.timer) { stop(); return; }
  if (S.pos >= maxLen() - 1) show(0);
  const fps = Number(q('.dv-speed').value) || 8;
  q('.dv-play').textContent = '⏸ Pause';
  S.timer = setInterval(() => { if (S.pos >= maxLen() - 1) { stop(); return; } show(S.pos + 1); }, 1000 / fps);
}
function load(raw) {
  if (!raw) { stop(); S.cols = []; build(); return; }
  let d; try { d = typeof raw === 'string' ? JSON.parse(raw) : raw; } catch (e) { return; }
  if (!d || !d.columns) return;
  if (d.panels) S.panels = d.panels;
  if (d.mode === 'append' && S.cols.length) {
    d.columns.forEach((c, i) => { if (S.cols[i]) S.cols[i].frames.push(...c.frames); });
  } else {
    stop();
    S.cols = d.columns.map(c => ({title: c.title, frames: c.frames.slice(), final: c.final}));
    build();
  }
  S.total = d.total || 0;
  if (d.mode !== 'append') S.run = d.run || '';  // a Stable Diffusion run's id, for decode-on-demand
  S.live = d.mode !== 'full';
  d.columns.forEach(c => preload(c.frames));
  show(S.live ? maxLen() - 1 : (d.start === 'end' ? maxLen() - 1 : 0));
  // a new run's first picture: note when the browser is about to paint it (for the benchmark)
  if (d.mode !== 'append' && maxLen() > 0) requestAnimationFrame(() => S.shown.push(performance.now()));
}
q('.dv-slider').addEventListener('input', (e) => { stop(); show(Number(e.target.value)); });
root.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-act]'); if (!b) return;
  const act = b.dataset.act;
  if (act === 'play') play();
  else { stop(); show(S.pos + (act === 'fwd' ? 1 : -1)); }
});
q('.dv-speed').addEventListener('change', () => { if (S.timer) { stop(); play(); } });
reg[id] = {
  seek: show, play, stop, load, state: S,
  frames: () => maxLen(), position: () => S.pos, playing: () => !!S.timer, run: () => S.run || '',
  frameIndex: () => { const c = S.cols[0]; const f = c && c.frames[Math.min(S.pos, c.frames.length - 1)];
                      return f && f.index !== undefined ? f.index : S.pos; },
  shownAt: () => S.shown.slice(),  // when each run's first frame appeared (performance.now(), for the benchmark)
  latencies: () => S.lat.slice(), paints: () => S.paint.slice(), reset: () => { S.lat = []; S.paint = []; },
};
if (prev && S.cols.length) { build(); show(S.pos); } else { load(props.value); }
if (!watched.has(props)) { watched.add(props); watch('value', () => reg[id].load(props.value)); }
"""


def player_js() -> str:
    return JS.replace("__TITLES__", json.dumps(PANEL_TITLES))


def make_player(elem_id: str, empty_text: str, **kwargs):
    """A gr.HTML running the player. Import gradio lazily so logic stays gradio-free."""
    import gradio as gr

    return gr.HTML(value="", html_template=TEMPLATE, js_on_load=player_js(), elem_id=elem_id,
                   elem_classes=["dv-player-block"], empty_text=empty_text, apply_default_css=False,
                   **kwargs)


def to_value(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
