"""Denoise tab: controls on the left, the streaming step player on the right.

Public endpoint: ``generate`` (see docs/API.md). Frames stream into the player while sampling; the
finished run arrives once, so scrubbing afterwards never touches the server.
"""

from __future__ import annotations

import contextlib
import html
import random
import threading

import gradio as gr

from ..errors import DiffusionVizError, InvalidInputError, Stopped
from ..limits import LIMITS, time_limit_message
from ..models.registry import DEFAULT_MODEL, MODELS
from ..sampling import SCHEDULER_DESCRIPTIONS, SCHEDULERS, SampleSettings, sample
from ..schedules import SCHEDULE_DESCRIPTIONS, SCHEDULES
from ..validation import MAX_SEED
from . import explain, logic, sampling_pool, sd_view
from .cache import RESULTS, RUNNING, key_id, run_key
from .common import GENERIC, friendly, log
from .player import make_player, to_value
from .serving import WORK, Waiting, run_stoppable, stop_after

QUICK_PROMPTS = ["dog", "rocket", "pizza", "tree"]
# Live counters for tests and the load benchmark: runs in progress and frames sampled so far. A run
# that is cancelled (Stop, closed tab) is closed by gradio at its next yield and leaves "active".
RUN_STATS = {"active": 0, "frames": 0, "runs": 0, "cache_hits": 0}
_STATS_LOCK = threading.Lock()


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        RUN_STATS[key] += n


@contextlib.contextmanager
def _active_run():
    """Count a run as made and, while it lasts, as active (here or in a worker process)."""
    _count("active")
    _count("runs")
    try:
        yield
    finally:
        _count("active", -1)


def _counted(progress):
    """Pass a run's progress through, counting frames; closing it (cancel) stops the sampler."""
    with _active_run(), contextlib.closing(progress):
        for prog in progress:
            _count("frames", len(prog.new_frames))
            yield prog


def _model_markdown(name: str) -> str:
    info = MODELS.get(name)
    return f"*{info.description}*" if info else ""


@friendly
def generate(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """Sample and stream frames into the player; finally the full run, the image and a JSON summary.

    Outputs: player payload (JSON string), final image, summary (dict), conditioning (Markdown),
    status (Markdown), downloads (None: the GIF and MP4 come from /downloads, on request).
    """
    yield from run_outputs(prompt, steps, seed, guidance, scheduler, schedule, model_name)


def run_id(prompt, steps, seed, guidance, scheduler, schedule, model_name) -> str:
    """The short key of the run these controls ask for (validated: bad input raises, as Generate would)."""
    return key_id(run_key(model_name, logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)))


@friendly
def generate_page(prompt, steps, seed, guidance, scheduler, schedule, model_name, route_key=""):
    """Generate as the page asks for it. When the player's own route is already bringing this run's
    frames (``route_key``: the run's key, set by the page's JavaScript once the route's first picture
    is on screen), the player's output is left alone, so the frames do not travel twice."""
    mine = bool(route_key) and route_key == run_id(prompt, steps, seed, guidance, scheduler, schedule, model_name)
    for out in run_outputs(prompt, steps, seed, guidance, scheduler, schedule, model_name):
        yield (gr.skip(), *out[1:]) if mine else out


