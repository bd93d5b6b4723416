"""Experiments tab: questions a class can ask of the process, each a live experiment under one slider.

- Round trip: noise a photo to several levels, let the model bring each back (API ``/round_trip``).
- When is it decided? Switch the prompt (or the noise) part-way (API ``/when_decided``).
- One prompt, many seeds (API ``/seed_grid``).
The candidates (which emoji the exact model's guess averages) are under the Denoise tab's player.
"""

from __future__ import annotations

import gradio as gr

from ..models.registry import DEFAULT_MODEL, MODELS
from ..sampling import SCHEDULERS
from ..schedules import SCHEDULES
from ..limits import LIMITS
from . import experiments as ex
from . import explain, logic
from .common import friendly
from .player import make_player, to_value
from .serving import Waiting, run_stoppable

RUNNING = "Running"
STOP_JS = f"""(text) => (text || '').startsWith('{RUNNING}') ? '**Stopped.** Press the button to run again.' : text"""


def _stream(work, outputs: int):
    """Run ``work(stop)`` stoppably: a progress line at once, then the result tuple."""
    said = False
    for item in run_stoppable(work):
        if isinstance(item, Waiting):
            line = gr.skip() if said else f"{RUNNING}… Press **Stop** to end it."
            said = True
            yield (gr.skip(),) * (outputs - 2) + (line, gr.skip())
        else:
            yield item


@friendly
def round_trip_ui(photo, emoji, prompt, seed, model, scheduler, schedule, steps, levels, sketch=None):
    """Outputs: player, the input as the model sees it, status line, summary JSON. ``sketch``: the page's
    drawing (the API leaves it out)."""
    drawing = ex.drawing_from_sketch(sketch)

    def work(stop):
        payload, summary, shown = ex.run_round_trip(photo, emoji, prompt, seed, model, scheduler, schedule, steps,
                                                   [int(v) for v in (levels or [])], should_stop=stop,
                                                   drawing=drawing)
        return to_value(payload), shown, ex.round_trip_markdown(summary), summary
    yield from _stream(work, 4)


@friendly
def when_decided_ui(prompt_a, prompt_b, seed, model, scheduler, schedule, steps, mode):
    def work(stop):
        payload, summary = ex.run_when_decided(prompt_a, prompt_b, seed, model, scheduler, schedule, steps,
                                               "reseed" if str(mode).startswith("new") else "switch",
                                               should_stop=stop)
        return to_value(payload), ex.when_decided_markdown(summary), summary
    yield from _stream(work, 3)


@friendly
def seed_grid_ui(prompt, first_seed, count, model, scheduler, schedule, steps):
    def work(stop):
        payload, summary = ex.run_seed_grid(prompt, first_seed, count, model, scheduler, schedule, steps,
                                            should_stop=stop)
        return to_value(payload), ex.seed_grid_markdown(summary), summary
    yield from _stream(work, 3)


def _run_controls(prefix: str, steps: int = 50):
    """Model, sampler, schedule, steps: the same four controls in every experiment."""
    d = logic.DEFAULTS
    with gr.Row():
        model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", elem_id=f"{prefix}-model", min_width=160)
        sampler = gr.Dropdown(list(SCHEDULERS), value=d["scheduler"], label="Sampler", elem_id=f"{prefix}-sampler",
                              min_width=120)
        schedule = gr.Dropdown(list(SCHEDULES), value=d["schedule"], label="Noise schedule",
                               elem_id=f"{prefix}-schedule", min_width=140)
        n = gr.Number(steps, label="Steps", precision=0, minimum=1, maximum=LIMITS.steps, elem_id=f"{prefix}-steps",
                      min_width=90)
    return model, sampler, schedule, n


def _results(prefix: str, empty: str):
    status = gr.Markdown(elem_id=f"{prefix}-status", elem_classes=["dv-exp-status"])
    player = make_player(f"{prefix}-player", empty)
    with gr.Accordion("Numbers (JSON, also what the API returns)", open=False, elem_classes=["dv-exp-json"]):
        details = gr.JSON(label="Numbers")
    return player, status, details


