"""Denoise tab: controls on the left, the streaming step player on the right.

Public endpoint: ``generate`` (see docs/API.md). Frames stream into the player while sampling; the
finished run arrives once, so scrubbing afterwards never touches the server.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time

import gradio as gr

from ..models.registry import DEFAULT_MODEL, MODELS
from ..sampling import SCHEDULER_DESCRIPTIONS, SCHEDULERS
from ..schedules import SCHEDULE_DESCRIPTIONS, SCHEDULES
from ..validation import MAX_SEED
from . import explain, logic
from .common import friendly
from .player import make_player, to_value

QUICK_PROMPTS = ["dog", "rocket", "pizza", "tree"]
MAX_RUN_SECONDS = 300  # a runaway run (1000 Heun steps on a big model) stops itself


def _model_markdown(name: str) -> str:
    info = MODELS.get(name)
    return f"*{info.description}*" if info else ""


@friendly
def generate(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """Sample and stream frames into the player; finally the full run, the image and a JSON summary.

    Outputs: player payload (JSON string), final image, summary (dict), conditioning (Markdown),
    status (Markdown), downloads (GIF and MP4 paths).
    """
    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    model = logic.load_model(model_name)
    info = logic.conditioning_info(model, settings.prompt)
    cond_md = logic.conditioning_markdown(info)
    started = time.monotonic()
    records, first = [], True
    for prog in logic.stream_run(model, settings, should_stop=lambda: time.monotonic() - started > MAX_RUN_SECONDS):
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
        summary = logic.run_summary(traj, model_name, model, info, prog.elapsed_s)
        shown = logic.thin_frames(records)
        payload = logic.player_payload([{"title": "", "frames": shown, "final": logic.png_data_uri(final_rgb)}],
                                       start="end", total=len(shown))
        note = "" if len(shown) == len(records) else f" (player shows {len(shown)} evenly spaced steps)"
        nearest = summary.get("nearest_training_image")
        status = (f"Done: {len(traj.frames)} steps in {prog.elapsed_s:.2f} s{note}."
                  + (f" The result is the training emoji **{nearest['label']}**: this model memorizes."
                     if nearest and nearest["rms"] < 0.05 else ""))
        value = to_value(payload)
        yield value, final_rgb, summary, cond_md, status + " Making the GIF and MP4…", gr.skip()
        # The last yield is what API clients receive, so it repeats every output. The player value is
        # the identical string, so the browser does not reload it.
        tmp = tempfile.mkdtemp(prefix="dv-run-")
        try:
            files = list(logic.write_downloads(traj, model, tmp))
            yield value, final_rgb, summary, cond_md, status, files
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    raise gr.Error("The run was stopped.", title="Stopped")


def build():
    """Lay out the tab; returns the components the app (and the other tabs) need."""
    d = logic.DEFAULTS
    with gr.Row(equal_height=False, elem_id="dv-denoise-row"):
        with gr.Column(scale=1, min_width=300, elem_id="dv-denoise-controls"):
            prompt = gr.Textbox(d["prompt"], label="Prompt", lines=1, max_lines=3,
                                info="What to draw. Empty = any emoji.", elem_id="dv-prompt")
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
                model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", elem_id="dv-model",
                                    info=MODELS[DEFAULT_MODEL].description)
        with gr.Column(scale=3, elem_id="dv-denoise-main"):
            status = gr.Markdown("Press **Generate** to start.", elem_id="dv-status")
            player = make_player("dv-player", "Press <b>Generate</b> to watch static turn into a picture, "
                                              "one step at a time.")
            with gr.Accordion("What am I looking at?", open=True):
                gr.Markdown(explain.DENOISE_PANELS, elem_classes=["dv-help"])
            with gr.Row(equal_height=False):
                cond = gr.Markdown(elem_id="dv-conditioning", elem_classes=["dv-help"])
                final = gr.Image(label="Finished picture", type="numpy", interactive=False, height=160,
                                 elem_classes=["dv-pixelated", "dv-final"], elem_id="dv-final",
                                 buttons=["download"])
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

    # Descriptions follow the choice; a new model brings its own schedule.
    scheduler.change(lambda n: gr.update(info=SCHEDULER_DESCRIPTIONS.get(n, "")), scheduler, scheduler,
                     api_visibility="private", queue=False)
    schedule.change(lambda n: gr.update(info=SCHEDULE_DESCRIPTIONS.get(n, "")), schedule, schedule,
                    api_visibility="private", queue=False)
    model.change(lambda n: gr.update(info=MODELS[n].description if n in MODELS else ""), model, model,
                 api_visibility="private", queue=False)
    model.input(lambda n: gr.update(value=MODELS[n].default_schedule) if n in MODELS else gr.skip(),
                model, schedule, api_visibility="private", queue=False)
    return {"prompt": prompt, "seed": seed, "model": model, "run": run}