def run_outputs(prompt, steps, seed, guidance, scheduler, schedule, model_name,
                first_send: float = logic.FIRST_SEND_S, route: bool = False, lean: bool = False):
    """The outputs of one Generate as they become ready (``gr.skip()`` where nothing changed): shared by
    gradio's ``/generate`` and the player's own route (``route=True``, ui/run_route.py), which keeps only
    the player's (with ``lean``: the finished run also without the pictures it streamed before, see
    ``_generate``).

    A run is computed once: from the result cache if it was made before, and if someone is computing
    it right now (the page's player route, or a classmate with the same settings), by waiting for them.
    """
    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    logic.check_cost([settings])
    model = logic.load_model(model_name)
    key = run_key(model_name, settings)
    cached = RESULTS.get(key)
    if cached is not None:  # the same run was made before (by anyone): replay it at once
        _count("cache_hits")
        out = list(cached)
        if not _JUST_MADE.take(key):  # (not when the page's own route made it a moment ago, for this click)
            out[4] = f"{out[4]} (Served from the cache: the same settings were run before.)"
        yield tuple(out)
        return
    # Something at once, before any work: gradio can close a run (Stop, a closed tab) only after its
    # first message, and a Stop that came earlier would be lost.
    yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Sampling… Press **Stop** to end the run early.", gr.skip()
    while True:
        with RUNNING.lead(key) as mine:
            if mine:
                with WORK.slot():  # released when the run ends or the generator is closed (Stop, closed tab)
                    worker = sampling_pool.take(model_name, model)  # a worker process, where one is ready
                    run = (_generate(settings, model, model_name, key, first_send, lean=lean) if worker is None
                           else _pooled(worker, settings, model_name, key, first_send, lean))
                    with contextlib.closing(run):  # closed with this generator: the sampler stops
                        for item in run:
                            if isinstance(item, Finished):
                                RESULTS.put(key, tuple(item[:6]))
                                item = tuple(item)
                            yield item
                if route:
                    _JUST_MADE.add(key)
                return
        while not RUNNING.wait(key, 0.25):  # another request is making this very run: wait for it
            yield (gr.skip(),) * 6  # (each message is a point where gradio can stop a waiting run)
        cached = RESULTS.get(key)
        if cached is not None:
            yield cached
            return
        # that run ended without a result (stopped, failed, or too big to keep): make it here


class Finished(tuple):
    """The last message of a run (``_generate``): its first 6 items are the outputs the result cache keeps."""


def _pooled(worker, settings, model_name, key, first_send, lean):
    """``_generate`` in a worker process (ui/sampling_pool.py), counted here as runs in this process are."""
    with _active_run():
        yield from worker.run(model_name, settings, key, first_send, lean, LIMITS.run_seconds,
                              count=lambda n: _count("frames", n))


class _JustMade:
    """Runs the player's route made for a click whose gradio event has not asked yet (bounded): that
    event then shows the run as made now, not as "served from the cache"."""

    def __init__(self, size: int = 256):
        self._keys: dict = {}
        self._lock = threading.Lock()
        self._size = size

    def add(self, key) -> None:
        with self._lock:
            self._keys[key] = True
            while len(self._keys) > self._size:
                self._keys.pop(next(iter(self._keys)))

    def take(self, key) -> bool:
        with self._lock:
            return self._keys.pop(key, False)


_JUST_MADE = _JustMade()


