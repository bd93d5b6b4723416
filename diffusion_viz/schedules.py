"""Noise schedules: how much signal is left at each training step.

A schedule is fully described by its betas; everything else follows:

    alpha_bar_t = prod_{s <= t} (1 - beta_s)        signal power left at step t
    sigma_t     = sqrt((1 - alpha_bar_t) / alpha_bar_t)   noise level in the "variance exploding" view
    SNR_t       = alpha_bar_t / (1 - alpha_bar_t)   signal-to-noise ratio; log-SNR is the fair x-axis

``t`` follows diffusers: 0 .. T-1, with t = 0 the lightest noising step (not the clean image).
Any schedule reaches every diffusers scheduler through ``trained_betas`` (see ``sampling.make_scheduler``).
Formulas and test numbers: shared/reference/diffusion-science.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import UnknownNameError

DEFAULT_TRAIN_STEPS = 1000
# The clip Chen (2023) uses for the sigmoid schedule; we use it for laplace too, whose ends are 0 and 1.
MIN_ALPHA_BAR = 1e-9
# diffusers' schedulers keep betas in float32, where the largest number below 1 is 1 - 2**-24. A last beta
# closer to 1 (zero terminal SNR: beta = 1; laplace: 1 - 2.3e-8) would become exactly 1 there, alpha_bar
# exactly 0 and sigma infinite. Every schedule caps its last beta at this value, so the numbers we plot
# are the numbers the samplers use (to float32 rounding).
MAX_BETA = 1.0 - 2.0**-24


def _betas_from_alpha_bar(alpha_bar: np.ndarray) -> np.ndarray:
    """Betas such that cumprod(1 - beta) == alpha_bar, starting from a clean image (alpha_bar = 1)."""
    previous = np.concatenate([[1.0], alpha_bar[:-1]])
    return 1.0 - alpha_bar / previous


def linear_betas(T: int) -> np.ndarray:
    """Ho et al. 2020: beta grows linearly from 1e-4 to 0.02 (tuned for T = 1000)."""
    return np.linspace(1e-4, 0.02, T, dtype=np.float64)


def scaled_linear_betas(T: int) -> np.ndarray:
    """Stable Diffusion (Rombach et al. 2022): linear in sqrt(beta). Never reaches pure noise."""
    return np.linspace(0.00085**0.5, 0.012**0.5, T, dtype=np.float64) ** 2


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal 2021, sec. 3.2: alpha_bar(t) = f(t)/f(0), f = cos^2(((t/T + s)/(1 + s)) pi/2).

    Betas are clipped at 0.999 so the last step keeps a sliver of signal (diffusers' squaredcos_cap_v2).
    """
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    u = np.arange(T + 1, dtype=np.float64) / T
    return np.minimum(1.0 - f(u[1:]) / f(u[:-1]), max_beta)


def sigmoid_alpha_bar(u: np.ndarray, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> np.ndarray:
    """Chen 2023, "On the importance of noise scheduling", Alg. 1: gamma(t) for continuous t in [0, 1].

    Not diffusers' "sigmoid" beta schedule (that one comes from GeoDiff and is a different curve).
    """
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)
    gamma = (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)
    return np.clip(gamma, MIN_ALPHA_BAR, 1.0)


def sigmoid_betas(T: int) -> np.ndarray:
    return _betas_from_alpha_bar(sigmoid_alpha_bar(np.arange(1, T + 1, dtype=np.float64) / T))


def laplace_log_snr(u: np.ndarray, mu: float = 0.0, b: float = 0.5) -> np.ndarray:
    """Hang et al. 2024: lambda(t) = mu - b sgn(0.5 - t) log(1 - 2|t - 0.5|), t in [0, 1].

    diffusers' "laplace" returns alpha = sqrt(SNR / (1 + SNR)), not alpha_bar, so we do not reuse it.
    """
    with np.errstate(divide="ignore"):
        return mu - b * np.sign(0.5 - u) * np.log(1.0 - 2.0 * np.abs(u - 0.5))


