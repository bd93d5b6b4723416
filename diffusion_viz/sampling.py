"""The denoising loop, written out, recording everything a student might want to look at.

One loop serves every model and every diffusers scheduler. At each step:

    1. the scheduler says which noise level comes next (timestep t, alpha_bar);
    2. the model looks at x_t and predicts the *whole* noise (equivalently a whole clean picture x0);
       with classifier-free guidance it does so twice, with and without the prompt, and we extrapolate;
    3. the scheduler moves x_t part of the way towards that prediction.

Everything is recorded in the *model-input* space (variance preserving: x_t = sqrt(abar) x0 +
sqrt(1 - abar) eps), whatever internal scaling a scheduler uses, so frames from DDIM and Euler can be
compared side by side.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from . import validation
from .errors import UnsupportedOptionError
from .schedules import Schedule, get_schedule

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "lms": LMSDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "pndm": PNDMScheduler,
}

SCHEDULER_DESCRIPTIONS = {
    "ddim": "DDIM (Song et al. 2020): deterministic, good in 20-50 steps.",
    "ddpm": "DDPM (Ho et al. 2020): the original; adds fresh noise every step, needs many steps.",
    "euler": "Euler: follows the probability-flow ODE one straight step at a time.",
    "euler_a": "Euler ancestral: Euler plus fresh noise each step; results keep changing with steps.",
    "heun": "Heun: Euler with a correction; two model calls per step (2N-1 frames).",
    "lms": "Linear multistep (LMS): reuses the last few predictions.",
    "dpmpp_2m": "DPM-Solver++ 2M: second order, very good in 10-25 steps.",
    "unipc": "UniPC: predictor-corrector, very good in few steps.",
    "pndm": "PNDM / PLMS: Stable Diffusion's original default.",
}


class Denoiser(Protocol):
    """What the loop needs from a model. ``predict`` returns the model's native output."""

    sample_shape: tuple[int, ...]  # (C, H, W) of x_t, e.g. (3, 64, 64) pixels or (4, 64, 64) latents
    prediction_type: str  # "epsilon", "v_prediction" or "sample": what ``predict`` returns

    def encode_prompt(self, prompt: str): ...

    def predict(self, x_t: torch.Tensor, t: float, alpha_bar: float, conditioning) -> torch.Tensor: ...


def make_scheduler(
    name: str,
    schedule: Schedule | str = "scaled_linear",
    prediction_type: str = "epsilon",
    karras: bool = False,
):
    """A diffusers scheduler running our schedule (as ``trained_betas``), configured for honest previews.

    - ``clip_sample`` off: clipping x0 to [-1, 1] would hide what the model really predicts.
    - ``timestep_spacing="trailing"``: the first step is the noisiest training step (T-1), so sampling
      starts where training ended (Lin et al. 2024); diffusers' "leading" default skips it.
    - ``set_alpha_to_one`` on (DDIM, PNDM): the last step lands on the clean picture (alpha_bar = 1), not
      on the first training step's alpha_bar (0.957 for laplace: visibly noisy).
    """
    validation.check_choice("scheduler", name, SCHEDULERS)
    if isinstance(schedule, str):
        schedule = get_schedule(schedule)
    cls = SCHEDULERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    config = dict(
        num_train_timesteps=schedule.num_train_timesteps,
        trained_betas=schedule.betas_for_scheduler(),
        prediction_type=prediction_type,
        timestep_spacing="trailing",
    )
    if "clip_sample" in accepted:
        config["clip_sample"] = False
    if "set_alpha_to_one" in accepted:
        config["set_alpha_to_one"] = True
    if "skip_prk_steps" in accepted:
        config["skip_prk_steps"] = True  # PLMS as Stable Diffusion uses it: N + 1 frames
    if "algorithm_type" in accepted and name == "dpmpp_2m":
        config.update(algorithm_type="dpmsolver++", solver_order=2)
    if karras:
        if "use_karras_sigmas" not in accepted:
            raise UnsupportedOptionError(
                f"Karras sigma spacing is not available for the {name!r} scheduler. "
                f"Use one of: {', '.join(karras_schedulers())}."
            )
        config["use_karras_sigmas"] = True
    return cls(**config)


def build_scheduler(denoiser, settings: "SampleSettings"):
    """The scheduler for a run: a model that brings its own training schedule (a Stable Diffusion
    checkpoint: ``make_scheduler``) keeps it; every other model runs the settings' schedule."""
    own = getattr(denoiser, "make_scheduler", None)
    if own is not None:
        return own(settings.scheduler, settings.karras)
    schedule = get_schedule(settings.schedule, zero_terminal_snr=settings.zero_terminal_snr)
    return make_scheduler(settings.scheduler, schedule, denoiser.prediction_type, karras=settings.karras)


def planned_frame_count(scheduler_name: str, steps: int) -> int:
    """How many frames (model calls) a run will have: N for most, 2N-1 for Heun, N+1 for PNDM."""
    scheduler = make_scheduler(scheduler_name)
    start_scheduler(scheduler, validation.check_steps(steps))
    return len(scheduler.timesteps)