def _generate(settings, model, model_name, key, first_send: float = logic.FIRST_SEND_S, lean: bool = False,
              should_stop=None):
    """One run's outputs as it streams; the last message is ``Finished`` (the caller caches it). ``lean``
    (the player's route): the finished run's message carries, as a 7th item, its payload without the
    pictures already streamed (``"sent"``: how many frames the receiver has), so a run's frames travel
    once; the 6 outputs (cache, gradio) stay complete. ``should_stop``: default, the request's time limit."""
    sd = sd_view.is_sd(model)  # a latent model with a VAE and a tokenizer (duck-typed)
    info = (sd_view.conditioning_info if sd else logic.conditioning_info)(model, settings.prompt)
    cond_md = (sd_view.tokens_markdown if sd else logic.conditioning_markdown)(info)
    # With a safety checker, no picture is shown before the checker has seen the finished one.
    checked = sd and getattr(model, "safety_checked", False)
    records, chunks, first = [], [], True
    sent_frames = sent_strips = 0  # what the messages so far carried
    runs = _counted(logic.stream_run(model, settings, should_stop=should_stop or stop_after(), first_send=first_send))
    for prog in runs:
        records += prog.new_frames
        if prog.trajectory is None and checked:
            yield (gr.skip(), gr.skip(), gr.skip(), cond_md if first else gr.skip(),
                   f"Sampling {prog.total} steps… The pictures appear once the safety checker has seen the "
                   "finished one." if first else gr.skip(), gr.skip())
            first = False
            continue
        if prog.trajectory is None:
            column = logic.player_column(prog.new_frames, model)
            chunks += column["strips"]  # sent now, and again (not encoded again) in the finished run
            payload = logic.player_payload([column], mode="reset" if first else "append", total=prog.total,
                                           key=key_id(key))
            # The status is written once: the player counts the steps as they arrive. (A later status
            # message still in flight when Stop is pressed would overwrite "Stopped at step k".)
            status = (f"Sampling {prog.total} steps… Press **Stop** to end the run early." if first
                      else gr.skip())
            yield (to_value(payload), gr.skip(), gr.skip(), cond_md if first else gr.skip(), status, gr.skip())
            first = False
            sent_frames, sent_strips = len(records), len(chunks)
            continue
        traj = prog.trajectory
        to_rgb, _ = logic.display_functions(model)
        final_rgb = to_rgb(traj.final)
        final_uri = logic.png_data_uri(final_rgb)
        extra, hidden = {}, False
        if sd:  # keep the run for decode-on-demand; the finished picture is the full VAE decode
            extra["run"] = sd_view.RUNS.remember(model_name, model, traj)
            final_rgb, hidden = model.decode_checked(traj.final) if checked else (model.decode(traj.final), False)
        summary = logic.run_summary(traj, model_name, model, info, prog.elapsed_s)
        if prog.new_frames and not checked:
            chunks += logic.player_column(prog.new_frames, model)["strips"]
        shown = logic.thin_frames(records)
        if hidden:  # every step's preview hidden too, and the finished picture
            from ..models.stable_diffusion import hidden_picture

            final_rgb = hidden_picture(*final_rgb.shape[:2])
            column = logic.hidden_column(shown, model, hidden_picture)
            summary["hidden_by_safety_checker"] = True
        else:
            column = logic.player_column(shown, model, final=final_uri, chunks=None if checked else chunks)
            view = logic.candidate_view(model, shown, settings.prompt)
            logic.add_candidates(column, view)
            if view is not None:
                summary["candidates"] = logic.candidates_summary(view, shown)
        payload = logic.player_payload([column], start="end", total=len(shown), key=key_id(key), **extra)
        note = "" if len(shown) == len(records) else f" (player shows {len(shown)} evenly spaced steps)"
        nearest = summary.get("nearest_training_image")
        status = (f"Done: {len(traj.frames)} steps in {prog.elapsed_s:.2f} s{note}."
                  + ("" if settings.prompt else " Empty prompt: no prompt at all (unconditional).")
                  + (f" The result is the training emoji **{nearest['name']}**: this model memorizes."
                     if nearest and nearest["rms"] < 0.05 else "")
                  + (explain.NO_CANDIDATES if not hidden and "candidates" not in summary else "")
                  + (f" Its nearest training emoji: **{nearest['name']}** (RMS distance {nearest['rms']:.2f}; "
                     "0 = identical)." if nearest and "candidates" not in summary and nearest["rms"] >= 0.05 else "")
                  + (" Steps show the cheap linear latent preview; the finished picture is the full VAE "
                     "decode." if sd and not hidden else "")
                  + (" **The safety checker flagged the finished picture: it and its steps are hidden.**"
                     if hidden else ""))
        # GIF and MP4 are made only when asked (Make GIF / MP4): on a CPU they cost more than the run.
        out = (to_value(payload), final_rgb, summary, cond_md, status, None)
        if lean and sent_frames and column.get("strips") is chunks:  # streamed, not thinned, not hidden
            rest = dict(column, strips=chunks[sent_strips:])
            yield Finished((*out, to_value(dict(payload, columns=[rest], sent=sent_frames))))
        else:
            yield Finished(out)
        return
    raise gr.Error(time_limit_message(), title="Stopped")


