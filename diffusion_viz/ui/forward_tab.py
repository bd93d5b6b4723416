"""Forward-noising tab: one photo, up to four schedules, the same noise, one slider for t.

Public endpoints: ``forward_noise`` (noised pictures + one pixel's arithmetic; fast, runs while the
slider moves) and ``forward_plots`` (schedule curves and histogram; runs when the slider is released).
The loaded photo and its noise live in per-session state, so moving the slider never re-decodes it.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from ..errors import ImageInputError
from ..images import load_image
from ..plots import histogram_plot, schedule_plot
from ..schedules import SCHEDULES, get_schedule
from . import explain, logic
from .common import friendly

MAX_SCHEDULES = 4
DEFAULT_SCHEDULES = ["linear", "scaled_linear", "cosine"]
HIST_SAMPLES = 60_000  # the histogram's shape needs no more values than this


def _photo(state: dict | None, path) -> tuple[np.ndarray, dict]:
    """The session's photo: reload only when a new file arrives; the bundled example otherwise."""
    state = dict(state or {})
    if path and state.get("path") != str(path):
        state = {"path": str(path), "rgb": load_image(str(path))}
    if state.get("rgb") is None:
        examples = logic.example_photos()
        if not examples:
            raise ImageInputError("Upload a photo to start.")
        state = {"path": None, "rgb": load_image(examples[0])}
    state.setdefault("cache", {})
    return state["rgb"], state


