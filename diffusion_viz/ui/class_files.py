"""Files a teacher takes away: the offline lesson (HTML) of a Denoise or Compare run, and a worksheet.

Runs are deterministic for their settings, so each file is made from the settings on the page (a Denoise
run comes from the result cache when it was just made). Files are written once, into gradio's cache
folder, and cleaned with the other uploads (serving.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..lessons import default_lesson
from ..sampling import sample
from . import logic
from .cache import RESULTS, run_key
from .common import friendly
from .lesson_file import lesson_filename, lesson_html


def store(name: str, text: str) -> str:
    """Write ``text`` as ``name`` into gradio's cache folder (once: gradio would copy it there anyway)."""
    from gradio.processing_utils import save_file_to_cache
    from gradio.utils import get_upload_folder

    with tempfile.TemporaryDirectory(prefix="dv-file-") as scratch:
        path = Path(scratch) / name
        path.write_text(text, encoding="utf-8")
        return save_file_to_cache(path, get_upload_folder())


def _denoise_run(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """(settings, model, player payload dict) of a Denoise run: from the result cache, or made now."""
    from .denoise_tab import generate

    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    logic.check_cost([settings])
    model = logic.load_model(model_name)
    cached = RESULTS.get(run_key(model_name, settings))
    outputs = cached if cached is not None else list(generate(prompt, steps, seed, guidance, scheduler, schedule,
                                                             model_name))[-1]
    payload = json.loads(outputs[0])
    payload.pop("run", None)  # a Stable Diffusion run's id means nothing outside the app
    return settings, model, payload


@friendly
def denoise_lesson(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """The Denoise run as one offline HTML file (player, numbers, explanation). Output: its path."""
    settings, _, payload = _denoise_run(prompt, steps, seed, guidance, scheduler, schedule, model_name)
    table = {**settings.__dict__, "model": model_name}
    title = f"diffusion-viz: “{settings.prompt or 'no prompt'}”, {settings.steps} steps"
    return store(lesson_filename(model_name, settings), lesson_html(payload, title=title, settings=table))


@friendly
def compare_lesson(prompt, seed, model_name, *flat):
    """The Compare columns as one offline HTML file, all under one slider. Output: its path."""
    from .compare_tab import columns_from_flat

    columns = columns_from_flat(flat)
    _, player_cols, summary = logic.run_compare(prompt, seed, model_name, columns)
    payload = logic.player_payload(player_cols, panels=("x0", "x_t"), start="end")
    stem = logic.download_name(model_name, logic.make_settings(prompt, 1, seed, 1.0, "ddim", "cosine"))
    stem = stem.split("-ddim-")[0] + f"-compare-seed{int(seed)}"
    title = f"diffusion-viz: “{prompt or 'no prompt'}”, {len(columns)} runs compared"
    return store(f"{stem}-lesson.html",
                 lesson_html(payload, title=title, settings={"prompt": prompt, "model": model_name, "seed": seed}))


@friendly
def worksheet(prompt, steps, seed, guidance, scheduler, schedule, model_name):
    """A print-ready worksheet of the run: contact sheet, numbers, the lesson's questions. Output: path."""
    from .worksheet import worksheet_for_run

    settings = logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)
    logic.check_cost([settings])
    model = logic.load_model(model_name)
    traj = sample(model, settings)
    to_rgb, _ = logic.display_functions(model)
    questions = [s.ask for s in default_lesson().available_stops() if s.tab in ("denoise", "compare")][:4]
    html = worksheet_for_run(traj, to_rgb=to_rgb, title=f"How a diffusion model makes “{settings.prompt or 'a picture'}”",
                             settings={**settings.__dict__, "model": model_name}, questions=questions)
    return store(logic.download_name(model_name, settings) + "-worksheet.html", html)
