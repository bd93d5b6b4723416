"""The forward process: how training makes noisy pictures, one closed-form jump to any step.

    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps,   eps ~ N(0, I)   (unbounded Gaussian)

Pixels are first mapped from 0..255 to [-1, 1]. The signal is *shrunk* before the noise is added, so
the total variance stays ~1 ("variance preserving"); values leave [-1, 1] and a display must clip them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError
from .schedules import Schedule


def to_model_space(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 in [-1, 1]: x = p / 127.5 - 1."""
    return np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0


def to_pixels(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 0..255 for display. Values outside [-1, 1] are clipped (only for display)."""
    return np.clip(np.round((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """One standard-normal noise draw. Reuse it across schedules so frames differ only by the schedule."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def add_noise(x0: np.ndarray, alpha_bar: float, eps: np.ndarray) -> np.ndarray:
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, for images of any shape."""
    if x0.shape != eps.shape:
        raise InvalidInputError(f"Image shape {x0.shape} and noise shape {eps.shape} differ.")
    if not 0.0 <= alpha_bar <= 1.0 or not math.isfinite(alpha_bar):
        raise InvalidInputError(f"alpha_bar must be in [0, 1], got {alpha_bar}.")
    return math.sqrt(alpha_bar) * x0 + math.sqrt(1.0 - alpha_bar) * eps


def noise_with_schedules(x0: np.ndarray, schedules: list[Schedule], t: int, eps: np.ndarray) -> list[np.ndarray]:
    """The same image at step t under several schedules, all with the *same* eps."""
    out = []
    for schedule in schedules:
        if not 0 <= t < schedule.num_train_timesteps:
            raise InvalidInputError(f"t must be between 0 and {schedule.num_train_timesteps - 1}, got {t}.")
        out.append(add_noise(x0, float(schedule.alphas_cumprod[t]), eps))
    return out


@dataclass(frozen=True)
class PixelArithmetic:
    """One pixel through the forward process, every number shown."""

    rgb: tuple[int, int, int]  # 0..255
    x0: tuple[float, float, float]  # in [-1, 1]
    alpha_bar: float
    eps: tuple[float, float, float]
    x_t: tuple[float, float, float]  # unbounded
    displayed: tuple[int, int, int]  # 0..255 after clipping to [-1, 1]
    clipped: tuple[bool, bool, bool]  # which channels left [-1, 1]

    def lines(self) -> list[str]:
        a, s = math.sqrt(self.alpha_bar), math.sqrt(1 - self.alpha_bar)
        f = lambda v: "(" + ", ".join(f"{x:+.3f}" for x in v) + ")"  # noqa: E731
        return [
            f"1. Pixel colour (R, G, B) = {self.rgb}, each 0..255",
            f"2. Map to [-1, 1] with p / 127.5 - 1:  x0 = {f(self.x0)}",
            f"3. alpha_bar = {self.alpha_bar:.4f}: keep sqrt(alpha_bar) = {a:.3f} of the signal, "
            f"add sqrt(1 - alpha_bar) = {s:.3f} times the noise",
            f"4. Noise eps (Gaussian, unbounded) = {f(self.eps)}",
            f"5. x_t = {a:.3f} * x0 + {s:.3f} * eps = {f(self.x_t)}",
            f"6. On screen: clip to [-1, 1], map back to 0..255 = {self.displayed}"
            + ("  (clipped: " + ", ".join(c for c, k in zip("RGB", self.clipped) if k) + ")"
               if any(self.clipped) else "  (nothing clipped)"),
        ]


def explain_pixel(rgb, alpha_bar: float, eps) -> PixelArithmetic:
    rgb = tuple(int(v) for v in rgb)
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise InvalidInputError(f"A pixel is three values in 0..255, got {rgb}.")
    x0 = to_model_space(np.array(rgb))
    eps = np.asarray(eps, dtype=np.float32).reshape(3)
    x_t = add_noise(x0, alpha_bar, eps)
    return PixelArithmetic(
        rgb=rgb,
        x0=tuple(float(v) for v in x0),
        alpha_bar=float(alpha_bar),
        eps=tuple(float(v) for v in eps),
        x_t=tuple(float(v) for v in x_t),
        displayed=tuple(int(v) for v in to_pixels(x_t)),
        clipped=tuple(bool(abs(v) > 1.0) for v in x_t),
    )
