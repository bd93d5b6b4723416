"""The Experiments tab's computations, without gradio: round trip, when decided, seed grid.

Each returns the player's columns (one slider for all) and the JSON an API client gets. The library
modules (``round_trip``, ``when_decided``, ``seed_grid``) do the sampling; this turns runs into what a
class sees: titles that say where each column starts or departs, and the emoji each ends on.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from .. import validation
from ..compare import MAX_COLUMNS
from ..data import load_emoji, nearest_emoji
from ..errors import ImageInputError, InvalidInputError
from ..images import load_image
from ..round_trip import DEFAULT_LEVELS, round_trip, training_emoji
from ..sampling import SampleSettings, planned_frame_count
from ..seed_grid import check_seeds, seed_grid, tally
from ..when_decided import DEFAULT_FRACTIONS, MODES, plan_columns, switch_steps, when_decided
from . import logic

LEVEL_CHOICES = [100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
FRACTION_CHOICES = {"0 %": 0.0, "10 %": 0.1, "25 %": 0.25, "50 %": 0.5, "75 %": 0.75, "100 %": 1.0}


def pct(share: float) -> str:
    """A share in %, with enough digits that a small one does not read as 0."""
    p = 100 * share
    return f"{p:.0f} %" if p >= 10 else (f"{p:.1f} %" if p >= 0.1 else f"{p:.1e} %")


def emoji_names() -> list[str]:
    return [str(n) for n in load_emoji(64).names]


def drawing_from_sketch(sketch) -> np.ndarray | None:
    """The Sketchpad's picture (RGB uint8), or None when nothing was drawn (an untouched canvas is blank)."""
    if not isinstance(sketch, dict) or sketch.get("composite") is None:
        return None
    rgb = np.asarray(sketch["composite"])
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return None
    rgb = rgb[..., :3].astype(np.uint8)
    return None if rgb.min() == rgb.max() else rgb


