"""Denoise tab: controls on the left, the streaming step player on the right.

Public endpoint: ``generate`` (see docs/API.md). Frames stream into the player while sampling; the
finished run arrives once, so scrubbing afterwards never touches the server.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time

import gradio as gr

import html

from ..errors import DiffusionVizError, InvalidInputError
from ..models.registry import DEFAULT_MODEL, MODELS
from ..sampling import SCHEDULER_DESCRIPTIONS, SCHEDULERS, sample
from ..schedules import SCHEDULE_DESCRIPTIONS, SCHEDULES
from ..validation import MAX_SEED
from . import explain, logic, sd_view
from .cache import RESULTS, run_key
from .common import GENERIC, friendly, log
from .player import make_player, to_value

QUICK_PROMPTS = ["dog", "rocket", "pizza", "tree"]
MAX_RUN_SECONDS = 300  # a runaway run (1000 Heun steps on a big model) stops itself
DOWNLOADS_KEEP_S = 600  # GIF/MP4 written outside the cache (it is off or full) are removed after this
# Live counters for tests and the load benchmark: runs in progress and frames sampled so far. A run
# that is cancelled (Stop, closed tab) is closed by gradio at its next yield and leaves "active".
RUN_STATS = {"active": 0, "frames": 0, "runs": 0, "cache_hits": 0}
_STATS_LOCK = threading.Lock()


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        RUN_STATS[key] += n


def _counted(progress):
    """Pass a run's progress through, counting frames; closing it (cancel) stops the sampler."""
    _count("active")
    _count("runs")
    try:
        for prog in progress:
            _count("frames", len(prog.new_frames))
            yield prog
    finally:
        progress.close()
        _count("active", -1)


def _model_markdown(name: str) -> str:
    info = MODELS.get(name)
    return f"*{info.description}*" if info else ""


