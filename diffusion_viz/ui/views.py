"""A link for every view: the tab and its settings in the URL, read back leniently.

``link_query`` writes the query string a "Copy link" button puts in the clipboard; ``parse_link`` reads one
back. A link comes from anywhere (a teacher's slide, a typo, a hostile page), so reading it never fails:
an unknown tab or setting is dropped and a value out of range is clamped, each with a note the page
shows. Photos are never in links (privacy): the forward tab's link says so.

The parameter names are the guided lesson's (``lessons.URL_PARAMS``), plus ``step`` (where the player's
slider is), ``classroom``, ``lesson`` and ``stop``.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlencode

from ..lessons import URL_PARAMS
from ..limits import LIMITS
from ..models.registry import MODELS
from ..sampling import SCHEDULERS
from ..schedules import SCHEDULES
from ..validation import MAX_PROMPT_CHARS, MAX_SEED

TABS = ("denoise", "forward", "compare", "memorize", "experiments", "how")
TAB_KEYS = {  # what each tab's link holds
    "denoise": ("prompt", "model", "sampler", "schedule", "steps", "seed", "guidance", "step"),
    "forward": ("t", "schedules", "noise_seed"),
    "compare": ("prompt", "model", "seed", "sampler", "schedule", "steps", "guidance", "step"),
    "memorize": ("prompt", "seed", "steps", "guidance"),
    "experiments": ("exp", "prompt", "prompt_b", "model", "sampler", "schedule", "steps", "seed", "levels", "mode",
                    "count", "emoji", "step"),
    "how": (),
}
EXTRA = ("step", "classroom", "lesson", "stop")
# The Experiments tab: which experiment, and the keys only it has
EXPERIMENTS = ("round-trip", "when", "seeds")
EXPERIMENT_KEYS = {  # the keys each experiment's link holds, in the order of its controls (view_updates)
    "round-trip": ("prompt", "seed", "model", "sampler", "schedule", "steps", "levels", "emoji"),
    "when": ("prompt", "prompt_b", "seed", "mode", "model", "sampler", "schedule", "steps"),
    "seeds": ("prompt", "seed", "count", "model", "sampler", "schedule", "steps"),
}
EXPERIMENT_ONLY = ("exp", "prompt_b", "levels", "mode", "count", "emoji")
MODE_LABELS = {"switch": "switch the prompt", "reseed": "new noise (DDPM, Euler a)"}
COLUMN_KEYS = ("sampler", "schedule", "steps", "guidance")  # comma-separated per Compare column
MAX_GUIDANCE_UI = 15.0  # the Guidance sliders' range (the API allows up to validation.MAX_GUIDANCE)
PHOTO_NOTE = "Your photo is not included in links (it stays on your computer)."


def link_query(tab: str, settings: dict, step: int | None = None, classroom: bool = False) -> str:
    """The query string for a view (no leading "?"): only the keys the tab uses, lists comma-separated."""
    pairs = [("tab", tab)]
    for key in TAB_KEYS.get(tab, ()):
        value = settings.get(key)
        if key == "step" or value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(_text(v) for v in value)
        pairs.append((key, _text(value)))
    if step is not None and "step" in TAB_KEYS.get(tab, ()):
        pairs.append(("step", str(int(step))))
    if classroom:
        pairs.append(("classroom", "1"))
    return urlencode(pairs)


def _text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _number(raw: str, kind, lo, hi, name: str, notes: list):
    try:
        value = float(raw)
    except ValueError:
        notes.append(f"{name} {raw!r} is not a number: ignored.")
        return None
    if not math.isfinite(value):
        notes.append(f"{name} {raw!r} is not a finite number: ignored.")
        return None
    if kind is int and not value.is_integer():
        notes.append(f"{name} {raw!r} is not a whole number: ignored.")
        return None
    clamped = min(max(value, lo), hi)
    if clamped != value:
        notes.append(f"{name} {raw} is outside {_text(lo)}..{_text(hi)}: set to {_text(kind(clamped))}.")
    return kind(clamped)


def _choice(raw: str, choices, name: str, notes: list):
    if raw in choices:
        return raw
    notes.append(f"Unknown {name} {raw[:40]!r}: ignored.")
    return None


def _one(key: str, raw: str, notes: list):
    """One setting from its text, clamped or dropped (None) with a note."""
    if key == "prompt":
        if len(raw) > MAX_PROMPT_CHARS:
            notes.append(f"The prompt was longer than {MAX_PROMPT_CHARS} characters: cut.")
        return raw[:MAX_PROMPT_CHARS]
    if key == "model":
        from ..models.sd_loading import load_presets

        if raw not in MODELS and raw in load_presets():
            notes.append(f"This server does not offer the model {raw!r} (its operator chooses the models): "
                         "the default model is used.")
            return None
        return _choice(raw, MODELS, "model", notes)
    if key == "sampler":
        return _choice(raw, SCHEDULERS, "sampler", notes)
    if key == "schedule":
        return _choice(raw, SCHEDULES, "noise schedule", notes)
    if key == "steps":
        return _number(raw, int, 1, LIMITS.steps, "Steps", notes)
    if key in ("seed", "noise_seed"):
        return _number(raw, int, 0, MAX_SEED, "Seed" if key == "seed" else "Noise seed", notes)
    if key == "guidance":
        return _number(raw, float, 0.0, MAX_GUIDANCE_UI, "Guidance", notes)
    if key == "t":
        return _number(raw, int, 0, 999, "t", notes)
    if key == "step":
        return _number(raw, int, 0, 10_000, "Step", notes)
    if key == "exp":
        return _choice(raw, EXPERIMENTS, "experiment", notes)
    if key == "prompt_b":
        return _one("prompt", raw, notes)
    if key == "mode":
        return _choice(raw, tuple(MODE_LABELS), "experiment mode", notes)
    if key == "count":
        return _number(raw, int, 1, 8, "Number of seeds", notes)
    if key == "emoji":
        from .experiments import emoji_names

        return _choice(raw, emoji_names(), "training emoji", notes)
    if key == "levels":
        from .experiments import LEVEL_CHOICES

        levels = [v for v in (_number(p, int, 0, 999, "t", notes) for p in raw.split(",") if p) if v is not None]
        kept = [v for v in levels if v in LEVEL_CHOICES]
        if len(kept) < len(levels):
            notes.append(f"Noise levels other than {', '.join(map(str, LEVEL_CHOICES))}: ignored.")
        return kept or None
    if key == "schedules":
        names = [n for n in (_choice(s, SCHEDULES, "noise schedule", notes) for s in raw.split(",") if s) if n]
        if len(names) > 4:
            notes.append("At most 4 schedules: the first 4 kept.")
        return names[:4] or None
    return None


def parse_link(query: str) -> tuple[str, dict, list[str]]:
    """(tab, settings, notes) from a query string. Never raises: what cannot be used is dropped or
    clamped, and ``notes`` says what happened. Compare's per-column keys come back as lists."""
    notes: list[str] = []
    params = parse_qs(str(query or "").lstrip("?"), keep_blank_values=True)
    tab = (params.pop("tab", ["denoise"]) or ["denoise"])[-1]
    if tab not in TABS:
        notes.append(f"Unknown tab {tab[:40]!r}: opened Denoise instead.")
        tab = "denoise"
    settings: dict = {}
    for key, values in params.items():
        raw = values[-1]
        if key in ("classroom", "lesson", "stop"):
            continue  # read by the page itself
        if key not in URL_PARAMS and key not in EXTRA and key not in EXPERIMENT_ONLY:
            notes.append(f"Unknown setting {key[:40]!r}: ignored.")
            continue
        if key not in TAB_KEYS[tab]:
            notes.append(f"{key!r} does not belong to the {tab} tab: ignored.")
            continue
        if tab == "compare" and key in COLUMN_KEYS:
            parts = [p for p in raw.split(",")][:LIMITS.columns]
            if len(raw.split(",")) > LIMITS.columns:
                notes.append(f"At most {LIMITS.columns} Compare columns: the first {LIMITS.columns} kept.")
            column = [_one(key, p, notes) for p in parts]
            if all(v is not None for v in column) and column:
                settings[key] = column
            continue
        value = _one(key, raw, notes)
        if value is not None:
            settings[key] = value
    if tab == "forward" or (tab == "experiments" and settings.get("exp", "round-trip") == "round-trip"
                            and "emoji" not in settings):
        notes.append(PHOTO_NOTE)
    return tab, settings, notes