@friendly
def make_downloads(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """GIF and MP4 of a run (x_t next to predicted x0), made on request. Runs are deterministic, so
    the run is sampled again unless its files are still cached. Output: [GIF path, MP4 path].

    The files are written once, into gradio's own cache folder (where gradio would otherwise copy them),
    so they are stored once and cleaned with the other uploads (age and size limits, serving.py).
    Stop or a closed tab ends the work at its next step."""
    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    logic.check_cost([settings])
    model = logic.load_model(model_name)
    key = ("downloads", *run_key(model_name, settings))
    cached = RESULTS.get(key)
    if cached is not None:
        yield cached[0]
        return

    def work(should_stop):
        traj = sample(model, settings, should_stop=should_stop)
        if traj.final is None:
            raise Stopped("Stopped before the run finished.")
        return logic.write_downloads(traj, model, name=logic.download_name(model_name, settings))

    for item in run_stoppable(work):
        if isinstance(item, Waiting):
            yield gr.skip()
        else:
            files = list(item)
            RESULTS.put(key, (files,), files)
            yield files


# ---- Stable Diffusion extras: shown only for a model with a VAE and a tokenizer (duck-typed) ----------
PROMPT_INFO = ("What to draw, in English (the text encoder, MiniLM, reads English: “Katze” finds a taxi). "
               "Empty = no prompt (unconditional): any emoji.")
SD_GUIDANCE_SCALES = sd_view.GUIDANCE_SCALES
SD_STYLE = ("<style>#dv-sd .dv-pixelated img { width: 100% !important; height: 100% !important; "
            "object-fit: contain; image-rendering: pixelated; }</style>")
# Stop: the player leaves "sampling…" and keeps what arrived; the status says where it stopped.
STOP_JS = """(status) => {
  const p = window.dvPlayers && window.dvPlayers['__PLAYER__'];
  if (p && p.abortRun) p.abortRun();  // the player's own route stops too (the server ends that run)
  if (!p || !p.state.live) return status;
  const r = p.finish();
  return r.done ? `**Stopped at step ${r.done} of ${r.total}.** The steps made so far stay playable: drag the slider.`
                : '**Stopped** before the first step.';
}"""
# Generate, in the browser: the player asks its own route for the frames at the click (ui/run_route.py);
# the values go on unchanged to gradio's /generate, which fills in the rest of the page. gradio's request
# waits until the first picture is on screen (at most 0.3 s): sent at the same moment, its work on the
# server and in the page held the first picture back by 60-90 ms on 2 cores (bench/bench_app.py).
# The last value it returns is the run's key when the route brings the frames (the event then does not
# send them again), or "" (the route failed: gradio's payload fills the player).
FETCH_RUN_JS = """async (...values) => {
  const p = window.dvPlayers && window.dvPlayers['dv-player'];
  const run = values.slice(0, 7);
  let key = '';
  if (p && p.fetchRun) key = await new Promise((go) => {
    p.fetchRun(run, go);
    setTimeout(() => go(p.state.startKey || ''), 300);  // a busy server: the route has said it will send them
  });
  return [...run, key || ''];
}"""
# Read the step the player shows (and its run) in the browser: the click sends them to the server.
READ_PLAYER_STEP_JS = """(run, step) => {
  const p = window.dvPlayers && window.dvPlayers['dv-player'];
  return (p && p.frames()) ? [p.run(), p.frameIndex()] : [run, step];
}"""


def _control_updates(model, was_sd: bool) -> tuple:
    """(prompt, steps, guidance, scheduler, schedule, schedule note, SD panel, SD explanation, sd state)."""
    if model is not None and sd_view.is_sd(model):
        d = sd_view.defaults(model)
        return (gr.update(info=sd_view.prompt_info(model)), gr.update(value=d["steps"]), gr.update(value=d["guidance"]),
                gr.update(value=d["scheduler"]), gr.update(interactive=False),
                gr.update(value=sd_view.schedule_note(model), visible=True), gr.update(visible=True),
                sd_view.explanation_markdown(model), True)
    d = logic.DEFAULTS
    back = was_sd  # leaving a Stable Diffusion model: the emoji defaults again
    return (gr.update(info=PROMPT_INFO), gr.update(value=d["steps"]) if back else gr.skip(),
            gr.update(value=d["guidance"]) if back else gr.skip(),
            gr.update(value=d["scheduler"]) if back else gr.skip(), gr.update(interactive=True),
            gr.update(visible=False), gr.update(visible=False), gr.skip(), False)


def select_model(name, was_sd):
    """Load the chosen model (once per process). Stable Diffusion brings its own defaults and views;
    a checkpoint that cannot load is explained in the page and the default emoji model comes back."""
    try:
        model = logic.load_model(name)
    except Exception as exc:  # noqa: BLE001 - the page must say what happened and keep working
        if isinstance(exc, DiffusionVizError):
            reason = str(exc)
        else:
            log.exception("Loading model %r failed", name)
            reason = GENERIC
        gr.Warning(f"Could not load {name}.", title="Model not loaded")
        msg = (f"⚠️ **Could not load {html.escape(str(name))}.** {html.escape(reason)}\n\n"
               f"Switched back to **{DEFAULT_MODEL}**: the built-in models keep working.")
        updates = list(_control_updates(None, was_sd))
        updates[4] = gr.update(value=MODELS[DEFAULT_MODEL].default_schedule, interactive=True)
        return (gr.update(value=DEFAULT_MODEL), *updates, msg)
    status = (f"**{html.escape(str(name))}** is ready: a Stable Diffusion checkpoint. Press **Generate**."
              if sd_view.is_sd(model) else gr.skip())
    return (gr.skip(), *_control_updates(model, was_sd), status)


@friendly
def sd_decode_step(run, step):
    """Full VAE decode of one step of a Stable Diffusion run (``run``: the player payload's "run" id,
    ``step``: the frame's index). Outputs: decoded x0, decoded x_t, latent channels of x0 and of x_t,
    caption (Markdown)."""
    stored = sd_view.RUNS.get(run, logic.load_model)
    r = sd_view.decode_step(stored.model, stored.trajectory, step)
    return r["x0"], r["x_t"], r["x0_channels"], r["x_t_channels"], sd_view.decode_caption(r)


def _sd_model(model_name):
    model = logic.load_model(model_name)
    if not sd_view.is_sd(model):
        raise InvalidInputError(f"{model_name} is not a Stable Diffusion model: pick one in the Model menu.")
    return model


@friendly
def sd_text(prompt, model_name):
    """The prompt as a Stable Diffusion model reads it. Outputs: tokens (Markdown, with the 77-token
    truncation flagged), the text embedding as a small heatmap image, its caption (Markdown)."""
    model = _sd_model(model_name)
    md = sd_view.tokens_markdown(sd_view.conditioning_info(model, prompt or ""))
    image, caption = sd_view.embedding_image(model, prompt or "")
    return md, image, caption


@friendly
def sd_guidance(prompt, steps, seed, scheduler, model_name):
    """Generator: Stop or a closed tab ends the four runs at their next step."""
    """The same prompt and seed at guidance 1, 3, 7.5 and 12: the VAE-decoded finished pictures."""
    model = _sd_model(model_name)
    settings = logic.make_settings(prompt, steps, seed, 1.0, scheduler, "scaled_linear")
    scales = SD_GUIDANCE_SCALES
    logic.check_cost([SampleSettings(**{**settings.__dict__, "guidance": g}) for g in scales],
                     "This guidance comparison")
    for item in run_stoppable(lambda stop: sd_view.guidance_images(model, settings, scales, should_stop=stop)):
        if isinstance(item, Waiting):
            yield gr.skip()
        else:
            yield [(image, f"guidance {scale:g}") for scale, image in item]


def build():
    """Lay out the tab; returns the components the app (and the other tabs) need."""
    d = logic.DEFAULTS
    # What to draw and the button, on top: in classroom mode the pictures come right below them.
    with gr.Row(equal_height=True, elem_id="dv-denoise-go"):
        prompt = gr.Textbox(d["prompt"], label="Prompt", lines=1, max_lines=3, scale=5,
                            info=PROMPT_INFO, elem_id="dv-prompt")
        run = gr.Button("Generate", variant="primary", elem_id="dv-generate", scale=1, min_width=140)
        stop = gr.Button("Stop", variant="stop", elem_id="dv-stop", scale=0, min_width=90)
    with gr.Row(equal_height=False, elem_id="dv-denoise-row"):
        with gr.Column(scale=1, min_width=300, elem_id="dv-denoise-controls"):
            with gr.Row(equal_height=True):
                # precision=None: a seed of 1.5 is refused with a message (precision=0 rounded it to 2)
                seed = gr.Number(d["seed"], label="Seed", precision=None, minimum=0, maximum=MAX_SEED,
                                 elem_id="dv-seed", scale=2, info="Same seed, same static.")
                dice = gr.Button("New seed", elem_id="dv-dice", scale=1, size="sm")
            with gr.Row():
                next_seed = gr.Button("Same prompt, next seed →", size="sm", elem_id="dv-next-seed")
            gr.Markdown("Same seed, other prompt:", elem_classes=["dv-help"])
            with gr.Row():
                quick = [gr.Button(p, size="sm", min_width=60, elem_id=f"dv-quick-{p}") for p in QUICK_PROMPTS]
            steps = gr.Slider(1, LIMITS.steps, value=d["steps"], step=1, label="Steps", elem_id="dv-steps",
                              info="How many small repair steps. 10–50 is plenty.")
            guidance = gr.Slider(0, 15, value=d["guidance"], step=0.5, label="Guidance", elem_id="dv-guidance",
                                 info="1 = follow the prompt normally; more = push harder.")
            with gr.Group(elem_classes=["dv-advanced"]):
                scheduler = gr.Dropdown(list(SCHEDULERS), value=d["scheduler"], label="Sampler",
                                        info=SCHEDULER_DESCRIPTIONS[d["scheduler"]], elem_id="dv-sampler")
                schedule = gr.Dropdown(list(SCHEDULES), value=d["schedule"], label="Noise schedule",
                                       info=SCHEDULE_DESCRIPTIONS[d["schedule"]], elem_id="dv-schedule")
                sd_note = gr.Markdown(visible=False, elem_id="dv-schedule-note", elem_classes=["dv-help"])
                model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", elem_id="dv-model",
                                    info=MODELS[DEFAULT_MODEL].description)
        with gr.Column(scale=3, elem_id="dv-denoise-main"):
            status = gr.Markdown("Press **Generate** to start.", elem_id="dv-status")
            player = make_player("dv-player", "Press <b>Generate</b> to watch static turn into a picture, "
                                              "one step at a time.")
            sd_active = gr.State(False)
            with gr.Column(visible=False, elem_id="dv-sd") as sd_panel:
                sd_explain = gr.Markdown(elem_id="dv-sd-explain", elem_classes=["dv-help"])
                # Small latents and decodes fill their boxes, crisp (browsers do not upscale <img> alone).
                gr.HTML(SD_STYLE, elem_id="dv-sd-style", padding=False)
                with gr.Row():
                    sd_decode = gr.Button("Decode this step with the VAE", elem_id="dv-sd-decode", size="sm")
                    sd_text_btn = gr.Button("Tokens and text embedding", elem_id="dv-sd-text", size="sm")
                    sd_guid_btn = gr.Button("Same seed, guidance " + " · ".join(f"{g:g}" for g in SD_GUIDANCE_SCALES)
                                            + " (4 runs)", elem_id="dv-sd-guidance", size="sm")
                # Filled in by the player's JS when the decode button is clicked (API clients pass them).
                sd_run = gr.Textbox(visible="hidden", label="Run id", elem_id="dv-sd-run")
                sd_step = gr.Number(0, visible="hidden", precision=0, label="Step index", elem_id="dv-sd-step")
                with gr.Row(equal_height=False):
                    sd_x0 = gr.Image(label="Predicted x0 through the VAE", type="numpy", interactive=False,
                                     height=200, elem_id="dv-sd-x0", elem_classes=["dv-pixelated"])
                    sd_xt = gr.Image(label="x_t through the VAE", type="numpy", interactive=False, height=200,
                                     elem_id="dv-sd-xt", elem_classes=["dv-pixelated"])
                    sd_x0_ch = gr.Image(label="The 4 latent channels of predicted x0", type="numpy",
                                        interactive=False, height=120, elem_id="dv-sd-x0-channels",
                                        elem_classes=["dv-pixelated"])
                    sd_xt_ch = gr.Image(label="The 4 latent channels of x_t", type="numpy", interactive=False,
                                        height=120, elem_id="dv-sd-xt-channels", elem_classes=["dv-pixelated"])
                sd_caption = gr.Markdown(elem_id="dv-sd-caption", elem_classes=["dv-help"])
                with gr.Row(equal_height=False):
                    sd_tokens = gr.Markdown(elem_id="dv-sd-tokens", elem_classes=["dv-help"])
                    sd_embed = gr.Image(label="Text embedding (token slots × features)", type="numpy",
                                        interactive=False, height=160, elem_id="dv-sd-embedding",
                                        elem_classes=["dv-pixelated"])
                sd_embed_caption = gr.Markdown(elem_id="dv-sd-embedding-caption", elem_classes=["dv-help"])
                sd_gallery = gr.Gallery(label="Same seed, more guidance (VAE-decoded)", columns=4, height=220,
                                        elem_id="dv-sd-gallery", object_fit="contain")
            with gr.Accordion("What am I looking at?", open=True):
                gr.Markdown(explain.DENOISE_PANELS, elem_classes=["dv-help"])
            with gr.Row(equal_height=False):
                cond = gr.Markdown(elem_id="dv-conditioning", elem_classes=["dv-help"])
                final = gr.Image(label="Finished picture", type="numpy", interactive=False, height=160,
                                 elem_classes=["dv-pixelated", "dv-final"], elem_id="dv-final",
                                 buttons=["download"])
                with gr.Column():
                    make_files = gr.Button("Make GIF / MP4 of this run", size="sm", elem_id="dv-make-files")
                    with gr.Row():
                        lesson_file = gr.Button("Download lesson (HTML, works offline)", size="sm",
                                                elem_id="dv-lesson-file")
                        sheet = gr.Button("Worksheet to print", size="sm", elem_id="dv-worksheet")
                    downloads = gr.File(label="Files of this run (GIF / MP4, lesson, worksheet)",
                                        file_count="multiple", interactive=False, elem_id="dv-downloads")
            with gr.Accordion("Numbers for every step (JSON, also what the API returns)", open=False):
                summary = gr.JSON(label="Run summary", elem_id="dv-summary")
            with gr.Accordion("Prompt, guidance, seed, sampler, schedule: what they do", open=False):
                gr.Markdown("\n\n".join([explain.PROMPT_HELP, explain.GUIDANCE_HELP, explain.SEED_HELP,
                                         explain.SAMPLER_HELP, explain.SCHEDULE_HELP]),
                            elem_classes=["dv-help"])

    inputs = [prompt, steps, seed, guidance, scheduler, schedule, model]
    outputs = [player, final, summary, cond, status, downloads]
    # The public /generate (API clients: everything, the player's payload included) ...
    api_run = gr.Button(visible=False, elem_id="dv-generate-api")
    api_run.click(generate, inputs, outputs, api_name="generate", concurrency_limit=2)
    # ... and the page's buttons, whose frames come by the player's own route (ui/run_route.py).
    route_key = gr.Textbox(visible="hidden", label="Run key", elem_id="dv-route-key")
    page_inputs = [*inputs, route_key]
    go = dict(js=FETCH_RUN_JS, api_visibility="private", concurrency_limit=2)
    events = [run.click(generate_page, page_inputs, outputs, **go),
              prompt.submit(generate_page, page_inputs, outputs, **go)]
    # One click away: other seed (same prompt), other prompt (same seed).
    ev = dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
    events.append(ev.then(generate_page, page_inputs, outputs, **go))
    ev = next_seed.click(lambda s: int(s or 0) + 1, seed, seed, api_visibility="private", queue=False)
    events.append(ev.then(generate_page, page_inputs, outputs, **go))
    for b, p in zip(quick, QUICK_PROMPTS):
        ev = b.click(lambda p=p: p, None, prompt, api_visibility="private", queue=False)
        events.append(ev.then(generate_page, page_inputs, outputs, **go))
    # Stop: cancel the run on the server (the sampler stops at its next step) and say so in the page; the
    # frames that arrived stay in the player, playable.
    stop.click(None, status, status, js=STOP_JS.replace("__PLAYER__", "dv-player"), cancels=events,
               api_visibility="private", queue=False)
    make_files.click(make_downloads, inputs, downloads, api_name="downloads", concurrency_limit=2)
    from .class_files import denoise_lesson, worksheet

    lesson_file.click(denoise_lesson, inputs, downloads, api_name="lesson_file", concurrency_limit=2)
    sheet.click(worksheet, inputs, downloads, api_name="worksheet", concurrency_limit=2)

    # Descriptions follow the choice; a new model brings its own schedule.
    scheduler.change(lambda n: gr.update(info=SCHEDULER_DESCRIPTIONS.get(n, "")), scheduler, scheduler,
                     api_visibility="private", queue=False)
    schedule.change(lambda n: gr.update(info=SCHEDULE_DESCRIPTIONS.get(n, "")), schedule, schedule,
                    api_visibility="private", queue=False)
    model.change(lambda n: gr.update(info=MODELS[n].description if n in MODELS else ""), model, model,
                 api_visibility="private", queue=False)
    model.input(lambda n: gr.update(value=MODELS[n].default_schedule) if n in MODELS else gr.skip(),
                model, schedule, api_visibility="private", queue=False)
    # Stable Diffusion: its own defaults and schedule, its views; a checkpoint that fails is explained.
    model.input(select_model, [model, sd_active],
                [model, prompt, steps, guidance, scheduler, schedule, sd_note, sd_panel, sd_explain, sd_active,
                 status], api_visibility="private", concurrency_limit=1, show_progress="minimal")
    sd_decode.click(sd_decode_step, [sd_run, sd_step], [sd_x0, sd_xt, sd_x0_ch, sd_xt_ch, sd_caption],
                    js=READ_PLAYER_STEP_JS, api_name="sd_decode_step", concurrency_limit=2)
    sd_text_btn.click(sd_text, [prompt, model], [sd_tokens, sd_embed, sd_embed_caption], api_name="sd_text",
                      concurrency_limit=2)
    sd_guid_btn.click(sd_guidance, [prompt, steps, seed, scheduler, model], sd_gallery, api_name="sd_guidance",
                      concurrency_limit=1)
    return {"prompt": prompt, "seed": seed, "model": model, "run": run, "steps": steps, "guidance": guidance,
            "sampler": scheduler, "schedule": schedule, "downloads": downloads, "status": status}
