"""What the app computes, without gradio: every handler is a thin wrapper around these functions.

Kept free of UI code so it can be tested directly and reused by the API, the benchmark and scripts.
Images go to the browser as small native-size PNG data URIs (64x64 for the emoji models); the browser
upscales them with ``image-rendering: pixelated``, so a projector shows crisp squares and the server
never resizes anything.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from .. import limits, validation
from . import atlas
from ..data import nearest_emoji
from ..errors import InvalidInputError, Stopped
from ..forward import explain_pixel, make_noise, noise_with_schedules, to_model_space, to_pixels
from ..models.registry import DEFAULT_MODEL, MODELS, get_model
from ..render import image_to_rgb, noise_to_rgb, pick_frames, write_output
from ..sampling import SCHEDULERS, Frame, SampleSettings, Trajectory, iter_frames
from ..schedules import SCHEDULES, get_schedule

DEFAULTS = dict(prompt="cat", steps=50, scheduler="ddim", schedule="cosine", guidance=1.0, seed=0,
                model=DEFAULT_MODEL)
MAX_PLAYER_FRAMES = 200  # longer runs are thinned for the player (first and last kept): keeps the page light
STREAM_INTERVAL_S = 0.08  # during sampling, send new frames to the browser at most this often
# The first frames go out once the run has taken this long: a run that is over sooner (the exact emoji
# model takes ~20 ms for 50 steps) arrives as one message, not two; a slower one starts streaming then.
FIRST_SEND_S = 0.04
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


def hidden_column(frames: list[Frame], model, picture) -> dict:
    """A column whose every picture is ``picture(h, w)`` (the safety checker's notice), with the frames'
    numbers: what a flagged Stable Diffusion run shows instead of its previews."""
    h, w = model.sample_shape[-2:]
    notice = np.asarray(picture(h, w), dtype=np.uint8)
    stack = np.repeat(notice[None], len(frames), axis=0)
    strips = {"size": [h, w], "count": len(frames), "delta": True, "x0": atlas.strip_uri(stack),
              "eps": atlas.strip_uri(stack), "x_t": atlas.strip_uri(stack),
              "predict": {"offset": [127.5] * 3, "eps_scale": 1.0}}
    return {"title": "", "frames": [frame_numbers(f) for f in frames], "strips": [strips] if frames else [],
            "final": png_data_uri(picture(h, w))}


def frame_numbers(frame: Frame) -> dict:
    """One step's numbers, all from the noise level the scheduler used: ``t`` is the timestep the model is
    given; ``level`` where that noise level lies in training steps (it differs from t only with Karras
    spacing); ``alpha_bar`` the share of the signal's power left."""
    return {"index": frame.index, "t": round(frame.timestep, 3), "level": round(frame.level, 3),
            "alpha_bar": frame.alpha_bar, "snr": _finite(frame.snr), "log_snr": _finite(frame.log_snr),
            "sigma": _finite(frame.sigma)}


def player_column(frames: list[Frame], model, title: str = "", final: str | None = None,
                  chunks: list[dict] | None = None) -> dict:
    """Frames for the player (and the API, and the cache): their numbers, and their pictures as PNG strips,
    one per panel (ui/atlas.py: x0 and noise exact, x_t derived in the browser within one level).
    ``strips`` is a list of chunks that follow each other: a streamed run passes the chunks it already
    sent (``chunks``) instead of encoding every frame twice."""
    col = {"title": title, "frames": [frame_numbers(f) for f in frames]}
    if chunks is not None and sum(c["count"] for c in chunks) == len(frames):
        col["strips"] = chunks
    elif frames:
        col["strips"] = [atlas.encode_frames(frames, model, display_functions(model))]
    else:
        col["strips"] = []
    if final is not None:
        col["final"] = final
    return col


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


def escape_text(text: str) -> str:
    """User text made inert for Markdown *and* HTML: every ASCII punctuation character becomes a numeric
    character reference (``<`` -> ``&#60;``), which both read as that plain character and never as syntax.
    So no tag, link or image from a prompt ever renders (an ``![x](http://...)`` would make every browser
    that shows it fetch that address)."""
    return "".join(f"&#{ord(ch)};" if ch.isascii() and not ch.isalnum() and ch not in " " else ch
                   for ch in str(text))


def conditioning_markdown(info: dict) -> str:
    if info["kind"] == "unconditional":
        return ("**Empty prompt:** no prompt at all (unconditional): every emoji is equally likely "
                "beforehand, and the seed alone decides the picture.")
    if info["kind"] == "emoji":
        rows = "\n".join(f"| {escape_text(m['label'])} | {m['weight'] * 100:.1f}&nbsp;% |" for m in info["matches"])
        return (f"**What “{escape_text(info['prompt'])}” points to:** the model's *prior* over its emoji, "
                "before any noise is seen. It is not the chance of the result: the seed, the sampler and the "
                f"schedule decide which one wins.\n\n| emoji | prior |\n|---|---|\n{rows}")
    if info["kind"] == "tokens":
        return ("**The tokens the text encoder reads:** " + " · ".join(f"`{t}`" for t in info["tokens"]))
    return ""


# ---- denoising ------------------------------------------------------------------------------------
def make_settings(prompt, steps, seed, guidance, scheduler, schedule) -> SampleSettings:
    """Validate every control value once, within this server's limits (limits.py); raises
    InvalidInputError with a friendly message."""
    steps = limits.check_steps(steps)
    return SampleSettings(prompt=prompt or "", steps=steps, scheduler=scheduler, schedule=schedule,
                          guidance=guidance, seed=seed).validated()


def run_cost(settings: SampleSettings) -> int:
    """Model calls of one run: frames (Heun 2N-1, PNDM N+1), twice with classifier-free guidance."""
    from ..sampling import planned_frame_count

    guided = settings.guidance != 1.0 and bool(settings.prompt)
    return limits.model_calls(planned_frame_count(settings.scheduler, settings.steps), guided)


def check_cost(settings_list: list[SampleSettings], what: str = "This run") -> int:
    """The request's model calls, refused past the per-request limit before any work starts."""
    return limits.check_cost(sum(run_cost(s) for s in settings_list), what)


def load_model(name: str):
    validation.check_choice("model", name, MODELS)
    return get_model(name)


def run_summary(traj: Trajectory, model_name: str, model, info: dict, seconds: float) -> dict:
    """The JSON an API client gets: settings, per-step numbers and what the prompt pointed to."""
    summary = {"model": model_name, "settings": traj.settings, "frames": len(traj.frames),
               "seconds": round(seconds, 4), "conditioning": info,
               "steps": [frame_numbers(f) for f in traj.frames]}
    near = nearest_emoji(traj.final) if traj.final is not None else None
    if near is not None:  # any model that draws emoji-sized pictures (not a latent)
        summary["nearest_training_image"] = {"label": near.label, "name": near.name, "rms": near.rms}
    return summary


# ---- candidates (the exact model's guess as a weighted average of training emoji) -----------------
CANDIDATE_THUMB = 32  # px: the thumbnails under the player (upscaled crisp by the browser)


def candidate_view(model, frames: list[Frame], prompt: str) -> dict | None:
    """For the player: per frame the top emoji and their weights plus exp(entropy); one thumbnail per emoji
    that appears. None for models without a candidate list (anything but the exact emoji model)."""
    from ..candidates import frame_candidates, has_candidates

    if not has_candidates(model) or not frames:
        return None
    per_frame = frame_candidates(model, frames, prompt)
    used = sorted({i for c in per_frame for i, w in c["top"] if w >= 0.005})
    return {"frames": [{"cands": [[i, round(w, 4)] for i, w in c["top"] if w >= 0.005],
                        "neff": round(c["effective"], 3)} for c in per_frame],
            "images": {str(i): _thumbnail(i) for i in used},
            "names": {str(i): str(model.dataset.names[i]) for i in used},
            "support": int(model.encode_prompt(prompt).support.numel())}


@functools.lru_cache(maxsize=2048)
def _thumbnail(index: int) -> str:
    """A training emoji as a small PNG data URI (made once per emoji and process)."""
    from ..data import load_emoji

    return png_data_uri(load_emoji(CANDIDATE_THUMB).images[index])


def add_candidates(column: dict, view: dict | None) -> dict:
    """Put a candidate_view into a player column (its frames get "cands" and "neff")."""
    if view is not None:
        for f, c in zip(column["frames"], view["frames"]):
            f.update(c)
        column["cand_images"], column["cand_names"], column["cand_support"] = \
            view["images"], view["names"], view["support"]
    return column


def candidates_summary(view: dict | None, frames: list[Frame]) -> list[dict] | None:
    """The API's per-step candidates: names and posterior weights (largest first), effective count."""
    if view is None:
        return None
    return [{"index": f.index, "effective": c["neff"],
             "top": [{"name": view["names"][str(i)], "weight": w} for i, w in c["cands"]]}
            for f, c in zip(frames, view["frames"])]


@dataclass
class Progress:
    """One streaming update of a run: new frames since the last update, or the finished run."""

    new_frames: list[Frame]
    done: int
    total: int
    trajectory: Trajectory | None = None
    first_frame_s: float | None = None
    elapsed_s: float = 0.0


def stream_run(model, settings: SampleSettings, should_stop: Callable[[], bool] | None = None,
               interval: float = STREAM_INTERVAL_S, first_send: float = FIRST_SEND_S) -> Iterator[Progress]:
    """Sample, yielding batches of frames: the frames so far once the run has taken ``first_send`` s, then
    every ``interval`` s, and finally the finished run."""
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
        pending.append(item)
        now = time.perf_counter() - start
        if (first is None and now >= first_send) or (first is not None and now - last_sent >= interval):
            first = now if first is None else first
            yield Progress(pending, len(frames), total, None, first, now)
            pending, last_sent = [], now


def player_payload(columns: list[dict], panels=("x_t", "x0", "eps"), mode: str = "full", **extra) -> dict:
    """What the JS player needs. ``columns``: [player_column(...), ...] (see player.py for the format)."""
    return {"mode": mode, "panels": list(panels), "columns": columns, **extra}


def thin_frames(frames: list, limit: int = MAX_PLAYER_FRAMES) -> list:
    return [frames[i] for i in pick_frames(len(frames), limit)] if len(frames) > limit else frames


def download_name(model_name: str, settings: SampleSettings) -> str:
    """A file name that says what the file is: cat-emoji-exact-ddim-cosine-50steps-seed0."""
    def slug(text: str, limit: int) -> str:
        return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:limit].strip("-")

    model = slug(Path(model_name).name if os.sep in str(model_name) else model_name, 40) or "model"
    return "-".join([slug(settings.prompt, 40) or "no-prompt", model, settings.scheduler, settings.schedule,
                     f"{settings.steps}steps", f"seed{settings.seed}"]
                    + ([f"guidance{settings.guidance:g}"] if settings.guidance != 1.0 else []))


