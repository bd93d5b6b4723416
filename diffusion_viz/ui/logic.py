"""What the app computes, without gradio: every handler is a thin wrapper around these functions.

Kept free of UI code so it can be tested directly and reused by the API, the benchmark and scripts.
Images go to the browser as small native-size PNG data URIs (64x64 for the emoji models); the browser
upscales them with ``image-rendering: pixelated``, so a projector shows crisp squares and the server
never resizes anything.
"""

from __future__ import annotations

import base64
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from .. import validation
from ..errors import InvalidInputError
from ..forward import explain_pixel, make_noise, noise_with_schedules, to_model_space, to_pixels
from ..models.registry import DEFAULT_MODEL, MODELS, get_model
from ..render import image_to_rgb, noise_to_rgb, pick_frames, write_output
from ..sampling import SCHEDULERS, Frame, SampleSettings, Trajectory, iter_frames
from ..schedules import SCHEDULES, get_schedule

DEFAULTS = dict(prompt="cat", steps=50, scheduler="ddim", schedule="cosine", guidance=1.0, seed=0,
                model=DEFAULT_MODEL)
MAX_PLAYER_FRAMES = 200  # longer runs are thinned for the player (first and last kept): keeps the page light
STREAM_INTERVAL_S = 0.08  # during sampling, send new frames to the browser at most this often
MAX_COMPARE_COLUMNS = 4
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"


# ---- pictures -----------------------------------------------------------------------------------
def png_data_uri(rgb: np.ndarray) -> str:
    """(H, W, 3) uint8 -> "data:image/png;base64,..." (fast zlib level: these are tiny)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def display_functions(model) -> tuple[Callable, Callable]:
    """(image -> RGB, noise -> RGB). Latent models bring their own ``to_rgb``; pixels use render's."""
    to_rgb = getattr(model, "to_rgb", None)
    if callable(to_rgb):
        return to_rgb, to_rgb
    return image_to_rgb, noise_to_rgb


def _finite(v: float) -> float | None:
    """JSON has no infinity: None stands for +-inf (t=0 of zero-terminal-SNR, or abar = 1)."""
    return float(v) if math.isfinite(v) else None


def frame_numbers(frame: Frame) -> dict:
    return {"index": frame.index, "t": round(frame.timestep, 3), "alpha_bar": frame.alpha_bar,
            "snr": _finite(frame.snr), "log_snr": _finite(frame.log_snr), "sigma": _finite(frame.sigma)}


def frame_record(frame: Frame, model) -> dict:
    """One step for the player: the three pictures as data URIs plus the step's numbers."""
    to_rgb, noise_rgb = display_functions(model)
    return {**frame_numbers(frame), "x_t": png_data_uri(to_rgb(frame.x_t)),
            "x0": png_data_uri(to_rgb(frame.x0)), "eps": png_data_uri(noise_rgb(frame.eps))}


# ---- the text conditioning ------------------------------------------------------------------------
def conditioning_info(model, prompt: str, k: int = 5) -> dict:
    """What the prompt turns into, for models that can say: emoji prior weights or text tokens."""
    prompt = validation.check_prompt(prompt)
    if not prompt:
        return {"kind": "unconditional", "prompt": ""}
    if hasattr(model, "top_matches"):
        return {"kind": "emoji", "prompt": prompt,
                "matches": [{"label": label, "weight": float(w)} for label, w in model.top_matches(prompt, k)]}
    if hasattr(model, "tokens"):
        return {"kind": "tokens", "prompt": prompt, "tokens": list(model.tokens(prompt))}
    return {"kind": "none", "prompt": prompt}


def conditioning_markdown(info: dict) -> str:
    if info["kind"] == "unconditional":
        return ("**Empty prompt:** every emoji is equally likely (unconditional). "
                "The picture depends only on the seed.")
    if info["kind"] == "emoji":
        rows = "\n".join(f"| {m['label']} | {m['weight'] * 100:.1f} % |" for m in info["matches"])
        return (f"**What “{info['prompt']}” points to** (the model's prior over its emoji):\n\n"
                f"| emoji | weight |\n|---|---|\n{rows}")
    if info["kind"] == "tokens":
        return ("**The tokens the text encoder reads:** " + " · ".join(f"`{t}`" for t in info["tokens"]))
    return ""


# ---- denoising ------------------------------------------------------------------------------------
def make_settings(prompt, steps, seed, guidance, scheduler, schedule) -> SampleSettings:
    """Validate every control value once; raises InvalidInputError with a friendly message."""
    return SampleSettings(prompt=prompt or "", steps=steps, scheduler=scheduler, schedule=schedule,
                          guidance=guidance, seed=seed).validated()


def load_model(name: str):
    validation.check_choice("model", name, MODELS)
    return get_model(name)


def run_summary(traj: Trajectory, model_name: str, model, info: dict, seconds: float) -> dict:
    """The JSON an API client gets: settings, per-step numbers and what the prompt pointed to."""
    summary = {"model": model_name, "settings": traj.settings, "frames": len(traj.frames),
               "seconds": round(seconds, 4), "conditioning": info,
               "steps": [frame_numbers(f) for f in traj.frames]}
    if hasattr(model, "nearest") and traj.final is not None:
        i, rms = model.nearest(traj.final)
        summary["nearest_training_image"] = {"label": model.dataset.label(i), "rms": rms}
    return summary