def notes_markdown(notes: list[str]) -> str:
    """The notes for the page, as text (a link's content never becomes markup)."""
    from .logic import escape_text

    if not notes:
        return ""
    return "**About this link:** " + " ".join(escape_text(n) for n in notes)


# ---- applying a view to the page (a link, or a stop of the guided lesson) ------------------------------
class Targets:
    """The components a view can set, in a fixed order (the outputs of every "apply a view" event)."""

    def __init__(self, tabs, denoise: dict, forward: dict, compare: dict, memorize: dict, note, tab_box, run_box,
                 experiments: dict):
        self.tabs, self.note, self.tab_box, self.run_box = tabs, note, tab_box, run_box
        self.experiments = [experiments["tabs"]] + [experiments[exp][c] for exp in EXPERIMENTS
                                                    for c in experiment_controls(exp)]
        self.denoise = [denoise[k] for k in ("prompt", "model", "sampler", "schedule", "steps", "seed", "guidance")]
        self.forward = [forward[k] for k in ("t", "schedules", "noise_seed")] + [forward["valid_schedules"]]
        self.compare = [compare[k] for k in ("prompt", "seed", "model")] + list(compare["columns"])
        self.memorize = [memorize[k] for k in ("prompt", "seed", "steps", "guidance")]

    @property
    def outputs(self) -> list:
        return [self.tabs, *self.denoise, *self.forward, *self.compare, *self.memorize, *self.experiments, self.note,
                self.tab_box, self.run_box]