def karras_schedulers() -> list[str]:
    return [n for n, c in SCHEDULERS.items() if "use_karras_sigmas" in inspect.signature(c.__init__).parameters]


def start_scheduler(scheduler, steps: int):
    """``set_timesteps`` and begin at index 0.

    With Karras spacing on a schedule whose sigma_max is huge (cosine, sigmoid, laplace, zero terminal
    SNR) several noise levels round to the same integer timestep (999, 999, 998, ...). diffusers would
    look the first one up and pick its *second* occurrence, starting one step late and running off the
    end (IndexError in DPM-Solver++, AssertionError in UniPC). Our loops always start at the first level.
    """
    scheduler.set_timesteps(steps)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    return scheduler


def current_alpha_bar(scheduler, t) -> float:
    """alpha_bar of the noise level the scheduler is at now, read from the scheduler itself.

    Sigma-based schedulers (Euler, Heun, DPM-Solver, ...) interpolate between training steps and keep
    the exact level in ``sigmas[step_index]`` (with Karras spacing it lies between training steps, and
    the integer timestep the model is given is rounded); the others step on integer training steps.
    """
    if hasattr(scheduler, "sigmas") and hasattr(scheduler, "step_index"):
        index = scheduler.step_index
        if index is None:  # before the first step: where start_scheduler told it to begin
            index = getattr(scheduler, "begin_index", None)
        if index is None:
            index = scheduler.index_for_timestep(t)
        sigma = float(scheduler.sigmas[index])
        return 1.0 / (1.0 + sigma * sigma)
    return float(scheduler.alphas_cumprod[int(t)])


def level_in_steps(scheduler, alpha_bar: float) -> float:
    """The (fractional) training step whose noise level is ``alpha_bar``, interpolated in log-SNR.

    Equals the integer timestep for most samplers; with Karras spacing the level lies between training
    steps, and this says where (e.g. 998.6 while the model is told t = 999).
    """
    if not 0.0 < alpha_bar < 1.0:
        return 0.0 if alpha_bar >= 1.0 else float(len(scheduler.alphas_cumprod) - 1)
    minus_lam, steps = _minus_log_snr(scheduler)
    target = math.log(alpha_bar) - math.log1p(-alpha_bar)
    return float(np.interp(-target, minus_lam, steps))


def _minus_log_snr(scheduler):
    """-log SNR of every training step (increasing in t), computed once per scheduler."""
    cached = getattr(scheduler, "_dv_minus_log_snr", None)
    if cached is None:
        ab = scheduler.alphas_cumprod.double().numpy()
        cached = (-(np.log(ab) - np.log1p(-ab)), np.arange(len(ab), dtype=np.float64))
        scheduler._dv_minus_log_snr = cached
    return cached


def to_x0_and_eps(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: float, prediction_type: str):
    """Turn a model's native output into (predicted x0, predicted noise); reference formulas."""
    a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if prediction_type == "epsilon":
        return (x_t - s * output) / a, output
    if prediction_type == "v_prediction":
        return a * x_t - s * output, s * x_t + a * output
    if prediction_type == "sample":
        return output, (x_t - a * output) / s
    raise UnsupportedOptionError(f"Unknown prediction type {prediction_type!r}.")


class Frame:
    """One model evaluation, in model-input space. Arrays are (C, H, W) float32.

    Capture only keeps references to the step's tensors (nearly free); the arrays below are computed
    from them with the reference formulas the first time they are read.
    """

    def __init__(self, index: int, timestep: float, alpha_bar: float, prediction_type: str,
                 x_t: torch.Tensor, output: torch.Tensor,
                 output_cond: torch.Tensor | None = None, output_uncond: torch.Tensor | None = None,
                 level: float | None = None):
        self.index = index  # 0-based position in the run
        self.timestep = timestep  # the timestep the model is given (training-step units, 0 .. T-1)
        self.alpha_bar = alpha_bar  # the noise level the scheduler really uses at this step
        # where that level lies in training steps (fractional with Karras spacing); = timestep otherwise
        self.level = timestep if level is None else level
        self.prediction_type = prediction_type
        self._x_t, self._output = x_t, output
        self._cond, self._uncond = output_cond, output_uncond

    def _split(self, output):
        if output is None:
            return None, None
        x0, eps = to_x0_and_eps(output, self._x_t, self.alpha_bar, self.prediction_type)
        return _np(x0), _np(eps)

    @functools.cached_property
    def x_t(self) -> np.ndarray:
        """What the model sees."""
        return _np(self._x_t)

    @functools.cached_property
    def _guided(self):
        return self._split(self._output)

    @property
    def x0(self) -> np.ndarray:
        """What the model thinks the clean picture is (after guidance)."""
        return self._guided[0]

    @property
    def eps(self) -> np.ndarray:
        """The noise the model thinks was added (after guidance)."""
        return self._guided[1]

    @functools.cached_property
    def _with_prompt(self):
        return self._split(self._cond) if self._uncond is not None else (None, None)

    @functools.cached_property
    def _without_prompt(self):
        return self._split(self._uncond)

    # With classifier-free guidance: the predictions with and without the prompt (else None).
    x0_cond = property(lambda self: self._with_prompt[0])
    eps_cond = property(lambda self: self._with_prompt[1])
    x0_uncond = property(lambda self: self._without_prompt[0])
    eps_uncond = property(lambda self: self._without_prompt[1])

    @property
    def sigma(self) -> float:
        return math.sqrt((1.0 - self.alpha_bar) / self.alpha_bar) if self.alpha_bar > 0 else math.inf

    @property
    def snr(self) -> float:
        return self.alpha_bar / (1.0 - self.alpha_bar) if self.alpha_bar < 1 else math.inf

    @property
    def log_snr(self) -> float:
        return math.log(self.snr) if 0 < self.snr < math.inf else (math.inf if self.snr else -math.inf)

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, t={self.timestep:g}, alpha_bar={self.alpha_bar:.4g})"