# Each experiment is one column: its explanation, the button row, the other controls, the status line and
# the player. Classroom mode hides the explanation and moves the status and the player up, right under
# the button row (theme.py), so the button and the pictures fit on a projector's screen.
def build():
    gr.Markdown(explain.EXPERIMENTS_INTRO, elem_classes=["dv-help", "dv-exp-help"])
    with gr.Tabs(elem_id="dv-exp-tabs") as tabs:
        with gr.Tab("Round trip", id="round-trip", elem_id="dv-exp-rt-tab") as rt_tab:
            with gr.Column(elem_classes=["dv-exp-main"]):
                gr.Markdown(explain.ROUND_TRIP, elem_classes=["dv-help", "dv-exp-help"])
                with gr.Row(elem_classes=["dv-exp-top"]):
                    prompt = gr.Textbox("", label="Prompt (empty = no prompt)", elem_id="dv-rt-prompt", scale=3)
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="dv-rt-seed", min_width=90)
                    run = gr.Button("Run the round trip", variant="primary", elem_id="dv-rt-run", scale=1)
                    stop = gr.Button("Stop", variant="stop", elem_id="dv-rt-stop", scale=0, min_width=90)
                with gr.Row(equal_height=False, elem_classes=["dv-exp-controls"]):
                    with gr.Column(scale=1, min_width=220):
                        # a plain file: our own loader (images.load_image) decodes it safely, explains a bad one
                        photo = gr.File(label="Your photo (not kept; the example if empty)", file_types=["image"],
                                        type="filepath", elem_id="dv-rt-photo", height=120)
                        examples = logic.example_photos()
                        if examples:
                            gr.Examples(examples, inputs=photo, label="…or pick an example")
                        emoji = gr.Dropdown([""] + ex.emoji_names(), value="",
                                            label="…or start from a training emoji (with no photo or drawing)",
                                            filterable=True, elem_id="dv-rt-emoji")
                    with gr.Column(scale=3):
                        model, sampler, schedule, steps = _run_controls("dv-rt")
                        levels = gr.CheckboxGroup(ex.LEVEL_CHOICES, value=[200, 400, 600, 800, 999],
                                                  label="Noise the photo to t = (one column each)",
                                                  elem_id="dv-rt-levels")
                    shown = gr.Image(label="What goes in (at the model's size)", interactive=False, height=140,
                                     elem_id="dv-rt-input", elem_classes=["dv-pixelated"], buttons=[], scale=0,
                                     min_width=170)
                with gr.Accordion("…or draw one (with no photo: pick the Brush on the left, then draw)", open=False,
                                  elem_classes=["dv-exp-controls"]):
                    sketch = gr.Sketchpad(type="numpy", image_mode="RGB", canvas_size=(256, 256), show_label=False,
                                          elem_id="dv-rt-sketch", height=320,
                                          brush=gr.Brush(default_size=14, default_color="#000000",
                                                         colors=["#000000", "#d62728", "#1f77b4", "#2ca02c",
                                                                 "#ffbf00", "#8c564b"]))
                player, status, details = _results("dv-rt", "Press <b>Run the round trip</b>: your photo is "
                                                            "noised to each level, then denoised from there.")
            ev = run.click(round_trip_ui, [photo, emoji, prompt, seed, model, sampler, schedule, steps, levels, sketch],
                           [player, shown, status, details], api_name="round_trip", concurrency_limit=2,
                           show_progress_on=[player])
            stop.click(None, status, status, js=STOP_JS, cancels=[ev], api_visibility="private", queue=False)
            rt = dict(emoji=emoji, prompt=prompt, seed=seed, model=model, sampler=sampler,
                      schedule=schedule, steps=steps, levels=levels, run=run)

        with gr.Tab("When is it decided?", id="when", elem_id="dv-exp-when-tab") as wd_tab:
            with gr.Column(elem_classes=["dv-exp-main"]):
                gr.Markdown(explain.WHEN_DECIDED, elem_classes=["dv-help", "dv-exp-help"])
                with gr.Row(elem_classes=["dv-exp-top"]):
                    a = gr.Textbox("cat", label="Prompt A (first)", elem_id="dv-wd-a")
                    b = gr.Textbox("rocket", label="Prompt B (after the switch)", elem_id="dv-wd-b")
                    wseed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="dv-wd-seed", min_width=90)
                    wrun = gr.Button("Run", variant="primary", elem_id="dv-wd-run", scale=0, min_width=110)
                    wstop = gr.Button("Stop", variant="stop", elem_id="dv-wd-stop", scale=0, min_width=90)
                with gr.Column(elem_classes=["dv-exp-controls"]):
                    mode = gr.Radio(["switch the prompt", "new noise (DDPM, Euler a)"], value="switch the prompt",
                                    label="At step k", elem_id="dv-wd-mode")
                    wmodel, wsampler, wschedule, wsteps = _run_controls("dv-wd")
                wplayer, wstatus, wdetails = _results("dv-wd", "Press <b>Run</b>: one column per switch point "
                                                               "(0 %, 10 %, 25 %, 50 %, 75 %, 100 % of the run).")
            wev = wrun.click(when_decided_ui, [a, b, wseed, wmodel, wsampler, wschedule, wsteps, mode],
                             [wplayer, wstatus, wdetails], api_name="when_decided", concurrency_limit=2,
                             show_progress_on=[wplayer])
            wstop.click(None, wstatus, wstatus, js=STOP_JS, cancels=[wev], api_visibility="private", queue=False)
            wd = dict(a=a, b=b, seed=wseed, mode=mode, model=wmodel, sampler=wsampler, schedule=wschedule,
                      steps=wsteps, run=wrun)

        with gr.Tab("One prompt, many seeds", id="seeds", elem_id="dv-exp-seeds-tab") as sg_tab:
            with gr.Column(elem_classes=["dv-exp-main"]):
                gr.Markdown(explain.SEED_GRID, elem_classes=["dv-help", "dv-exp-help"])
                with gr.Row(elem_classes=["dv-exp-top"]):
                    gprompt = gr.Textbox("animal", label="Prompt", elem_id="dv-sg-prompt", scale=3)
                    gseed = gr.Number(0, label="First seed", precision=0, minimum=0, elem_id="dv-sg-seed",
                                      min_width=90)
                    count = gr.Slider(1, 8, value=8, step=1, label="Seeds", elem_id="dv-sg-count", min_width=160)
                    grun = gr.Button("Run", variant="primary", elem_id="dv-sg-run", scale=0, min_width=110)
                    gstop = gr.Button("Stop", variant="stop", elem_id="dv-sg-stop", scale=0, min_width=90)
                with gr.Column(elem_classes=["dv-exp-controls"]):
                    gmodel, gsampler, gschedule, gsteps = _run_controls("dv-sg")
                gplayer, gstatus, gdetails = _results("dv-sg", "Press <b>Run</b>: the same prompt from several "
                                                               "seeds, scrubbed together.")
            gev = grun.click(seed_grid_ui, [gprompt, gseed, count, gmodel, gsampler, gschedule, gsteps],
                             [gplayer, gstatus, gdetails], api_name="seed_grid", concurrency_limit=2,
                             show_progress_on=[gplayer])
            gstop.click(None, gstatus, gstatus, js=STOP_JS, cancels=[gev], api_visibility="private", queue=False)
            sg = dict(prompt=gprompt, seed=gseed, count=count, model=gmodel, sampler=gsampler, schedule=gschedule,
                      steps=gsteps, run=grun)
    return {"round-trip": rt, "when": wd, "seeds": sg, "tabs": tabs,
            "tab_events": {"round-trip": rt_tab, "when": wd_tab, "seeds": sg_tab}}