@friendly
def forward_noise(photo, t, schedules, noise_seed, pixel_x, pixel_y, state=None):
    """Noise the photo to step t under each schedule with the same eps; explain one pixel.

    Returns 4 images (unused slots hidden), the pixel arithmetic as Markdown and as a dict, the state.
    """
    rgb, state = _photo(state, photo)
    pixel = None if pixel_x is None or pixel_y is None or pixel_x < 0 or pixel_y < 0 else (pixel_x, pixel_y)
    result = logic.forward_outputs(rgb, t, schedules, noise_seed, pixel, cache=state["cache"])
    images = []
    for k in range(MAX_SCHEDULES):
        if k < len(result.images):
            label = f"{result.labels[k]}: ᾱ = {result.alpha_bars[k]:.4f}"
            images.append(gr.update(value=result.images[k], label=label, visible=True))
        else:
            images.append(gr.update(value=None, visible=False))
    summary = result.summary()
    summary["t"] = int(t)
    summary["size"] = {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
    px, py = result.pixel  # the pixel the sums use (the centre until one is clicked): the boxes show it
    return (*images, logic.arithmetic_markdown(result, int(t)), summary, mark_pixel(rgb, result.pixel), px, py,
            state)


def mark_pixel(rgb: np.ndarray, pixel: tuple[int, int]) -> np.ndarray:
    """A copy of the photo with a ring around the pixel whose arithmetic is shown."""
    out = rgb.copy()
    h, w = out.shape[:2]
    x, y = pixel
    r = max(4, min(h, w) // 40)
    for k, color in ((r + 2, (255, 255, 255)), (r, (230, 0, 0))):
        y0, y1, x0, x1 = max(0, y - k), min(h - 1, y + k), max(0, x - k), min(w - 1, x + k)
        out[y0:y1 + 1, [x0, x1]] = color
        out[[y0, y1], x0:x1 + 1] = color
    return out


@friendly
def forward_plots(t, schedules, noise_seed, state=None):
    """The schedule curves with a marker at t, and a histogram of pixel values with [-1, 1] marked."""
    rgb, state = _photo(state, None)
    result = logic.forward_outputs(rgb, t, schedules, noise_seed, cache=state["cache"])
    fig_s = schedule_plot([get_schedule(n) for n in result.labels], int(t))
    return fig_s, histogram_plot(histogram_values(rgb, result, int(t)))


def histogram_values(rgb: np.ndarray, result, t: int) -> dict[str, np.ndarray]:
    """Every value of a subsample of whole pixels (R, G and B each), for the photo and each schedule.

    Subsampling the flat array instead would keep one channel only whenever the stride is a multiple of
    3 (a 640x480 webcam photo: stride 15, red only)."""
    x0 = logic.to_model_space(rgb).reshape(-1, 3)
    step = max(1, len(x0) * 3 // HIST_SAMPLES)
    arrays = {"photo": x0[::step].ravel()}
    arrays.update({f"{lab} at t={t}": x.reshape(-1, 3)[::step].ravel() for lab, x in zip(result.labels, result.noised)})
    return arrays


def _unless_too_many(fn, outputs: int):
    """The page's own triggers skip a fifth schedule quietly: ``limit_schedules`` undoes it and explains."""
    def wrapped(photo_or_t, *args):
        chosen = args[1] if fn is forward_noise else args[0]
        if chosen and len(chosen) > MAX_SCHEDULES:
            return tuple(gr.skip() for _ in range(outputs))
        return fn(photo_or_t, *args)
    wrapped.__name__ = fn.__name__
    return wrapped


def limit_schedules(chosen, previous):
    """At most MAX_SCHEDULES ticked: a fifth tick is undone (with a message), the other four stay."""
    chosen = list(chosen or [])
    if len(chosen) <= MAX_SCHEDULES:
        return chosen, chosen
    gr.Warning(f"Compare at most {MAX_SCHEDULES} schedules at once: untick one first.", title="Four at most")
    kept = [n for n in (previous or []) if n in chosen][:MAX_SCHEDULES]
    return kept, kept


def _load_webcam(frame, state):
    if frame is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return {"path": "webcam", "rgb": load_image(frame), "cache": {}}, None, None, None


def build():
    with gr.Row(elem_id="dv-forward-row"):
        with gr.Column(scale=1, min_width=300, elem_id="dv-forward-controls"):
            gr.Markdown(explain.FORWARD_INTRO, elem_classes=["dv-help"])
            photo = gr.File(label="Upload a photo", file_types=["image"], type="filepath",
                            elem_id="dv-photo", height=110)
            examples = logic.example_photos()
            if examples:
                gr.Examples(examples, inputs=photo, label="…or pick an example")
            with gr.Accordion("…or use the webcam", open=False):
                webcam = gr.Image(sources=["webcam"], type="numpy", label="Webcam", elem_id="dv-webcam")
            schedules = gr.CheckboxGroup(list(SCHEDULES), value=DEFAULT_SCHEDULES, elem_id="dv-schedules",
                                         label="Schedules to compare (up to 4)")
            noise_seed = gr.Number(0, label="Noise seed (which ε)", precision=None, minimum=0,
                                   elem_id="dv-noise-seed")
            with gr.Row():
                px = gr.Number(None, label="Pixel x (click a picture)", precision=0, elem_id="dv-px", min_width=100)
                py = gr.Number(None, label="Pixel y", precision=0, elem_id="dv-py", min_width=100)
            gr.Markdown(explain.FORWARD_MYTH, elem_classes=["dv-help"])
        with gr.Column(scale=3, elem_id="dv-forward-main"):
            t = gr.Slider(0, 999, value=300, step=1, elem_id="dv-t",
                          label="Training step t (0 = the lightest noising step, 999 = the noisiest)")
            with gr.Row():
                images = [gr.Image(label=f"schedule {k + 1}", interactive=False, format="jpeg",
                                   elem_id=f"dv-noised-{k}", height=290, buttons=[],
                                   elem_classes=["dv-noised"])
                          for k in range(MAX_SCHEDULES)]
            arithmetic = gr.Markdown(elem_id="dv-arithmetic", elem_classes=["dv-help"])
            plot_s = gr.Plot(label="Signal power left (alpha-bar) and log SNR against t", elem_id="dv-schedule-plot",
                             show_label=False)
            plot_h = gr.Plot(label="Pixel values", elem_id="dv-histogram", show_label=False)
            with gr.Row():
                shown = gr.Image(label="Your photo (RGB, EXIF-rotated, ≤ 1024 px); the ring marks the pixel",
                                 interactive=False, height=180, elem_id="dv-photo-shown", buttons=[])
                with gr.Accordion("Numbers (JSON, also what the API returns)", open=False):
                    details = gr.JSON(label="Numbers")
    state = gr.State({})
    valid_schedules = gr.State(list(DEFAULT_SCHEDULES))

    inputs = [photo, t, schedules, noise_seed, px, py, state]
    outputs = [*images, arithmetic, details, shown, px, py, state]
    plot_inputs, plot_outputs = [t, schedules, noise_seed, state], [plot_s, plot_h]
    # Every way t changes (drag, arrow keys, typing + Enter) updates the pictures *and* the plots; each
    # keeps only the newest pending request, so a fast drag does not queue up work.
    t.change(forward_noise, inputs, outputs, api_name="forward_noise", trigger_mode="always_last",
             show_progress="hidden", concurrency_limit=4)
    t.change(forward_plots, plot_inputs, plot_outputs, api_name="forward_plots", trigger_mode="always_last",
             show_progress="hidden")
    schedules.input(limit_schedules, [schedules, valid_schedules], [schedules, valid_schedules],
                    api_visibility="private", show_progress="hidden")  # queued: its message needs the queue
    noise_ui, plots_ui = _unless_too_many(forward_noise, len(outputs)), _unless_too_many(forward_plots, 2)
    for trigger in (schedules.change, noise_seed.change):
        trigger(noise_ui, inputs, outputs, api_visibility="private", show_progress="hidden").then(
            plots_ui, plot_inputs, plot_outputs, api_visibility="private", show_progress="hidden")
    # A new photo starts with its centre pixel explained (the boxes then show which one).
    photo.change(lambda: (None, None), None, [px, py], api_visibility="private", queue=False).then(
        noise_ui, inputs, outputs, api_visibility="private", show_progress="hidden").then(
        plots_ui, plot_inputs, plot_outputs, api_visibility="private", show_progress="hidden")
    webcam.change(friendly(_load_webcam), [webcam, state], [state, photo, px, py], api_visibility="private").then(
        forward_noise, inputs, outputs, api_visibility="private").then(
        forward_plots, plot_inputs, plot_outputs, api_visibility="private")

    def pick(evt: gr.SelectData):
        x, y = evt.index
        return int(x), int(y)

    for img in (*images, shown):
        img.select(pick, None, [px, py], api_visibility="private", queue=False).then(
            forward_noise, inputs, outputs, api_visibility="private", show_progress="hidden")
    return {"load": (forward_noise, inputs, outputs, forward_plots, plot_inputs, plot_outputs),
            "t": t, "schedules": schedules, "noise_seed": noise_seed, "valid_schedules": valid_schedules}
