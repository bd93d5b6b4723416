"""The round trip: noise a photo to step t with the forward formula, then let the model bring it back.

Both halves of diffusion in one experiment (SDEdit; "img2img" in the web UIs). For each chosen noise
level the photo is noised in one jump,

    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps      (the same eps as the Forward tab's seed)

and the sampler runs the rest of the run from there: a start at step k of N skips the first k steps.
A little noise and the photo comes back; more, and the model keeps its layout and colours and redraws
the rest; from pure noise nothing of the photo is left. The web UIs call this "denoising strength" and
silently skip steps; here each column says where it starts (t, alpha_bar, % of the signal's power left,
step k of N).

Every column runs in one lockstep loop (``compare.iter_columns``), each frame captured as in Denoise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import validation
from .compare import MAX_COLUMNS, Column, iter_columns
from .errors import InvalidInputError
from .forward import add_noise, make_noise, to_model_space
from .images import square_crop
from .sampling import Frame, SampleSettings, Trajectory, build_scheduler, current_alpha_bar, start_scheduler

DEFAULT_LEVELS = (200, 400, 600, 800, 999)


def photo_to_x0(model, rgb: np.ndarray) -> np.ndarray:
    """The photo as the model's clean sample x0: pixels in [-1, 1] at the model's size (centre crop), or,
    for a latent model, the VAE's encoding of it."""
    encode = getattr(model, "encode_image", None)
    if encode is not None:
        return np.asarray(encode(rgb), dtype=np.float32)
    _, h, w = model.sample_shape
    if h != w:
        raise InvalidInputError("This model's pictures are not square; the round trip needs a square model.")
    return to_model_space(square_crop(np.asarray(rgb, dtype=np.uint8), h)).transpose(2, 0, 1).copy()


def training_emoji(model, name: str) -> np.ndarray:
    """A training emoji as a start, RGB uint8, at the model's own size for the emoji models (no resampling:
    the exact model gets back exactly its own picture) and at 64 px for the rest."""
    from .data import load_emoji

    c, h, w = model.sample_shape
    data = load_emoji(h if c == 3 and h == w and h in (32, 64) else 64)
    names = [str(n) for n in data.names]
    if name not in names:
        raise InvalidInputError(f"There is no training emoji called {name!r}.")
    return data.images[names.index(name)]


def start_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """eps for the noised start, (C, H, W). For 3-channel pictures it is the Forward tab's draw for that
    seed ((H, W, 3), channels last) turned channels-first, so x_t here equals x_t there at the same size."""
    c, h, w = shape
    if c == 3:
        return make_noise((h, w, 3), seed).transpose(2, 0, 1).copy()
    return make_noise(tuple(shape), seed)


@dataclass(frozen=True)
class Start:
    """Where one column of the round trip begins."""

    requested: int  # the t asked for
    step: int  # k: the run starts at step k of N (0-based; the first k steps are skipped)
    timestep: float  # the timestep of that step, the one the model is given first
    alpha_bar: float  # the noise level the scheduler uses there

    @property
    def power_left(self) -> float:
        """Share of the photo's signal *power* left in x_t (alpha_bar); its amplitude is sqrt(alpha_bar)."""
        return self.alpha_bar

    @property
    def amplitude_left(self) -> float:
        return math.sqrt(self.alpha_bar)


def plan_start(model, settings: SampleSettings, t: int) -> Start:
    """The step of the run whose timestep is the first at or below t (the run's step timesteps are what a
    start can land on), and the noise level the scheduler uses there."""
    scheduler = start_scheduler(build_scheduler(model, settings), settings.steps)
    order = getattr(scheduler, "order", 1)
    steps = list(scheduler.timesteps)[::order]
    k = next((i for i, ts in enumerate(steps) if float(ts) <= t), len(steps) - 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(k * order)
    timestep = scheduler.timesteps[k * order]
    return Start(int(t), k, float(timestep), current_alpha_bar(scheduler, timestep))


@dataclass
class RoundTrip:
    x0: np.ndarray  # (C, H, W) the photo as the model's clean sample
    eps: np.ndarray  # (C, H, W) the one noise draw every column starts from
    starts: list[Start]
    starts_x: list[np.ndarray]  # the noised photo each column starts from, x_t in model-input space
    runs: list[Trajectory]

    def summary(self) -> list[dict]:
        return [{"t": s.requested, "start_step": s.step, "start_timestep": s.timestep,
                 "alpha_bar": s.alpha_bar, "power_left_pct": 100 * s.power_left,
                 "amplitude_left_pct": 100 * s.amplitude_left, "steps_run": len(r.frames),
                 "rms_to_input": float(np.sqrt(np.mean((r.final - self.x0) ** 2)))}
                for s, r in zip(self.starts, self.runs)]


def check_levels(levels) -> list[int]:
    levels = [validation.check_timestep(t, 999) for t in (levels or [])]
    if not 1 <= len(levels) <= MAX_COLUMNS:
        raise InvalidInputError(f"Pick 1 to {MAX_COLUMNS} noise levels, got {len(levels)}.")
    return levels


def round_trip(model, rgb: np.ndarray, settings: SampleSettings, levels=DEFAULT_LEVELS, noise_seed: int | None = None,
               should_stop=None) -> RoundTrip:
    """Noise the photo to each level in ``levels`` (timesteps 0..999) with one eps, then denoise each from
    there with the settings' prompt, sampler, schedule and steps. ``noise_seed`` (default: the settings'
    seed) draws eps; the settings' seed drives the sampler's own random draws."""
    s = settings.validated()
    levels = check_levels(levels)
    seed = s.seed if noise_seed is None else validation.check_seed(noise_seed)
    x0 = photo_to_x0(model, rgb)
    eps = start_noise(x0.shape, seed)
    starts = [plan_start(model, s, t) for t in levels]
    starts_x = [add_noise(x0, st.alpha_bar, eps).astype(np.float32) for st in starts]
    plans = [Column(s, start_step=st.step, start_x=x) for st, x in zip(starts, starts_x)]
    frames: list[list[Frame]] = [[] for _ in plans]
    finals: list[np.ndarray | None] = [None] * len(plans)
    for col, item in iter_columns(model, plans, should_stop=should_stop):
        if isinstance(item, Frame):
            frames[col].append(item)
        else:
            finals[col] = item
    if any(f is None for f in finals):
        from .errors import Stopped

        raise Stopped("The round trip was stopped before it finished.")
    runs = [Trajectory(f, final, s.__dict__) for f, final in zip(frames, finals)]
    return RoundTrip(x0, eps, starts, starts_x, runs)
