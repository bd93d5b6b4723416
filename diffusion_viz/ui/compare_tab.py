"""Compare tab: same prompt and seed in up to four columns, one slider for all of them.

Public endpoint: ``compare(prompt, seed, model, columns)`` with ``columns`` a list of
{"scheduler", "schedule", "steps", "guidance"} dicts; returns a dict with one entry per column.
"""

from __future__ import annotations

import gradio as gr

from ..limits import LIMITS
from ..models.registry import DEFAULT_MODEL, MODELS
from ..plots import log_snr_steps_plot
from ..sampling import SCHEDULERS
from ..schedules import SCHEDULES
from . import explain, logic
from .common import friendly
from .serving import Waiting, run_stoppable, stream_api
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
    "final_png": data-URI, "nearest_training_image"?}]}. While it runs it yields {"running": true,
    "seconds": s} (a client's ``predict`` returns only the final dict); a cancelled or disconnected
    call stops at its next step.
    """
    logic.check_columns(columns)

    def work(stop):
        _, player_cols, summary = logic.run_compare(prompt, seed, model, columns, should_stop=stop)
        for col, pc in zip(summary["columns"], player_cols):
            col["final_png"] = pc["final"]
        return summary

    yield from stream_api(work)


RUNNING = "Comparing"  # the progress line starts with this word; Stop replaces it (STOP_JS)
STOP_JS = f"""(text) => (text || '').startsWith('{RUNNING}') ? '**Stopped.** Press **Compare** to run again.' : text"""


def columns_from_flat(flat) -> list[dict]:
    """The ticked columns from the page's controls: (use, sampler, schedule, steps, guidance) per column."""
    columns = []
    for k in range(0, len(flat), 5):
        use, scheduler, schedule, steps, guidance = flat[k:k + 5]
        if use:
            columns.append(dict(scheduler=scheduler, schedule=schedule, steps=steps, guidance=guidance))
    return columns


@friendly
def compare_ui(prompt, seed, model, *flat):
    """Stream a progress line while the columns run (Stop ends the work at its next step), then the
    player, the log-SNR plot, the results line and the numbers."""
    columns = columns_from_flat(flat)
    logic.check_columns(columns)  # a mistake is explained at once, before any work starts
    result, said = None, False
    for item in run_stoppable(lambda stop: logic.run_compare(prompt, seed, model, columns, should_stop=stop)):
        if isinstance(item, Waiting):  # keep yielding (Stop can end the run between yields); say it once
            line = gr.skip() if said else f"{RUNNING} {len(columns)} column(s)… Press **Stop** to end it."
            said = True
            yield gr.skip(), gr.skip(), line, gr.skip()
        else:
            result = item
    _, player_cols, summary = result
    payload = logic.player_payload(player_cols, panels=("x0", "x_t"), start="end")
    fig = log_snr_steps_plot(logic.log_snr_columns(summary))
    parts = [f"**{k + 1}.** {c.get('nearest_training_image', '')} ({c['frames']} steps, {c['seconds']:.2f} s)"
             for k, c in enumerate(summary["columns"])]
    yield to_value(payload), fig, "Results: " + " · ".join(parts), summary


def build():
    d = logic.DEFAULTS
    gr.Markdown(explain.COMPARE_INTRO, elem_classes=["dv-help"])
    with gr.Row(equal_height=True, elem_id="dv-cmp-top"):
        prompt = gr.Textbox(d["prompt"], label="Prompt (in English)", scale=3, elem_id="dv-cmp-prompt")
        seed = gr.Number(d["seed"], label="Seed", precision=None, minimum=0, scale=1, elem_id="dv-cmp-seed")
        model = gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, label="Model", scale=2, elem_id="dv-cmp-model")
        run = gr.Button("Compare", variant="primary", scale=1, elem_id="dv-compare")
        stop = gr.Button("Stop", variant="stop", scale=0, min_width=90, elem_id="dv-cmp-stop")
    flat = []
    with gr.Row(elem_id="dv-cmp-columns"):
        for k, c in enumerate(DEFAULT_COLUMNS):
            with gr.Column(min_width=220, variant="panel"):
                use = gr.Checkbox(c["use"], label=f"Column {k + 1}", container=False)
                # one control per line: "scaled_linear" and "dpmpp_2m" fit without being cut
                sampler = gr.Dropdown(list(SCHEDULERS), value=c["scheduler"], label="Sampler")
                sched = gr.Dropdown(list(SCHEDULES), value=c["schedule"], label="Schedule")
                with gr.Row():
                    steps = gr.Number(c["steps"], label="Steps", precision=None, minimum=1, maximum=LIMITS.steps,
                                      min_width=80)
                    guid = gr.Number(c["guidance"], label="Guidance", minimum=0, maximum=30, step=0.5, min_width=80)
                flat += [use, sampler, sched, steps, guid]
    results = gr.Markdown(elem_id="dv-cmp-results")
    player = make_player("dv-cmp-player", "Press <b>Compare</b>: every column runs with the same prompt and seed.")
    plot = gr.Plot(label="Where each run's steps fall on the log-SNR axis", elem_id="dv-cmp-plot", show_label=False)
    with gr.Row():
        lesson_file = gr.Button("Download lesson (HTML, works offline)", size="sm", elem_id="dv-cmp-lesson-file",
                                scale=0, min_width=300)
        files = gr.File(label="Lesson file", interactive=False, elem_id="dv-cmp-files", height=90)
    with gr.Accordion("Numbers per column (JSON, also what the API returns)", open=False):
        details = gr.JSON(label="Numbers per column")
    # the spinner / queue position shows on the player only: the results line is ours (Stop writes it)
    event = run.click(compare_ui, [prompt, seed, model, *flat], [player, plot, results, details],
                      api_visibility="private", concurrency_limit=2, show_progress_on=[player])
    stop.click(None, results, results, js=STOP_JS, cancels=[event], api_visibility="private", queue=False)
    from .class_files import compare_lesson

    lesson_file.click(compare_lesson, [prompt, seed, model, *flat], files, api_visibility="private",
                      concurrency_limit=2)
    gr.api(friendly(compare), api_name="compare")
    return {"prompt": prompt, "seed": seed, "model": model, "columns": flat, "run": run, "results": results}