@dataclass
class Trajectory:
    frames: list[Frame]
    final: np.ndarray  # (C, H, W) the finished sample
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SampleSettings:
    """Everything that determines a run; validated once, so a run can be cached and reproduced."""

    prompt: str = ""
    steps: int = 50
    scheduler: str = "ddim"
    schedule: str = "cosine"
    guidance: float = 1.0
    seed: int = 0
    karras: bool = False
    zero_terminal_snr: bool = False

    def validated(self) -> "SampleSettings":
        from .schedules import SCHEDULES

        return SampleSettings(
            prompt=validation.check_prompt(self.prompt),
            steps=validation.check_steps(self.steps),
            scheduler=validation.check_choice("scheduler", self.scheduler, SCHEDULERS),
            schedule=validation.check_choice("noise schedule", self.schedule, SCHEDULES),
            guidance=validation.check_guidance(self.guidance),
            seed=validation.check_seed(self.seed),
            karras=bool(self.karras),
            zero_terminal_snr=bool(self.zero_terminal_snr),
        )


def _accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def _np(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().to("cpu", torch.float32).numpy().copy()


def iter_frames(
    denoiser: Denoiser,
    settings: SampleSettings,
    *,
    capture: bool = True,
    should_stop: Callable[[], bool] | None = None,
    scheduler=None,
) -> Iterator[Frame | np.ndarray]:
    """Run the sampler, yielding a ``Frame`` per model call and finally the finished sample (ndarray).

    ``capture=False`` skips copying arrays (for measuring the cost of capture). ``should_stop`` lets a
    UI cancel between steps. Deterministic for a given seed.
    """
    s = settings.validated()
    if scheduler is None:
        scheduler = build_scheduler(denoiser, s)
    start_scheduler(scheduler, s.steps)

    generator = torch.Generator("cpu").manual_seed(s.seed)  # CPU: the same noise on every machine
    step_kwargs = {"generator": generator} if _accepts(scheduler.step, "generator") else {}
    cond = denoiser.encode_prompt(s.prompt)
    use_cfg = s.guidance != 1.0 and bool(s.prompt)
    uncond = denoiser.encode_prompt("") if use_cfg else None

    # Start from pure Gaussian noise, scaled to the scheduler's first noise level.
    x = torch.randn((1, *denoiser.sample_shape), generator=generator, dtype=torch.float32)
    x = x * scheduler.init_noise_sigma

    for i, t in enumerate(scheduler.timesteps):
        if should_stop is not None and should_stop():
            return
        x_in = scheduler.scale_model_input(x, t)  # the variance-preserving x_t the model sees
        alpha_bar = current_alpha_bar(scheduler, t)
        level = level_in_steps(scheduler, alpha_bar)

        if use_cfg and hasattr(denoiser, "predict_pair"):
            # Optional hook: both predictions as one batch, as diffusers' pipelines do (faster on a GPU,
            # and bit-identical to the pipeline; two batch-of-one calls differ from it by ~1e-5).
            out_uncond, out_cond = denoiser.predict_pair(x_in, float(t), alpha_bar, uncond, cond)
        else:
            out_cond = denoiser.predict(x_in, float(t), alpha_bar, cond)
            out_uncond = denoiser.predict(x_in, float(t), alpha_bar, uncond) if use_cfg else None
        if use_cfg:
            # Classifier-free guidance: start from the unconditional prediction and push past the
            # conditional one. Linear in the output, so it is the same for eps, v or x0 outputs.
            output = out_uncond + s.guidance * (out_cond - out_uncond)
        else:
            output = out_cond

        if capture:  # keep references only; schedulers return new tensors, they never write into these
            yield Frame(i, float(t), alpha_bar, denoiser.prediction_type, x_in, output,
                        out_cond if use_cfg else None, out_uncond if use_cfg else None, level)

        x = scheduler.step(output, t, x, **step_kwargs).prev_sample

    yield _np(x)


def sample(denoiser: Denoiser, settings: SampleSettings, **kwargs) -> Trajectory:
    """Run to the end and return all frames plus the finished sample."""
    frames, final = [], None
    for item in iter_frames(denoiser, settings, **kwargs):
        if isinstance(item, Frame):
            frames.append(item)
        else:
            final = item
    return Trajectory(frames=frames, final=final, settings=settings.validated().__dict__)