def experiment_controls(exp: str) -> list[str]:
    """The names of an experiment's controls (ui/experiments_tab.py) for its link keys, in order."""
    rename = {"prompt": "a", "prompt_b": "b"} if exp == "when" else {}
    return [rename.get(k, k) for k in EXPERIMENT_KEYS[exp]]


def _set(settings: dict, key: str):
    import gradio as gr

    return gr.update(value=settings[key]) if key in settings else gr.skip()


def view_updates(tab: str, settings: dict, note: str = "", run: bool = True) -> tuple:
    """Updates for ``Targets.outputs``: the tab selected, its controls set, the note, and whether the page
    should run it (fast offline models only: a Stable Diffusion model waits for Generate)."""
    import gradio as gr

    skip = gr.skip
    denoise = [skip()] * 7
    forward = [skip()] * 4
    compare = [skip()] * (3 + 5 * LIMITS.columns)
    memorize = [skip()] * 4
    experiments = [skip()] * (1 + sum(len(v) for v in EXPERIMENT_KEYS.values()))
    if tab == "denoise":
        denoise = [_set(settings, k) for k in ("prompt", "model", "sampler", "schedule", "steps", "seed", "guidance")]
    elif tab == "forward":
        forward = [_set(settings, k) for k in ("t", "schedules", "noise_seed")]
        forward.append(gr.update(value=settings["schedules"]) if "schedules" in settings else skip())
    elif tab == "compare":
        compare = [_set(settings, k) for k in ("prompt", "seed", "model")]
        columns = compare_columns(settings)
        for k in range(LIMITS.columns):
            if k < len(columns):
                c = columns[k]
                compare += [gr.update(value=True), gr.update(value=c["sampler"]), gr.update(value=c["schedule"]),
                            gr.update(value=c["steps"]), gr.update(value=c["guidance"])]
            elif columns:
                compare += [gr.update(value=False), skip(), skip(), skip(), skip()]
            else:
                compare += [skip()] * 5
        compare = compare[:3 + 5 * LIMITS.columns]
    elif tab == "memorize":
        memorize = [_set(settings, k) for k in ("prompt", "seed", "steps", "guidance")]
    exp = settings.get("exp", "round-trip")
    if tab == "experiments":
        experiments = [gr.update(selected=exp)]
        for name in EXPERIMENTS:
            for k in EXPERIMENT_KEYS[name]:
                if name != exp or k not in settings:
                    experiments.append(skip())
                elif k == "mode":
                    experiments.append(gr.update(value=MODE_LABELS[settings[k]]))
                else:
                    experiments.append(gr.update(value=settings[k]))
    model = settings.get("model")
    fast = model is None or str(model).startswith("emoji")  # the offline emoji models answer in a second
    run_it = run and tab in ("denoise", "compare", "memorize", "experiments") and fast
    step = settings.get("step")
    return (gr.update(selected=tab), *denoise, *forward, *compare, *memorize, *experiments, note, tab,
            f"{'run' if run_it else ''}:{'' if step is None else int(step)}" + (f":{exp}" if tab == "experiments" else ""))


