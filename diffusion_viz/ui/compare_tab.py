"""Compare tab: same prompt and seed in up to four columns, one slider for all of them.

Public endpoint: ``compare(prompt, seed, model, columns)`` with ``columns`` a list of
{"scheduler", "schedule", "steps", "guidance"} dicts; returns a dict with one entry per column.
"""

from __future__ import annotations

import gradio as gr

from ..models.registry import DEFAULT_MODEL, MODELS
from ..plots import log_snr_steps_plot
from ..sampling import SCHEDULERS
from ..schedules import SCHEDULES
from . import explain, logic
from .common import friendly
from .player import make_player, to_value

DEFAULT_COLUMNS = [
    dict(use=True, scheduler="ddim", schedule="cosine", steps=50, guidance=1.0),
    dict(use=True, scheduler="ddim", schedule="scaled_linear", steps=50, guidance=1.0),
    dict(use=True, scheduler="dpmpp_2m", schedule="cosine", steps=10, guidance=1.0),
    dict(use=True, scheduler="euler_a", schedule="linear", steps=50, guidance=1.0),
]


def compare(prompt: str, seed: int, model: str, columns: list[dict]) -> dict:
    """Run the same prompt and seed once per column.

    Each column is {"scheduler": str, "schedule": str, "steps": int, "guidance": float}. Returns
    {"prompt", "seed", "model", "columns": [{..settings, "frames", "seconds", "log_snr": [...],
    "final_png": data-URI, "nearest_training_image"?}]}.
    """
    _, player_cols, summary = logic.run_compare(prompt, seed, model, columns)
    for col, pc in zip(summary["columns"], player_cols):
        col["final_png"] = pc["final"]
    return summary


@friendly
def compare_ui(prompt, seed, model, *flat):
    columns = []
    for k in range(0, len(flat), 5):
        use, scheduler, schedule, steps, guidance = flat[k:k + 5]
        if use:
            columns.append(dict(scheduler=scheduler, schedule=schedule, steps=steps, guidance=guidance))
    _, player_cols, summary = logic.run_compare(prompt, seed, model, columns)
    payload = logic.player_payload(player_cols, panels=("x0", "x_t"), start="end")
    fig = log_snr_steps_plot(logic.log_snr_columns(summary))
    parts = [f"**{k + 1}.** {c.get('nearest_training_image', '')} ({c['frames']} steps, {c['seconds']:.2f} s)"
             for k, c in enumerate(summary["columns"])]
    return to_value(payload), fig, "Results: " + " · ".join(parts), summary


def build():
    d = logic.DEFAULTS
    gr.Markdown(explain.COMPARE_INTRO, elem_classes=["dv-help"])
    with gr.Row(equal_height=True):
        prompt = gr.Textbox(d["prompt"], label="Prompt", scale=3, elem_id="dv-cmp-prompt")
        seed = gr.Number(d["seed"], label="Seed", precision=0, minimum=0, scale=1, elem_id="dv-cmp-seed")
        model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", scale=2)
        run = gr.Button("Compare ▶", variant="primary", scale=1, elem_id="dv-compare")
    flat = []
    with gr.Row():
        for k, c in enumerate(DEFAULT_COLUMNS):
            with gr.Column(min_width=220, variant="panel"):
                use = gr.Checkbox(c["use"], label=f"Column {k + 1}", container=False)
                with gr.Row():
                    sampler = gr.Dropdown(list(SCHEDULERS), value=c["scheduler"], label="Sampler", min_width=90)
                    sched = gr.Dropdown(list(SCHEDULES), value=c["schedule"], label="Schedule", min_width=90)
                with gr.Row():
                    steps = gr.Number(c["steps"], label="Steps", precision=0, minimum=1, maximum=1000, min_width=80)
                    guid = gr.Number(c["guidance"], label="Guidance", minimum=0, maximum=30, step=0.5, min_width=80)
                flat += [use, sampler, sched, steps, guid]
    results = gr.Markdown(elem_id="dv-cmp-results")
    player = make_player("dv-cmp-player", "Press <b>Compare</b>: every column runs with the same prompt and seed.")
    plot = gr.Plot(label="Where each run's steps fall on the log-SNR axis", elem_id="dv-cmp-plot", show_label=False)
    with gr.Accordion("Numbers per column (JSON, also what the API returns)", open=False):
        details = gr.JSON(label="Numbers per column")
    run.click(compare_ui, [prompt, seed, model, *flat], [player, plot, results, details],
              api_visibility="private", concurrency_limit=2)
    gr.api(friendly(compare), api_name="compare")