def photo_for(model, photo, emoji: str | None, drawing: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The picture to start from: the uploaded photo (a path), else a drawing, else a training emoji by
    name, else the first example photo. Returns (RGB uint8, what it is)."""
    if photo:
        return load_image(str(photo)), "your photo"
    if drawing is not None:
        return load_image(Image.fromarray(np.asarray(drawing, dtype=np.uint8))), "your drawing"
    if emoji:
        return training_emoji(model, emoji), f"the training emoji {emoji}"
    examples = logic.example_photos()
    if not examples:
        raise ImageInputError("Upload a photo, or pick an emoji, to start.")
    return load_image(examples[0]), "the example photo"


def _settings(prompt, seed, scheduler, schedule, steps, guidance=1.0) -> SampleSettings:
    return logic.make_settings(prompt, steps, seed, guidance, scheduler, schedule)


def _final_column(model, run, title: str) -> dict:
    to_rgb, _ = logic.display_functions(model)
    return logic.player_column(logic.thin_frames(run.frames), model, title, logic.png_data_uri(to_rgb(run.final)))


def _ends_on(run) -> str | None:
    near = nearest_emoji(run.final)
    return near.name if near is not None and near.rms < 0.1 else None


# ---- 1. round trip --------------------------------------------------------------------------------
def run_round_trip(photo, emoji, prompt, seed, model_name, scheduler, schedule, steps, levels,
                   should_stop: Callable[[], bool] | None = None,
                   drawing: np.ndarray | None = None) -> tuple[dict, dict, np.ndarray]:
    """(player payload, summary, the photo as the model sees it (RGB at model size))."""
    settings = _settings(prompt, seed, scheduler, schedule, steps)
    levels = sorted({validation.check_timestep(t, 999) for t in (DEFAULT_LEVELS if levels is None else levels)})
    if not levels:
        raise InvalidInputError("Tick at least one noise level to start from.")
    if len(levels) > MAX_COLUMNS:
        raise InvalidInputError(f"Pick at most {MAX_COLUMNS} noise levels (you picked {len(levels)}).")
    logic.check_cost([settings] * len(levels), "This round trip")
    model = logic.load_model(model_name)
    rgb, what = photo_for(model, photo, emoji, drawing)
    rt = round_trip(model, rgb, settings, levels, should_stop=should_stop)
    columns, rows = [], rt.summary()
    for st, run, row in zip(rt.starts, rt.runs, rows):
        title = f"from t = {st.timestep:g}: {pct(st.alpha_bar)} power left"
        columns.append(_final_column(model, run, title))
        row["ends_on"] = _ends_on(run)
        row["final_png"] = columns[-1]["final"]
    to_rgb, _ = logic.display_functions(model)
    shown_input = to_rgb(rt.x0)
    summary = {"model": model_name, "settings": settings.__dict__, "input": what, "levels": rows,
               "input_png": logic.png_data_uri(shown_input)}
    payload = logic.player_payload(columns, panels=("x_t", "x0"), start="end", align="step")
    return payload, summary, shown_input


def round_trip_markdown(summary: dict) -> str:
    """One line: what each column ends on, and how many of the run's steps it skipped."""
    parts = []
    for r in summary["levels"]:
        back = "comes back" if r["rms_to_input"] < 0.05 else (
            f"**{r['ends_on']}**" if r["ends_on"] else "a new picture")
        parts.append(f"t = {r['start_timestep']:g} → {back}")
    n = summary["settings"]["steps"]
    skips = ", ".join(str(r["start_step"]) for r in summary["levels"])
    return (f"**Started from {summary['input']}.** " + "; ".join(parts) +
            f". (Steps skipped of {n}: {skips}.)")


# ---- 2. when is the picture decided? --------------------------------------------------------------
def run_when_decided(prompt_a, prompt_b, seed, model_name, scheduler, schedule, steps, mode, fractions=None,
                     should_stop: Callable[[], bool] | None = None) -> tuple[dict, dict]:
    settings = _settings(prompt_a, seed, scheduler, schedule, steps)
    validation.check_choice("experiment", mode, MODES)
    fractions = list(DEFAULT_FRACTIONS if fractions is None else fractions)
    frames = planned_frame_count(settings.scheduler, settings.steps)
    ks = switch_steps(frames, fractions)
    plan_columns(settings, ks, mode, prompt_b)  # refuses a bad mode, step or sampler before any work
    logic.check_cost([settings] * len(ks), "This experiment")
    model = logic.load_model(model_name)
    ks, runs = when_decided(model, settings, prompt_b, fractions, mode, should_stop=should_stop)
    a, b = settings.prompt or "(no prompt)", validation.check_prompt(prompt_b) or "(no prompt)"
    columns, rows = [], []
    for k, run in zip(ks, runs):
        if mode == "switch":
            title = f"“{b}” only" if k == 0 else f"“{a}” only" if k >= frames else f"switch after step {k}"
        else:
            title = "new noise from the start" if k == 0 else "no new noise" if k >= frames \
                else f"new noise after step {k}"
        columns.append(_final_column(model, run, title))
        rows.append({"k": k, "fraction": k / frames, "title": title, "ends_on": _ends_on(run),
                     "final_png": columns[-1]["final"]})
    summary = {"model": model_name, "settings": settings.__dict__, "mode": mode, "prompt_b": prompt_b,
               "frames": frames, "columns": rows}
    return logic.player_payload(columns, panels=("x_t", "x0"), start="end"), summary


def when_decided_markdown(summary: dict) -> str:
    ends = [f"{r['title']} → **{r['ends_on'] or 'a new picture'}**" for r in summary["columns"]]
    return "Ends on: " + "; ".join(ends) + "."


# ---- 3. one prompt, many seeds --------------------------------------------------------------------
def run_seed_grid(prompt, first_seed, count, model_name, scheduler, schedule, steps,
                  should_stop: Callable[[], bool] | None = None) -> tuple[dict, dict]:
    settings = _settings(prompt, first_seed, scheduler, schedule, steps)
    count = validation.check_int("Number of seeds", count)
    seeds = check_seeds([settings.seed + i for i in range(count)] if count > 0 else [])
    logic.check_cost([settings] * len(seeds), "This seed grid")
    model = logic.load_model(model_name)
    runs = seed_grid(model, settings, seeds, should_stop=should_stop)
    t = tally(model, settings.prompt, runs)
    columns = []
    for seed, run, end in zip(seeds, runs, (t or {}).get("ends", [None] * len(runs))):
        columns.append(_final_column(model, run, f"seed {seed}" + (f": {end}" if end else "")))
    summary = {"model": model_name, "settings": settings.__dict__, "seeds": seeds, "tally": t,
               "finals_png": [c["final"] for c in columns]}
    return logic.player_payload(columns, panels=("x_t",), start="end"), summary


def seed_grid_markdown(summary: dict) -> str:
    t, n = summary["tally"], len(summary["seeds"])
    if not t:
        return f"{n} seeds: the same prompt, {n} different starting static."
    counts = ", ".join(f"{name} × {c}" for name, c in t["counts"].items())
    line = f"**{n} seeds end on:** {counts}."
    if "favourite" in t:
        line += (f" Before any noise is seen, the prompt's prior gives **{t['favourite']}** {pct(t['prior'])}; "
                 f"it won {t['wins']} of {n} seeds. The prior is the chance before sampling, not of the result: "
                 "the seed's static, the sampler and the schedule decide among the prompt's emoji.")
    return line