def write_downloads(traj: Trajectory, model, name: str = "diffusion", cache_dir: str | Path | None = None
                    ) -> tuple[str, str]:
    """GIF and MP4 of the run (x_t next to predicted x0, captioned with t and alpha-bar), stored once in
    gradio's cache folder (``cache_dir``; default: gradio's upload folder), where gradio would copy any
    file a handler returns: the scratch copies are removed at once."""
    import tempfile

    from gradio.processing_utils import save_file_to_cache
    from gradio.utils import get_upload_folder

    to_rgb, _ = display_functions(model)
    # latent models: the finished picture is the VAE's decode (checked), not the cheap preview
    final_rgb = model.decode(traj.final) if hasattr(model, "decode") and traj.final is not None else None
    cache_dir = str(cache_dir or get_upload_folder())
    with tempfile.TemporaryDirectory(prefix="dv-downloads-") as scratch:
        paths = [write_output(traj, Path(scratch) / f"{name}{suffix}", to_rgb=to_rgb, final_rgb=final_rgb)
                 for suffix in (".gif", ".mp4")]
        gif, mp4 = (save_file_to_cache(p, cache_dir) for p in paths)
    return gif, mp4


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
    """Validate a list of {"scheduler", "schedule", "steps", "guidance"} dicts (1 to LIMITS.columns)."""
    if not isinstance(columns, list) or not columns:
        raise InvalidInputError("Turn on at least one column to compare.")
    limits.check_columns(len(columns))
    out = []
    for c in columns:
        if not isinstance(c, dict):
            raise InvalidInputError(f"Each column is a dict of settings, got {c!r}.")
        out.append({
            "scheduler": validation.check_choice("scheduler", c.get("scheduler", "ddim"), SCHEDULERS),
            "schedule": validation.check_choice("noise schedule", c.get("schedule", "cosine"), SCHEDULES),
            "steps": limits.check_steps(c.get("steps", 50)),
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
    settings_list = [make_settings(prompt, c["steps"], seed, c["guidance"], c["scheduler"], c["schedule"])
                     for c in columns]
    check_cost(settings_list, "This comparison")
    model = load_model(model_name)
    to_rgb, _ = display_functions(model)
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
        raise Stopped("The comparison was stopped before it finished.")
    player_cols, summary = [], {"prompt": prompt, "seed": seed, "model": model_name, "columns": []}
    for c, traj, sec in zip(columns, trajs, seconds):
        player_cols.append(player_column(thin_frames(traj.frames), model, column_title(c),
                                         png_data_uri(to_rgb(traj.final))))
        col = {**c, "frames": len(traj.frames), "seconds": round(sec, 4),
               "log_snr": [frame_numbers(f)["log_snr"] for f in traj.frames]}
        near = nearest_emoji(traj.final)
        if near is not None:
            col["nearest_training_image"] = near.label
            col["nearest_rms"] = near.rms
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