@dataclass
class Progress:
    """One streaming update of a run: new frames since the last update, or the finished run."""

    new_frames: list[dict]
    done: int
    total: int
    trajectory: Trajectory | None = None
    first_frame_s: float | None = None
    elapsed_s: float = 0.0


def stream_run(model, settings: SampleSettings, should_stop: Callable[[], bool] | None = None,
               interval: float = STREAM_INTERVAL_S) -> Iterator[Progress]:
    """Sample, yielding batches of rendered frames: the first one at once, then every ``interval`` s."""
    from ..sampling import planned_frame_count

    total = planned_frame_count(settings.scheduler, settings.steps)
    start = time.perf_counter()
    frames: list[Frame] = []
    pending: list[dict] = []
    first, last_sent = None, 0.0
    for item in iter_frames(model, settings, should_stop=should_stop):
        if not isinstance(item, Frame):
            traj = Trajectory(frames=frames, final=item, settings=settings.__dict__)
            yield Progress(pending, len(frames), total, traj, first, time.perf_counter() - start)
            return
        frames.append(item)
        pending.append(frame_record(item, model))
        now = time.perf_counter() - start
        if first is None or now - last_sent >= interval:
            first = now if first is None else first
            yield Progress(pending, len(frames), total, None, first, now)
            pending, last_sent = [], now


def player_payload(columns: list[dict], panels=("x_t", "x0", "eps"), mode: str = "full", **extra) -> dict:
    """What the JS player needs. ``columns``: [{"title", "frames": [frame_record...], "final"}]."""
    return {"mode": mode, "panels": list(panels), "columns": columns, **extra}


def thin_frames(records: list[dict], limit: int = MAX_PLAYER_FRAMES) -> list[dict]:
    return [records[i] for i in pick_frames(len(records), limit)] if len(records) > limit else records


def write_downloads(traj: Trajectory, model, directory: str | Path) -> tuple[str, str]:
    """GIF and MP4 of the run (x_t next to predicted x0, captioned with t and alpha-bar)."""
    to_rgb, _ = display_functions(model)
    directory = Path(directory)
    gif = write_output(traj, directory / "diffusion.gif", to_rgb=to_rgb)
    mp4 = write_output(traj, directory / "diffusion.mp4", to_rgb=to_rgb)
    return str(gif), str(mp4)


# ---- forward noising ------------------------------------------------------------------------------
@dataclass
class ForwardResult:
    labels: list[str]
    images: list[np.ndarray]  # (H, W, 3) uint8 per schedule, clipped for display
    noised: list[np.ndarray]  # (H, W, 3) float32 model space, unclipped (for the histogram)
    alpha_bars: list[float]
    pixel: tuple[int, int]
    arithmetic: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"pixel": {"x": self.pixel[0], "y": self.pixel[1]},
                "schedules": [{"schedule": lab, "alpha_bar": ab, **arith}
                              for lab, ab, arith in zip(self.labels, self.alpha_bars, self.arithmetic)]}


def check_schedule_names(names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names or []))
    if not names:
        raise InvalidInputError("Pick at least one noise schedule to compare.")
    if len(names) > 4:
        raise InvalidInputError(f"Pick at most 4 schedules (you picked {len(names)}).")
    return [validation.check_choice("noise schedule", n, SCHEDULES) for n in names]


def noise_for(shape: tuple[int, ...], seed: int, cache: dict | None = None) -> np.ndarray:
    """The one noise draw every schedule shares; cached in the caller's per-session dict."""
    key = (tuple(shape), int(seed))
    if cache is not None and cache.get("key") == key:
        return cache["eps"]
    eps = make_noise(shape, seed)
    if cache is not None:
        cache.update(key=key, eps=eps)
    return eps


