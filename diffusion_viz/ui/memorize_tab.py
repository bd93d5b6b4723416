"""Memorize vs generalize tab: the exact denoiser and the trained UNet draw the same prompt from the same static.

Public endpoint: ``memorize(prompt, seed, steps, guidance)`` (see docs/API.md). The work happens in
``diffusion_viz.memorize`` (shared with the CLI); here it becomes two cards of native-size PNG data URIs
that the browser upscales crisp (``image-rendering: pixelated``), like the player.
"""

from __future__ import annotations

import html
import random

import gradio as gr

from .. import memorize as mvg
from ..limits import LIMITS
from . import explain, logic
from .cache import RESULTS
from .common import friendly
from .serving import Waiting, run_stoppable, stream_api

EMPTY = ('<div class="dv-empty">Press <b>Run</b>: the exact denoiser and the neural network draw the same '
         'prompt from the same static.</div>')


def memorize(prompt: str, seed: int = 0, steps: int = 50, guidance: float = 3.0, should_stop=None) -> dict:
    """Same prompt and seed through the exact denoiser and the trained UNet (guidance for the UNet only).

    Returns {"prompt", "seed", "steps", "models": [exact, unet]}, each model {"model", "title", "subtitle",
    "guidance", "image_png", "nearest", "nearest_index", "nearest_png", "nearest_rms", "copy", "verdict"}
    (PNGs as 32x32 data URIs; "copy": RMS distance to the nearest training emoji below 0.1).
    Deterministic, so results are shared through the result cache: a class pressing Run together with the
    same prompt costs one run.
    """
    prompt, seed, steps, guidance = mvg.check_inputs(prompt, seed, steps, guidance)
    key = ("memorize", prompt, seed, steps, guidance)
    cached = RESULTS.get(key)
    if cached is not None:
        return cached[0]
    models = [{"model": r["model"], "title": r["title"], "subtitle": r["subtitle"], "guidance": r["guidance"],
               "image_png": logic.png_data_uri(r["rgb"]), "nearest": r["nearest"],
               "nearest_index": int(r["nearest_index"]), "nearest_png": logic.png_data_uri(r["nearest_rgb"]),
               "nearest_rms": round(r["nearest_rms"], 4), "copy": r["copy"], "verdict": r["verdict"]}
              for r in mvg.run(prompt, seed, steps, guidance, should_stop=should_stop)]
    summary = {"prompt": prompt, "seed": seed, "steps": steps, "models": models}
    RESULTS.put(key, (summary,))
    return summary


def cards_html(summary: dict) -> str:
    """One card per model: its picture | the nearest training emoji, the distance, the verdict."""
    e = html.escape
    cards = []
    for m in summary["models"]:
        kind, icon = ("dv-mvg-copy", "📋") if m["copy"] else ("dv-mvg-new", "✨")
        cards.append(
            f'<div class="dv-mvg-card {kind}" data-model="{e(m["model"])}">'
            f'<div class="dv-mvg-title">{e(m["title"])}</div><div class="dv-mvg-sub">{e(m["subtitle"])}</div>'
            '<div class="dv-mvg-pair">'
            f'<figure><img class="dv-mvg-img" src="{m["image_png"]}" alt="{e(m["title"])}: its picture">'
            '<figcaption>its picture</figcaption></figure>'
            f'<figure><img class="dv-mvg-img" src="{m["nearest_png"]}" alt="nearest training emoji: '
            f'{e(m["nearest"])}"><figcaption>nearest training emoji: <b>{e(m["nearest"])}</b></figcaption>'
            '</figure></div>'
            f'<div class="dv-mvg-rms">distance to it: <b>{m["nearest_rms"]:.3f}</b> (0 = the same picture)</div>'
            f'<div class="dv-mvg-verdict">{icon} {e(m["verdict"])}</div></div>')
    return f'<div class="dv-mvg">{"".join(cards)}</div>'


RUNNING = "Drawing"  # the progress line starts with this word; Stop replaces it (STOP_JS)
STOP_JS = f"""(text) => (text || '').startsWith('{RUNNING}') ? '**Stopped.** Press **Run** to draw again.' : text"""


@friendly
def memorize_ui(prompt, seed, steps, guidance):
    """A progress line while both models draw (Stop ends the work at its next step), then the cards."""
    mvg.check_inputs(prompt, seed, steps, guidance)  # a mistake is explained at once
    said = False
    for item in run_stoppable(lambda stop: memorize(prompt, seed, steps, guidance, should_stop=stop)):
        if isinstance(item, Waiting):  # keep yielding (Stop can end the run between yields); say it once
            yield gr.skip(), gr.skip(), gr.skip() if said else f"{RUNNING} with both models… Press **Stop** to end it."
            said = True
        else:
            yield cards_html(item), item, ""


def build():
    d = mvg.DEFAULTS
    with gr.Column(elem_id="dv-mvg-main"):
        gr.Markdown(explain.MEMORIZE_INTRO, elem_classes=["dv-help"], elem_id="dv-mvg-intro")
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(d["prompt"], label="Prompt (in English)", scale=2, min_width=180,
                                elem_id="dv-mvg-prompt")
            seed = gr.Number(d["seed"], label="Seed", precision=None, minimum=0, scale=1, min_width=110,
                             elem_id="dv-mvg-seed")
            dice = gr.Button("New seed", scale=0, min_width=120, elem_id="dv-mvg-dice")
            steps = gr.Slider(1, LIMITS.steps, value=d["steps"], step=1, label="Steps", scale=2, min_width=160,
                              elem_id="dv-mvg-steps")
            guidance = gr.Slider(0, 15, value=d["guidance"], step=0.5, label="Guidance", scale=2,
                                 min_width=160, elem_id="dv-mvg-guidance")
            with gr.Column(scale=1, min_width=100):
                run = gr.Button("Run", variant="primary", elem_id="dv-mvg-run")
                stop = gr.Button("Stop", variant="stop", size="sm", elem_id="dv-mvg-stop")
        progress = gr.Markdown(elem_id="dv-mvg-status")
        cards = gr.HTML(EMPTY, elem_id="dv-mvg-cards")
    gr.Markdown(explain.MEMORIZE_WHY, elem_classes=["dv-help"], elem_id="dv-mvg-why")
    with gr.Accordion("Numbers (JSON, also what the API returns)", open=False):
        details = gr.JSON(label="Numbers")

    inputs, outputs = [prompt, seed, steps, guidance], [cards, details, progress]
    # The spinner / queue position shows on the cards only: the progress line is ours (and Stop writes it).
    track = dict(api_visibility="private", show_progress_on=[cards])
    events = [run.click(memorize_ui, inputs, outputs, **track), prompt.submit(memorize_ui, inputs, outputs, **track)]
    ev = dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
    events.append(ev.then(memorize_ui, inputs, outputs, **track))
    stop.click(None, progress, progress, js=STOP_JS, cancels=events, api_visibility="private", queue=False)
    built = {"prompt": prompt, "seed": seed, "steps": steps, "guidance": guidance, "run": run}
    gr.api(friendly(memorize_api), api_name="memorize")
    return built


def memorize_api(prompt: str, seed: int = 0, steps: int = 50, guidance: float = 3.0) -> dict:
    """``/memorize``: see ``memorize``. While it runs it yields {"running": true, "seconds": s} (a client's
    ``predict`` returns only the final dict); a cancelled or disconnected call stops at its next step."""
    mvg.check_inputs(prompt, seed, steps, guidance)
    yield from stream_api(lambda stop: memorize(prompt, seed, steps, guidance, should_stop=stop))
