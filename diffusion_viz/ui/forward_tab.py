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
    return (*images, logic.arithmetic_markdown(result, int(t)), summary, mark_pixel(rgb, result.pixel), state)


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
    x0 = logic.to_model_space(rgb).ravel()
    step = max(1, x0.size // HIST_SAMPLES)
    arrays = {"photo": x0[::step]}
    arrays.update({f"{lab} at t={int(t)}": x.ravel()[::step] for lab, x in zip(result.labels, result.noised)})
    return fig_s, histogram_plot(arrays)


def _load_webcam(frame, state):
    if frame is None:
        return gr.skip(), gr.skip()
    return {"path": "webcam", "rgb": load_image(frame), "cache": {}}, None


def build():
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            gr.Markdown(explain.FORWARD_INTRO, elem_classes=["dv-help"])
            photo = gr.File(label="Upload a photo", file_types=["image"], type="filepath",
                            elem_id="dv-photo", height=110)
            examples = logic.example_photos()
            if examples:
                gr.Examples(examples, inputs=photo, label="…or pick an example")
            with gr.Accordion("…or use the webcam", open=False):
                webcam = gr.Image(sources=["webcam"], type="numpy", label="Webcam", elem_id="dv-webcam")
            t = gr.Slider(0, 999, value=300, step=1, label="Training step t (0 = clean, 999 = noisiest)",
                          elem_id="dv-t")
            schedules = gr.CheckboxGroup(list(SCHEDULES), value=DEFAULT_SCHEDULES, elem_id="dv-schedules",
                                         label="Schedules to compare (up to 4)")
            noise_seed = gr.Number(0, label="Noise seed (which ε)", precision=0, minimum=0,
                                   elem_id="dv-noise-seed")
            with gr.Row():
                px = gr.Number(-1, label="Pixel x (click a picture)", precision=0, elem_id="dv-px", min_width=100)
                py = gr.Number(-1, label="Pixel y", precision=0, elem_id="dv-py", min_width=100)
            gr.Markdown(explain.FORWARD_MYTH, elem_classes=["dv-help"])
        with gr.Column(scale=3):
            with gr.Row():
                images = [gr.Image(label=f"schedule {k + 1}", interactive=False, format="jpeg",
                                   elem_id=f"dv-noised-{k}", height=260, buttons=[],
                                   elem_classes=["dv-noised"])
                          for k in range(MAX_SCHEDULES)]
            arithmetic = gr.Markdown(elem_id="dv-arithmetic", elem_classes=["dv-help"])
            plot_s = gr.Plot(label="Signal left (alpha-bar) and log SNR against t", elem_id="dv-schedule-plot",
                             show_label=False)
            plot_h = gr.Plot(label="Pixel values", elem_id="dv-histogram", show_label=False)
            with gr.Row():
                shown = gr.Image(label="Your photo (RGB, EXIF-rotated, ≤ 1024 px); the ring marks the pixel",
                                 interactive=False, height=180, elem_id="dv-photo-shown", buttons=[])
                with gr.Accordion("Numbers (JSON, also what the API returns)", open=False):
                    details = gr.JSON(label="Numbers")
    state = gr.State({})

    inputs = [photo, t, schedules, noise_seed, px, py, state]
    outputs = [*images, arithmetic, details, shown, state]
    plot_inputs, plot_outputs = [t, schedules, noise_seed, state], [plot_s, plot_h]
    t.change(forward_noise, inputs, outputs, api_name="forward_noise", trigger_mode="always_last",
             show_progress="hidden", concurrency_limit=4)
    t.release(forward_plots, plot_inputs, plot_outputs, api_name="forward_plots", show_progress="hidden")
    for trigger in (photo.change, schedules.change, noise_seed.change):
        trigger(forward_noise, inputs, outputs, api_visibility="private", show_progress="hidden").then(
            forward_plots, plot_inputs, plot_outputs, api_visibility="private", show_progress="hidden")
    webcam.change(friendly(_load_webcam), [webcam, state], [state, photo], api_visibility="private").then(
        forward_noise, inputs, outputs, api_visibility="private").then(
        forward_plots, plot_inputs, plot_outputs, api_visibility="private")

    def pick(evt: gr.SelectData):
        x, y = evt.index
        return int(x), int(y)

    for img in (*images, shown):
        img.select(pick, None, [px, py], api_visibility="private", queue=False).then(
            forward_noise, inputs, outputs, api_visibility="private", show_progress="hidden")
    return {"load": (forward_noise, inputs, outputs, forward_plots, plot_inputs, plot_outputs)}