def compare_columns(settings: dict) -> list[dict]:
    """Compare's per-column settings as columns. A list gives one value per column (a short list repeats
    its last value), a single value is every column's, a missing key takes the default."""
    lists = {k: settings[k] for k in COLUMN_KEYS if isinstance(settings.get(k), list)}
    if not lists:
        return []
    n = max(len(v) for v in lists.values())
    defaults = {"sampler": "ddim", "schedule": "cosine", "steps": 50, "guidance": 1.0}

    def value(k, i):
        v = settings.get(k, defaults[k])
        if isinstance(v, list):
            return v[i] if i < len(v) else v[-1]
        return v

    return [{k: value(k, i) for k in COLUMN_KEYS} for i in range(n)]


# After a view is applied: run it (click its button) and put the player's slider where the link says.
RUN_VIEW_JS = """(tab, run) => {
  const [what, step, exp] = String(run || '').split(':');
  const players = {denoise: 'dv-player', compare: 'dv-cmp-player',
                   experiments: {'round-trip': 'dv-rt-player', when: 'dv-wd-player', seeds: 'dv-sg-player'}[exp]};
  if (step !== '' && step !== undefined && players[tab]) { window.__dvSeek = window.__dvSeek || {}; window.__dvSeek[players[tab]] = Number(step); }
  const buttons = {denoise: '#dv-generate', compare: '#dv-compare', memorize: '#dv-mvg-run',
                   experiments: {'round-trip': '#dv-rt-run', when: '#dv-wd-run', seeds: '#dv-sg-run'}[exp]};
  if (what === 'run' && buttons[tab]) setTimeout(() => { const b = document.querySelector(buttons[tab]); if (b) b.click(); }, 300);
  return [tab, run];
}"""

# "Copy link": the server writes the query; the page adds its own address, the player's step and the
# classroom mode, copies it, and shows it.
COPY_LINK_JS = """(query) => {
  if (!query) return ['', ''];
  const params = new URLSearchParams(query);
  const tab = params.get('tab');
  const players = {denoise: 'dv-player', compare: 'dv-cmp-player',
                   experiments: {'round-trip': 'dv-rt-player', when: 'dv-wd-player', seeds: 'dv-sg-player'}[params.get('exp')]};
  const p = players[tab] && window.dvPlayers && window.dvPlayers[players[tab]];
  if (p && p.frames()) params.set('step', String(p.position()));
  if (document.body.classList.contains('dv-classroom')) params.set('classroom', '1');
  const url = window.location.origin + window.location.pathname + '?' + params.toString();
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).catch(() => {});
  return [query, url];
}"""