def laplace_betas(T: int) -> np.ndarray:
    log_snr = laplace_log_snr(np.arange(1, T + 1, dtype=np.float64) / T)
    alpha_bar = 1.0 / (1.0 + np.exp(-log_snr))  # sigmoid(lambda) = SNR / (1 + SNR)
    return _betas_from_alpha_bar(np.clip(alpha_bar, MIN_ALPHA_BAR, 1.0))


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2024, Alg. 1: shift and scale sqrt(alpha_bar) so the last step is pure noise.

    The first step keeps its value; the last gets alpha_bar = 0 (beta = 1): training then sees pure noise,
    which is what sampling starts from.
    """
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    return _betas_from_alpha_bar(sqrt_ab**2)


SCHEDULES = {
    "linear": linear_betas,
    "scaled_linear": scaled_linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
    "laplace": laplace_betas,
}

SCHEDULE_DESCRIPTIONS = {
    "linear": "Linear betas (Ho et al. 2020, DDPM). Destroys small images early: a third of its steps keep "
              "less than 1 % of the signal's power (ᾱ < 0.01).",
    "scaled_linear": "Stable Diffusion's schedule. Gentle: the last step still keeps √ᾱ = 0.068 of the signal's "
                     "amplitude (ᾱ = 0.47 % of its power): it never reaches pure noise.",
    "cosine": "Cosine (Nichol & Dhariwal 2021). Removes signal gradually: 7 % of its steps have ᾱ < 0.01 "
              "(linear: 33 %); made for small images.",
    "sigmoid": "Sigmoid (Chen 2023). About as many steps near log-SNR 0 as cosine (30 % of them); its "
               "log-SNR spans a narrower range: +8.1 to -8.1 before the clipped last step (cosine +10.1 to -12.9).",
    "laplace": "Laplace (Hang et al. 2024). Concentrates steps around SNR = 1 (87 % of them have log-SNR "
               "within ±1), where learning is hardest; its first step is already noisy (ᾱ = 0.957).",
}


@dataclass(frozen=True)
class Schedule:
    """A noise schedule as arrays over the T training steps (float64 for honest numbers)."""

    name: str
    betas: np.ndarray = field(repr=False)
    zero_terminal_snr: bool = False

    @property
    def num_train_timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    @property
    def sigmas(self) -> np.ndarray:
        ab = self.alphas_cumprod
        with np.errstate(divide="ignore"):
            return np.sqrt((1.0 - ab) / ab)

    @property
    def snr(self) -> np.ndarray:
        ab = self.alphas_cumprod
        with np.errstate(divide="ignore"):
            return ab / (1.0 - ab)

    @property
    def log_snr(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.snr)

    @property
    def label(self) -> str:
        return self.name + (" + zero terminal SNR" if self.zero_terminal_snr else "")

    def alpha_bar(self, t) -> np.ndarray | float:
        """alpha_bar at (possibly fractional) training step t, interpolated in log-SNR."""
        ab = self.alphas_cumprod
        t = np.asarray(t, dtype=np.float64)
        if np.all(t == np.round(t)):
            out = ab[t.astype(int)]
        else:
            with np.errstate(divide="ignore"):
                lam = np.interp(t, np.arange(len(ab)), np.log(ab) - np.log1p(-ab))
            out = 1.0 / (1.0 + np.exp(-lam))
        return float(out) if out.ndim == 0 else out

    def betas_for_scheduler(self) -> list[float]:
        """Betas to hand a diffusers scheduler as ``trained_betas``: exactly ours (see ``MAX_BETA``), so
        the alpha_bar a sampler records equals ``alphas_cumprod`` up to float32 rounding."""
        return self.betas.tolist()


def get_schedule(name: str, T: int = DEFAULT_TRAIN_STEPS, zero_terminal_snr: bool = False) -> Schedule:
    """Build a named schedule over T training steps, optionally rescaled to zero terminal SNR."""
    if name not in SCHEDULES:
        raise UnknownNameError("noise schedule", name, SCHEDULES)
    if not isinstance(T, int) or isinstance(T, bool) or not 2 <= T <= 10_000:
        raise UnknownNameError("number of training steps", T, ["an integer in 2..10000"])
    betas = np.minimum(SCHEDULES[name](T), MAX_BETA)
    if zero_terminal_snr:
        betas = np.minimum(rescale_zero_terminal_snr(betas), MAX_BETA)
    return Schedule(name=name, betas=betas, zero_terminal_snr=zero_terminal_snr)


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: n noise levels from sigma_max down to sigma_min, dense at low noise.

    Sampling-time spacing only (the schedule itself is unchanged); diffusers applies it with
    ``use_karras_sigmas=True`` (see ``sampling.make_scheduler(..., karras=True)``).
    """
    ramp = np.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho
