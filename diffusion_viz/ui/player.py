"""The in-browser step player: all frames are sent once, scrubbing never calls the server.

The component's value is a JSON payload (see ``logic.player_payload``):

    {"mode": "full" | "reset" | "append", "panels": ["x_t", "x0", "eps"], "total": N, "align"?: "step",
     "columns": [{"title": str, "frames": [{"index", "t", "level", "alpha_bar", "snr", "log_snr", "sigma"}],
                  "strips": [{...}, ...], "final": data-uri}]}

A column may carry the exact model's candidates (``logic.candidate_view``): per frame "cands" [[emoji, weight]]
and "neff", per column "cand_images", "cand_names" and "cand_support"; the player shows them under the numbers.
``align: "step"`` lines columns up by the step of the whole run (frame "index") instead of by fraction.

``strips`` holds the frames' pictures as one PNG per panel (ui/atlas.py); the player decodes them into
canvases once and derives x_t from x0 and the noise with the forward formula.

``t`` is the timestep the model is given, ``level`` where the noise level the scheduler really uses lies
in training steps (fractional with Karras spacing), ``alpha_bar`` that level's share of signal power.

"reset" starts a new run, "append" adds frames while sampling streams in, "full" replaces everything.
A Denoise run carries its ``"key"`` (``cache.key_id``): the browser gets it twice, from the player's own
route (``fetchRun``, ui/run_route.py) and from gradio's event, and shows it once.
A Stable Diffusion run also carries ``"run"``: its id on the server, which the "Decode this step with the
VAE" button sends back together with the shown frame's ``index`` (``dvPlayers[id].run()``/``frameIndex()``).
With several columns (Compare tab) one slider drives all of them by *fraction of the run*, so runs with
different step counts stay aligned. ``window.dvPlayers[elem_id]`` exposes ``seek(i)`` and the recorded
scrub latencies for the benchmark and the browser tests.
"""

from __future__ import annotations

import json

from .decode_js import DECODE_JS

# short captions: side by side in Compare, and in classroom mode (big type, little room)
SHORT_TITLES = {"x_t": "What it sees (x<sub>t</sub>)", "x0": "Its guess (x<sub>0</sub>)", "eps": "Its noise guess (ε)"}
PANEL_TITLES = {
    "x_t": "What the model sees (x<sub>t</sub>)",
    "x0": "What it thinks the picture is (predicted x<sub>0</sub>)",
    "eps": "The noise it thinks is in there (predicted ε)",
}

# Icons drawn inline (no font needed: many school PCs have no emoji or symbol font), each next to a word.
ICONS = {
    "back": '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3 2h2v12H3zM14 2v12L6 8z"/></svg>',
    "play": '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M4 2v12l10-6z"/></svg>',
    "pause": '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3 2h4v12H3zM9 2h4v12H9z"/></svg>',
    "fwd": '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M11 2h2v12h-2zM2 2v12l8-6z"/></svg>',
}

TEMPLATE = """
<div class="dv-player" role="group" aria-label="Step player: space plays or pauses, arrow keys step, Home and End jump">
  <div class="dv-empty">${empty_text}</div>
  <div class="dv-cols"></div>
  <div class="dv-controls">
    <button class="dv-btn" data-act="back" title="One step back (left arrow)">${icon_back}<span>Back</span></button>
    <button class="dv-btn dv-play" data-act="play" title="Play / pause (space)">${icon_play}<span>Play</span></button>
    <button class="dv-btn" data-act="fwd" title="One step forward (right arrow)">${icon_fwd}<span>Next</span></button>
    <input class="dv-slider" type="range" min="0" max="0" value="0" step="1" aria-label="Step">
    <label class="dv-speed-label">speed
      <select class="dv-speed" aria-label="Playback speed">
        <option value="3">slow</option><option value="8" selected>normal</option>
        <option value="20">fast</option><option value="40">very fast</option>
      </select></label>
    <span class="dv-step">step 0 / 0</span>
  </div>
  <div class="dv-cands"></div>
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
  {cols: [], panels: ['x_t', 'x0', 'eps'], total: 0, pos: 0, timer: null, lat: [], paint: [], live: false, open: false, inits: 0,
   run: '', shown: [], gen: 0, chain: Promise.resolve(), stopped: false, pendingShow: null,
   key: '', src: '', complete: false, ctl: null, fetches: 0, startKey: '', received: {gradio: 0, route: 0},
   follow: true};  // follow: show each new frame as it arrives (false once the user steps away from the newest)
if (S.timer) { clearInterval(S.timer); S.timer = null; }
S.inits += 1;
const TITLES = __TITLES__;
const SHORT = __SHORT__;
const TIPS = __TIPS__;  // glossary lines (diffusion_viz/glossary.py), shown on hover and on keyboard focus
const term = (key, html) => `<span class="dv-term" tabindex="0" data-tip="${TIPS[key]}">${html}</span>`;
const ICONS = __ICONS__;
const q = (sel) => root.querySelector(sel);

__DECODE__
// With align 'step' (the round trip) a column that starts at step k of the run waits there until the
// slider reaches k: one slider position is one step of the run in every column.
function offset(col) { return S.align === 'step' && col.frames.length ? (col.frames[0].index || 0) : 0; }
function maxLen() { return Math.max(0, ...S.cols.map(c => c.frames.length + offset(c))); }
function frameFor(col, pos) {
  const n = col.frames.length, L = maxLen();
  if (n === 0) return -1;
  if (S.align === 'step') return Math.max(0, Math.min(pos - offset(col), n - 1));
  if (S.cols.length === 1 || L <= 1) return Math.min(pos, n - 1);
  return Math.round(pos / (L - 1) * (n - 1));  // same fraction of the run in every column
}
// The exact model's guess is a weighted average of training emoji: show the largest weights and how many
// emoji share the weight (exp of the entropy), as a curve over the run with the current step marked.
function candsHtml(col, i) {
  const f = col.frames[i], c = col.cand;
  if (!c || !f || !f.cands) return '';
  const pct = (w) => w >= 0.995 ? '100 %' : (100 * w >= 1 ? (100 * w).toFixed(0) + ' %' : (100 * w).toFixed(1) + ' %');
  const tiles = f.cands.map(([k, w]) => `<figure class="dv-cand"><img src="${c.images[k]}" alt="${c.names[k]}" ` +
    `width="48" height="48"><figcaption><span class="dv-cand-name">${c.names[k]}</span> ${pct(w)}</figcaption></figure>`).join('');
  const n = col.frames.length, top = Math.log10(Math.max(2, c.support)), W = 260, H = 56;
  const xy = (j) => [(n > 1 ? j / (n - 1) : 0) * (W - 8) + 4,
                     H - 4 - (Math.log10(Math.max(1, col.frames[j].neff)) / top) * (H - 8)];
  const pts = col.frames.map((_, j) => xy(j).map(v => v.toFixed(1)).join(',')).join(' ');
  const [cx, cy] = xy(i);
  return `<div class="dv-cands-head">The guess is a weighted average of <b>≈ ${Number(f.neff).toFixed(f.neff < 10 ? 1 : 0)}</b> ` +
    `training emoji (of the ${c.support.toLocaleString('en')} the prompt allows). Largest weights:</div>` +
    `<div class="dv-cand-row">${tiles}</div>` +
    `<svg class="dv-cand-curve" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" ` +
    `aria-label="How many emoji share the weight, step by step (log scale, ${c.support} at the top, 1 at the bottom)">` +
    `<text x="${W - 4}" y="12" text-anchor="end" font-size="11" fill="#4b5563">${c.support.toLocaleString('en')} emoji</text>` +
    `<text x="${W - 4}" y="${H - 6}" text-anchor="end" font-size="11" fill="#4b5563">1</text>` +
    `<polyline points="${pts}" fill="none" stroke="#4338ca" stroke-width="2"/>` +
    `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="#b45309"/></svg>`;
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
      const caption = S.cols.length > 1 ? (SHORT[p] || p) :
        `<span class="dv-long">${TITLES[p] || p}</span><span class="dv-short">${SHORT[p] || p}</span>`;
      html += `<figure class="dv-panel"><canvas class="dv-img" data-panel="${p}" role="img" ` +
              `aria-label="${(TITLES[p] || p).replace(/<[^>]*>/g, '')}"></canvas>` +
              `<figcaption>${caption}</figcaption></figure>`;
    }
    html += '</div><div class="dv-numbers"></div>';
    c.innerHTML = html;
    box.appendChild(c);
  });
  q('.dv-empty').style.display = S.cols.length ? 'none' : '';
  q('.dv-controls').style.display = S.cols.length ? '' : 'none';
}
function paint(canvas, image) {
  if (!image) return;
  if (canvas.width !== image.width || canvas.height !== image.height) {
    canvas.width = image.width; canvas.height = image.height;
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
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
    el.querySelectorAll('canvas.dv-img').forEach(cv => {
      if (cv.dataset.shown !== String(i)) { paint(cv, f.img[cv.dataset.panel]); cv.dataset.shown = String(i); }
    });
    const noise = Math.sqrt(Math.max(0, 1 - f.alpha_bar));
    el.querySelector('.dv-numbers').innerHTML =
      (S.align === 'step' ? (S.pos < offset(col) ? `<span>starts at step <b>${offset(col) + 1}</b></span>`
                                                 : `<span>step <b>${(f.index || 0) + 1}</b>/${offset(col) + col.frames.length}</span>`)
                          : `<span>step <b>${i + 1}</b>/${col.frames.length}</span>`) + `<span>${tText(f)}</span>` +
      `<span>${term('abar', 'ᾱ')} = <b>${fmtSnr(f.alpha_bar)}</b>` +
      (S.cols.length > 1 ? '' : ` (signal power left: ${fmtPct(f.alpha_bar)} %)`) + `</span>` +
      (S.cols.length > 1 ? '' : `<span title="how much of the predicted noise is really in x_t">` +
        `noise left √(1−ᾱ) = <b>${noise.toFixed(3)}</b></span><span>${term('snr', 'SNR')} = <b>${fmtSnr(f.snr)}</b></span>` +
        `<span>${term('logsnr', 'log SNR')} = <b>${fmt(f.log_snr, 2)}</b></span>`);
    el.classList.toggle('dv-waiting', S.align === 'step' && S.pos < offset(col));
  });
  // under the controls (they stay next to the pictures): the exact model's candidates at this step
  const one = S.cols.length === 1 && S.cols[0].cand ? S.cols[0] : null;
  q('.dv-cands').innerHTML = one ? candsHtml(one, frameFor(one, S.pos)) : '';
  const slider = q('.dv-slider');
  slider.max = Math.max(0, L - 1);
  slider.value = S.pos;
  const total = S.cols.length === 1 ? Math.max(S.total || 0, L) : L;
  q('.dv-step').textContent = S.live ? `sampling… ${L} / ${total}` :
    (S.cols.length > 1 && S.align !== 'step' ? `${Math.round(100 * S.pos / Math.max(1, L - 1))}% of each run`
                                             : `step ${S.pos + 1} / ${L}`);
  const t1 = performance.now();
  S.lat.push(t1 - t0);
  requestAnimationFrame(() => S.paint.push(performance.now() - t0));
  return t1 - t0;
}
function setPlay(on) {
  const b = q('.dv-play'); b.innerHTML = (on ? ICONS.pause : ICONS.play) + `<span>${on ? 'Pause' : 'Play'}</span>`;
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
}
function stop() { if (S.timer) { clearInterval(S.timer); S.timer = null; } setPlay(false); }
// The run was stopped on the server: keep the frames that arrived, playable, and say so.
function finish() {
  S.live = false; S.open = false;
  S.stopped = true;  // frames still in flight from the cancelled run are ignored,
  S.gen += 1;        // and so are those still decoding: the player keeps what it shows now
  if (maxLen()) show(maxLen() - 1);
  return {done: maxLen(), total: S.total || maxLen()};
}
function play() {
  if (S.timer) { stop(); return; }
  if (S.pos >= maxLen() - 1) show(0);
  const fps = Number(q('.dv-speed').value) || 8;
  setPlay(true);
  S.follow = false;  // playing through a run that still streams: new frames do not interrupt it
  S.timer = setInterval(() => { if (S.pos >= maxLen() - 1) { S.follow = true; stop(); return; } show(S.pos + 1); },
                        1000 / fps);
}
// src: 'gradio' (the component's value) or 'route' (fetchRun). A run comes by both ways in the browser;
// its key says it is the same run: once shown in full it is not loaded again, and while one way streams
// it, the other's partial chunks are ignored.
function load(raw, src) {
  src = src || 'gradio';
  if (!raw) { if (src === 'gradio' && S.ctl) return; stop(); S.gen += 1; S.open = false; S.cols = []; build(); return; }
  let d; try { d = typeof raw === 'string' ? JSON.parse(raw) : raw; } catch (e) { return; }
  if (!d || !d.columns) return;
  S.received[src] = (S.received[src] || 0) + 1;
  if (d.key && d.key === S.key && (S.complete || (src !== S.src && d.mode !== 'full'))) return;
  if (d.mode === 'append' && S.stopped) return;
  // Whether a run is open is known now, not when its first chunk has decoded: on a slow machine the next
  // chunk can arrive while the first is still decoding, and must be added to it, not start a new run
  // (that lost the run's first frames: "step 1" showed the second x_t).
  const append = d.mode === 'append' && S.open;
  // the finished payload of the run that was streaming: the user may have stepped back to look at a step
  const finishing = d.mode === 'full' && S.open;
  // "sent": k (the route's finished run): its first k frames' pictures came in this run's earlier lines,
  // so it waits for them to decode (it does not drop them, as a complete finished payload may)
  if (d.sent && !finishing) { S.leanFailed = true; return; }
  const sent = d.sent || 0;
  if (!append && !sent) {  // a new run (or the whole run at once): earlier chunks still decoding are dropped
    S.gen += 1; S.stopped = false; S.chain = Promise.resolve();
    if (!finishing) S.follow = true;
  }
  S.open = d.mode !== 'full';
  if (!append) { S.key = d.key || ''; S.src = src; }
  S.complete = d.mode === 'full';
  const gen = S.gen;
  if (!append) S.run = d.run || '';  // a Stable Diffusion run's id, for decode-on-demand
  // chunks decode one after another, in order; each shows its frames as soon as they are ready
  S.chain = S.chain.then(async () => {
    const decoded = await Promise.all(d.columns.map(c => decodeColumn(c.frames.slice(sent), c.strips || [])));
    if (gen !== S.gen) return;
    if (sent) {
      if (!S.cols.every((col, i) => col.frames.length === sent && d.columns[i])) {  // (cannot happen in order)
        S.leanFailed = true; S.complete = false; return;  // fetchRun asks again: the whole run, from the cache
      }
      decoded.forEach((frames, i) => { decoded[i] = [...S.cols[i].frames.map((f, j) => ({...d.columns[i].frames[j], img: f.img})), ...frames]; });
    }
    const kept = finishing && !S.follow ? stepAt(S.pos) : null;  // the step the user is looking at
    if (append) {
      decoded.forEach((frames, i) => { if (S.cols[i]) S.cols[i].frames.push(...frames); });
    } else {
      stop();
      if (d.panels) S.panels = d.panels;
      S.align = d.align || 'fraction';
      S.cols = d.columns.map((c, i) => ({title: c.title, frames: decoded[i], final: c.final,
        cand: c.cand_images ? {images: c.cand_images, names: c.cand_names, support: c.cand_support} : null}));
      build();
    }
    S.total = d.total || 0;
    S.live = d.mode !== 'full';
    const seek = window.__dvSeek && window.__dvSeek[id];  // a link asked for this step of the run
    if (!S.live && seek !== undefined) delete window.__dvSeek[id];
    show(S.live ? (S.follow ? maxLen() - 1 : S.pos)
         : (seek !== undefined ? seek : (kept !== null ? posOf(kept) : (d.start === 'end' ? maxLen() - 1 : 0))));
    // a new run's first picture: note when the browser is about to paint it (for the benchmark)
    if (!append && maxLen() > 0) requestAnimationFrame(() => S.shown.push(performance.now()));
  }).catch((e) => console.error('diffusion-viz player:', e));
}
// Generate in the Denoise tab: ask the server's run route (ui/run_route.py) for this run's frames, line by
// line, while gradio's event fills in the rest of the page. If the route cannot answer, gradio's own
// payload fills the player instead. values: [prompt, steps, seed, guidance, sampler, schedule, model].
const ROUTE_PARAMS = ['prompt', 'steps', 'seed', 'guidance', 'scheduler', 'schedule', 'model'];
// onFirst(key) is called once the first picture is on screen (key: the run's), or with '' when the route
// failed before it. A connection lost later is asked again once (the finished run is in the server's cache).
async function fetchRun(values, onFirst) {
  if (S.ctl) S.ctl.abort();
  const ctl = S.ctl = new AbortController();
  S.fetches += 1;
  let first = onFirst || (() => {});
  const firstDone = (key) => { const f = first; first = () => {}; f(key || ''); };
  const qs = new URLSearchParams();
  ROUTE_PARAMS.forEach((name, i) => qs.set(name, values[i] === null || values[i] === undefined ? '' : String(values[i])));
  qs.set('lean', '1');  // the finished line without the pictures that came before it
  let full = false;
  S.startKey = ''; S.leanFailed = false;
  try {
    for (let attempt = 0; attempt < 2 && !full && !ctl.signal.aborted; attempt++) {
      try {
        const resp = await fetch(new URL('dv/run?' + qs, location.href.split(/[?#]/)[0]),
                                 {signal: ctl.signal, cache: 'no-store'});
        if (!resp.ok || !resp.body) return false;
        const reader = resp.body.getReader(), text = new TextDecoder();
        let buf = '';
        for (;;) {
          const {done, value} = await reader.read();
          if (done) { await S.chain; if (S.leanFailed) { full = false; S.leanFailed = false; } break; }
          buf += text.decode(value, {stream: true});
          let cut;
          while ((cut = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, cut); buf = buf.slice(cut + 1);
            const d = JSON.parse(line);
            if (d.error) return false;  // gradio's event says it in words on the page
            if (d.mode === 'start') { S.startKey = d.key; continue; }  // the run's key, before any work
            load(d, 'route');
            full = full || d.mode === 'full';
            S.chain.then(() => requestAnimationFrame(() => firstDone(d.key)));  // once the picture is painted
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return false;  // Stop, or a newer run
      }
    }
    return full;
  } finally {
    S.chain.then(() => firstDone(full ? S.key : ''));  // (after the first picture's own call, if any)
    if (S.ctl === ctl) S.ctl = null;
  }
}
function abortRun() { if (S.ctl) { S.ctl.abort(); S.ctl = null; } }
// The user's own moves: while a run streams in, stepping back stops the view from following new frames;
// stepping to the newest frame follows them again.
function userShow(pos) { show(pos); S.follow = S.pos >= maxLen() - 1; }
function stepAt(pos) { const c = S.cols[0], f = c && c.frames[Math.min(pos, c.frames.length - 1)];
                       return f && f.index !== undefined ? f.index : pos; }
function posOf(step) {  // the last frame at or before a step (a finished run may be thinned)
  const c = S.cols[0]; if (!c) return 0;
  let k = 0; c.frames.forEach((f, i) => { if ((f.index !== undefined ? f.index : i) <= step) k = i; });
  return k;
}
q('.dv-slider').addEventListener('input', (e) => { stop(); userShow(Number(e.target.value)); });
root.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-act]'); if (!b) return;
  const act = b.dataset.act;
  if (act === 'play') play();
  else { stop(); userShow(S.pos + (act === 'fwd' ? 1 : -1)); }
});
q('.dv-speed').addEventListener('change', () => { if (S.timer) { stop(); play(); } });
// Keyboard, anywhere in the player: space plays/pauses, arrows step, Home/End jump to the ends.
root.addEventListener('keydown', (e) => {
  if (!S.cols.length || e.target.closest('select')) return;
  const L = maxLen(), keys = {' ': 'play', 'ArrowLeft': -1, 'ArrowRight': 1, 'Home': 'home', 'End': 'end'};
  const k = keys[e.key]; if (k === undefined) return;
  if (e.target.closest('button') && e.key === ' ') return;  // a focused button already acts on space
  e.preventDefault();
  if (k === 'play') { play(); return; }
  stop();
  userShow(k === 'home' ? 0 : k === 'end' ? L - 1 : S.pos + k);
});
// The picture a panel shows, as 0..255 RGBA values (for the browser tests: what is on screen).
function pixels(panel, col) {
  const cv = root.querySelectorAll('.dv-col')[col || 0].querySelector(`canvas[data-panel="${panel}"]`);
  return Array.from(cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data);
}
reg[id] = {
  seek: show, play, stop, load, finish, state: S, pixels, fetchRun, abortRun,
  idle: () => S.chain.then(() => true),  // resolves once every chunk received so far is on screen
  frames: () => maxLen(), position: () => S.pos, playing: () => !!S.timer, run: () => S.run || '',
  frameIndex: () => { const c = S.cols[0]; const f = c && c.frames[Math.min(S.pos, c.frames.length - 1)];
                      return f && f.index !== undefined ? f.index : S.pos; },
  shownAt: () => S.shown.slice(),  // when each run's first frame appeared (performance.now(), for the benchmark)
  latencies: () => S.lat.slice(), paints: () => S.paint.slice(), reset: () => { S.lat = []; S.paint = []; },
};
if (prev && S.cols.length) { build(); show(S.pos); } else { load(props.value); }
if (!watched.has(props)) { watched.add(props); watch('value', () => reg[id].load(props.value)); }
"""


def _tips() -> dict:
    """Glossary lines for the player's numbers, escaped for an HTML attribute."""
    import html

    from ..glossary import glossary_html_title

    return {key: html.escape(glossary_html_title(term), quote=True)
            for key, term in (("abar", "ᾱ"), ("snr", "SNR"), ("logsnr", "log-SNR"))}


def player_js() -> str:
    return (JS.replace("__DECODE__", DECODE_JS).replace("__TITLES__", json.dumps(PANEL_TITLES))
            .replace("__ICONS__", json.dumps(ICONS)).replace("__SHORT__", json.dumps(SHORT_TITLES))
            .replace("__TIPS__", json.dumps(_tips())))


def make_player(elem_id: str, empty_text: str, **kwargs):
    """A gr.HTML running the player. Import gradio lazily so logic stays gradio-free."""
    import gradio as gr

    return gr.HTML(value="", html_template=TEMPLATE, js_on_load=player_js(), elem_id=elem_id,
                   elem_classes=["dv-player-block"], empty_text=empty_text, apply_default_css=False,
                   icon_back=ICONS["back"], icon_play=ICONS["play"], icon_fwd=ICONS["fwd"], **kwargs)


def to_value(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