def forward_outputs(rgb: np.ndarray, t, schedule_names, noise_seed=0, pixel=None,
                    cache: dict | None = None) -> ForwardResult:
    """The photo at step t under each schedule, all with the *same* eps, plus one pixel's arithmetic."""
    names = check_schedule_names(schedule_names)
    t = validation.check_timestep(t, 999)
    seed = validation.check_seed(noise_seed)
    x0 = to_model_space(rgb)  # (H, W, 3) in [-1, 1]
    eps = noise_for(x0.shape, seed, cache)
    schedules = [get_schedule(n) for n in names]
    noised = noise_with_schedules(x0, schedules, t, eps)
    h, w = rgb.shape[:2]
    px, py = (w // 2, h // 2) if pixel is None else pixel
    px = min(max(validation._as_int("Pixel x", px), 0), w - 1)
    py = min(max(validation._as_int("Pixel y", py), 0), h - 1)
    alpha_bars = [float(s.alphas_cumprod[t]) for s in schedules]
    arithmetic = []
    for ab in alpha_bars:
        pa = explain_pixel(rgb[py, px], ab, eps[py, px])
        arithmetic.append({"rgb": pa.rgb, "x0": pa.x0, "eps": pa.eps, "x_t": pa.x_t,
                           "displayed": pa.displayed, "clipped": pa.clipped, "lines": pa.lines()})
    return ForwardResult(names, [to_pixels(x) for x in noised], noised, alpha_bars, (px, py), arithmetic)


def arithmetic_markdown(result: ForwardResult, t: int) -> str:
    """The first schedule's pixel arithmetic in full, then one line per other schedule."""
    first = result.arithmetic[0]
    x, y = result.pixel
    out = [f"**Pixel at (x={x}, y={y}), step t = {t}, schedule *{result.labels[0]}*:**", ""]
    out += [f"    {line}" for line in first["lines"]]
    if len(result.labels) > 1:
        out += ["", "| schedule | alpha-bar | x_t (R, G, B) | on screen |", "|---|---|---|---|"]
        for lab, ab, a in zip(result.labels, result.alpha_bars, result.arithmetic):
            xt = ", ".join(f"{v:+.2f}" for v in a["x_t"])
            out.append(f"| {lab} | {ab:.4f} | ({xt}) | {tuple(a['displayed'])} |")
    return "\n".join(out)


def example_photos() -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []


# ---- compare --------------------------------------------------------------------------------------
def check_columns(columns) -> list[dict]:
    """Validate a list of {"scheduler", "schedule", "steps", "guidance"} dicts (1..4 of them)."""
    if not isinstance(columns, list) or not columns:
        raise InvalidInputError("Turn on at least one column to compare.")
    if len(columns) > MAX_COMPARE_COLUMNS:
        raise InvalidInputError(f"At most {MAX_COMPARE_COLUMNS} columns, got {len(columns)}.")
    out = []
    for c in columns:
        if not isinstance(c, dict):
            raise InvalidInputError(f"Each column is a dict of settings, got {c!r}.")
        out.append({
            "scheduler": validation.check_choice("scheduler", c.get("scheduler", "ddim"), SCHEDULERS),
            "schedule": validation.check_choice("noise schedule", c.get("schedule", "cosine"), SCHEDULES),
            "steps": validation.check_steps(c.get("steps", 50)),
            "guidance": validation.check_guidance(c.get("guidance", 1.0)),
        })
    return out


def column_title(c: dict) -> str:
    title = f"{c['scheduler']} · {c['schedule']} · {c['steps']} steps"
    return title + (f" · guidance {c['guidance']:g}" if c["guidance"] != 1.0 else "")


def run_compare(prompt: str, seed, model_name: str, columns,
                should_stop: Callable[[], bool] | None = None) -> tuple[list[Trajectory], list[dict], dict]:
    """Same prompt and seed, one run per column. Returns trajectories, player columns and a summary.

    The columns run in lockstep (``compare.iter_columns``): one model call per prompt per step for all
    of them. Same summary and final pictures as separate runs; batching changes float rounding only
    (~1e-5), so a rare intermediate frame's PNG may differ by one colour level. A column's "seconds"
    is when it finished.
    """
    from ..compare import iter_columns

    columns = check_columns(columns)
    model = load_model(model_name)
    to_rgb, _ = display_functions(model)
    settings_list = [make_settings(prompt, c["steps"], seed, c["guidance"], c["scheduler"], c["schedule"])
                     for c in columns]
    trajs = [Trajectory(frames=[], final=None, settings=s.__dict__) for s in settings_list]
    seconds = [0.0] * len(columns)
    start = time.perf_counter()
    for k, item in iter_columns(model, settings_list, should_stop=should_stop):
        if isinstance(item, Frame):
            trajs[k].frames.append(item)
        else:
            trajs[k].final = item
            seconds[k] = time.perf_counter() - start
    if any(t.final is None for t in trajs):
        raise InvalidInputError("The comparison was stopped before it finished.")
    player_cols, summary = [], {"prompt": prompt, "seed": seed, "model": model_name, "columns": []}
    for c, traj, sec in zip(columns, trajs, seconds):
        records = thin_frames([frame_record(f, model) for f in traj.frames])
        player_cols.append({"title": column_title(c), "frames": records,
                            "final": png_data_uri(to_rgb(traj.final))})
        col = {**c, "frames": len(traj.frames), "seconds": round(sec, 4),
               "log_snr": [frame_numbers(f)["log_snr"] for f in traj.frames]}
        if hasattr(model, "nearest"):
            col["nearest_training_image"] = model.dataset.label(model.nearest(traj.final)[0])
        summary["columns"].append(col)
    return trajs, player_cols, summary


def log_snr_columns(summary: dict) -> list[tuple[str, list[float]]]:
    """(title, log-SNR per step) for plots.log_snr_steps_plot; inf (pure noise/clean) clipped to +-25."""
    out = []
    for k, c in enumerate(summary["columns"]):
        values = [v if v is not None else (25.0 if i == len(c["log_snr"]) - 1 else -25.0)
                  for i, v in enumerate(c["log_snr"])]
        out.append((f"{k + 1}: {column_title(c)}", values))
    return out