@friendly
def generate(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """Sample and stream frames into the player; finally the full run, the image and a JSON summary.

    Outputs: player payload (JSON string), final image, summary (dict), conditioning (Markdown),
    status (Markdown), downloads (None: the GIF and MP4 come from /downloads, on request).
    """
    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    model = logic.load_model(model_name)
    key = run_key(model_name, settings)
    cached = RESULTS.get(key)
    if cached is not None:  # the same run was made before (by anyone): replay it at once
        _count("cache_hits")
        out = list(cached)
        out[4] = f"{out[4]} (Served from the cache: the same settings were run before.)"
        yield tuple(out)
        return
    sd = sd_view.is_sd(model)  # a latent model with a VAE and a tokenizer (duck-typed)
    info = (sd_view.conditioning_info if sd else logic.conditioning_info)(model, settings.prompt)
    cond_md = (sd_view.tokens_markdown if sd else logic.conditioning_markdown)(info)
    started = time.monotonic()
    records, first = [], True
    runs = _counted(logic.stream_run(model, settings,
                                     should_stop=lambda: time.monotonic() - started > MAX_RUN_SECONDS))
    for prog in runs:
        records += prog.new_frames
        if prog.trajectory is None:
            payload = logic.player_payload([{"title": "", "frames": prog.new_frames}],
                                           mode="reset" if first else "append", total=prog.total)
            first = False
            yield (to_value(payload), gr.skip(), gr.skip(), cond_md,
                   f"Sampling… step {prog.done} of {prog.total}", gr.skip())
            continue
        traj = prog.trajectory
        to_rgb, _ = logic.display_functions(model)
        final_rgb = to_rgb(traj.final)
        final_uri = logic.png_data_uri(final_rgb)
        extra = {}
        if sd:  # keep the run for decode-on-demand; the finished picture is the full VAE decode
            extra["run"] = sd_view.RUNS.remember(model_name, model, traj)
            final_rgb = sd_view.final_image(model, traj.final)
        summary = logic.run_summary(traj, model_name, model, info, prog.elapsed_s)
        shown = logic.thin_frames(records)
        payload = logic.player_payload([{"title": "", "frames": shown, "final": final_uri}],
                                       start="end", total=len(shown), **extra)
        note = "" if len(shown) == len(records) else f" (player shows {len(shown)} evenly spaced steps)"
        nearest = summary.get("nearest_training_image")
        status = (f"Done: {len(traj.frames)} steps in {prog.elapsed_s:.2f} s{note}."
                  + (f" The result is the training emoji **{nearest['label']}**: this model memorizes."
                     if nearest and nearest["rms"] < 0.05 else "")
                  + (" Steps show the cheap linear latent preview; the finished picture is the full VAE "
                     "decode." if sd else ""))
        # GIF and MP4 are made only when asked (Make GIF / MP4): on a CPU they cost more than the run.
        out = (to_value(payload), final_rgb, summary, cond_md, status, None)
        RESULTS.put(key, out)
        yield out
        return
    raise gr.Error("The run was stopped.", title="Stopped")


@friendly
def make_downloads(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """GIF and MP4 of a run (x_t next to predicted x0), made on request. Runs are deterministic, so
    the run is sampled again unless its files are still cached. Output: [GIF path, MP4 path]."""
    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    model = logic.load_model(model_name)
    key = ("downloads", *run_key(model_name, settings))
    cached = RESULTS.get(key)
    if cached is not None:
        return cached[0]
    traj = sample(model, settings)
    directory = RESULTS.new_directory()
    files = list(logic.write_downloads(traj, model, directory))
    if not RESULTS.put(key, (files,), files, directory):  # too big or caching is off: it removed them
        directory = tempfile.mkdtemp(prefix="dv-downloads-")
        files = list(logic.write_downloads(traj, model, directory))
        threading.Timer(DOWNLOADS_KEEP_S, shutil.rmtree, (directory, True)).start()
    return files


# ---- Stable Diffusion extras: shown only for a model with a VAE and a tokenizer (duck-typed) ----------
PROMPT_INFO = "What to draw. Empty = any emoji."
SD_PROMPT_INFO = "What to draw. CLIP reads at most 75 tokens; the rest is dropped (flagged below)."
SD_GUIDANCE_SCALES = sd_view.GUIDANCE_SCALES
SD_STYLE = ("<style>#dv-sd .dv-pixelated img { width: 100% !important; height: 100% !important; "
            "object-fit: contain; image-rendering: pixelated; }</style>")
# Read the step the player shows (and its run) in the browser: the click sends them to the server.
READ_PLAYER_STEP_JS = """(run, step) => {
  const p = window.dvPlayers && window.dvPlayers['dv-player'];
  return (p && p.frames()) ? [p.run(), p.frameIndex()] : [run, step];
}"""


def _control_updates(model, was_sd: bool) -> tuple:
    """(prompt, steps, guidance, scheduler, schedule, schedule note, SD panel, SD explanation, sd state)."""
    if model is not None and sd_view.is_sd(model):
        d = sd_view.defaults(model)
        return (gr.update(info=SD_PROMPT_INFO), gr.update(value=d["steps"]), gr.update(value=d["guidance"]),
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
    """The same prompt and seed at guidance 1, 3, 7.5 and 12: the VAE-decoded finished pictures."""
    model = _sd_model(model_name)
    settings = logic.make_settings(prompt, steps, seed, 1.0, scheduler, "scaled_linear")
    return [(image, f"guidance {scale:g}") for scale, image in sd_view.guidance_images(model, settings)]


def build():
    """Lay out the tab; returns the components the app (and the other tabs) need."""
    d = logic.DEFAULTS
    with gr.Row(equal_height=False, elem_id="dv-denoise-row"):
        with gr.Column(scale=1, min_width=300, elem_id="dv-denoise-controls"):
            prompt = gr.Textbox(d["prompt"], label="Prompt", lines=1, max_lines=3,
                                info=PROMPT_INFO, elem_id="dv-prompt")
            with gr.Row():
                run = gr.Button("Generate ▶", variant="primary", elem_id="dv-generate", scale=3, min_width=120)
                stop = gr.Button("Stop ■", variant="stop", elem_id="dv-stop", scale=1, min_width=70)
            with gr.Row(equal_height=True):
                seed = gr.Number(d["seed"], label="Seed", precision=0, minimum=0, maximum=MAX_SEED,
                                 elem_id="dv-seed", scale=2, info="Same seed, same static.")
                dice = gr.Button("🎲 New seed", elem_id="dv-dice", scale=1, size="sm")
            with gr.Row():
                next_seed = gr.Button("Same prompt, next seed →", size="sm", elem_id="dv-next-seed")
            gr.Markdown("Same seed, other prompt:", elem_classes=["dv-help"])
            with gr.Row():
                quick = [gr.Button(p, size="sm", min_width=60, elem_id=f"dv-quick-{p}") for p in QUICK_PROMPTS]
            steps = gr.Slider(1, 200, value=d["steps"], step=1, label="Steps", elem_id="dv-steps",
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
                    make_files = gr.Button("🎞 Make GIF / MP4 of this run", size="sm", elem_id="dv-make-files")
                    downloads = gr.File(label="Download the run (GIF / MP4)", file_count="multiple",
                                        interactive=False, elem_id="dv-downloads", height=120)
            with gr.Accordion("Numbers for every step (JSON, also what the API returns)", open=False):
                summary = gr.JSON(label="Run summary", elem_id="dv-summary")
            with gr.Accordion("Prompt, guidance, seed, sampler, schedule: what they do", open=False):
                gr.Markdown("\n\n".join([explain.PROMPT_HELP, explain.GUIDANCE_HELP, explain.SEED_HELP,
                                         explain.SAMPLER_HELP, explain.SCHEDULE_HELP]),
                            elem_classes=["dv-help"])

    inputs = [prompt, steps, seed, guidance, scheduler, schedule, model]
    outputs = [player, final, summary, cond, status, downloads]
    events = [run.click(generate, inputs, outputs, api_name="generate", concurrency_limit=2),
              prompt.submit(generate, inputs, outputs, api_visibility="private", concurrency_limit=2)]
    # One click away: other seed (same prompt), other prompt (same seed).
    ev = dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
    events.append(ev.then(generate, inputs, outputs, api_visibility="private", concurrency_limit=2))
    ev = next_seed.click(lambda s: int(s or 0) + 1, seed, seed, api_visibility="private", queue=False)
    events.append(ev.then(generate, inputs, outputs, api_visibility="private", concurrency_limit=2))
    for b, p in zip(quick, QUICK_PROMPTS):
        ev = b.click(lambda p=p: p, None, prompt, api_visibility="private", queue=False)
        events.append(ev.then(generate, inputs, outputs, api_visibility="private", concurrency_limit=2))
    stop.click(None, None, None, cancels=events, api_visibility="private")
    make_files.click(make_downloads, inputs, downloads, api_name="downloads", concurrency_limit=2)

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
    return {"prompt": prompt, "seed": seed, "model": model, "run": run}
