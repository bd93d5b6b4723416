"""Several runs side by side (same prompt and seed; other schedule, sampler, steps or guidance).

Each column is exactly the run ``sampling.iter_frames`` would make on its own: same starting noise,
same scheduler, same random draws. The difference is cost: at each step, the columns' inputs go to the
model together, one call for all columns (per prompt, with and without), when the model accepts one
noise level per row (``supports_batched_alpha_bar``). The exact emoji denoiser is limited by reading
its dataset, so four columns cost about as much as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .sampling import (Frame, SampleSettings, Trajectory, _accepts, _np, build_scheduler, current_alpha_bar,
                       level_in_steps, start_scheduler)

MAX_COLUMNS = 8  # the library's ceiling; a server allows limits.LIMITS.columns (4 by default)


@dataclass(frozen=True)
class Column:
    """One column of an experiment: a run's settings, and where it departs from the plain run.

    - ``start_step``/``start_x``: begin at step k of the run from a given x_t (model-input space, at that
      step's noise level) instead of pure noise at step 0: the round trip (SDEdit, img2img).
    - ``switch_step``/``switch_prompt``: from step k on, the model is given another prompt (when is the
      picture decided?).
    - ``reseed_step``/``reseed``: from step k on, the sampler's fresh noise comes from another seed (only
      samplers that draw noise at every step, DDPM and Euler ancestral, have any).
    """

    settings: SampleSettings
    start_step: int = 0
    start_x: np.ndarray | None = None
    switch_step: int | None = None
    switch_prompt: str = ""
    reseed_step: int | None = None
    reseed: int = 0


class _Column:
    """One run's scheduler, random generator and current sample."""

    def __init__(self, denoiser, plan: Column):
        self.plan = plan
        self.settings = s = plan.settings.validated()
        self.scheduler = start_scheduler(build_scheduler(denoiser, s), s.steps)
        self.generator = torch.Generator("cpu").manual_seed(s.seed)
        self.use_cfg = s.guidance != 1.0 and bool(s.prompt or plan.switch_prompt)
        x = torch.randn((1, *denoiser.sample_shape), generator=self.generator, dtype=torch.float32)
        self.x = x * self.scheduler.init_noise_sigma
        # a column that starts late skips the first steps (Heun's list has two entries per step after the first)
        begin = plan.start_step * getattr(self.scheduler, "order", 1)
        if begin and hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(begin)
        self.timesteps = list(self.scheduler.timesteps)[begin:]
        if plan.start_x is not None:
            # the scheduler's own sample space differs from x_t by the factor scale_model_input applies
            start = torch.as_tensor(np.asarray(plan.start_x, dtype=np.float32))[None]
            scale = self.scheduler.scale_model_input(torch.ones(1), self.timesteps[0])
            self.x = start / scale
        self.step_kwargs = {"generator": self.generator} if _accepts(self.scheduler.step, "generator") else {}
        # LMS takes its order from its position in the whole run (min(index + 1, 4)); a late start has
        # fewer past predictions than that, so it is told how many it has
        self.count_order = plan.start_step > 0 and _accepts(self.scheduler.step, "order")

    def step_kwargs_at(self, i: int) -> dict:
        return {**self.step_kwargs, "order": min(i + 1, 4)} if self.count_order else self.step_kwargs

    def prompt_at(self, i: int) -> str:
        """The prompt the model is given at position i of this column's run."""
        p = self.plan
        return p.switch_prompt if p.switch_step is not None and self.plan.start_step + i >= p.switch_step \
            else self.settings.prompt

    def reseed_if_due(self, i: int) -> None:
        p = self.plan
        if p.reseed_step is not None and p.start_step + i == p.reseed_step:
            self.generator.manual_seed(p.reseed)


def _predict_groups(denoiser, requests):
    """requests: list of (prompt, x_in, t, alpha_bar). One model call per prompt when the model allows."""
    outputs = [None] * len(requests)
    batched = getattr(denoiser, "supports_batched_alpha_bar", False)
    by_prompt: dict[str, list[int]] = {}
    for k, (prompt, *_rest) in enumerate(requests):
        by_prompt.setdefault(prompt, []).append(k)
    for prompt, rows in by_prompt.items():
        cond = denoiser.encode_prompt(prompt)
        if batched and len(rows) > 1:
            x = torch.cat([requests[k][1] for k in rows])
            t = torch.tensor([float(requests[k][2]) for k in rows])
            ab = torch.tensor([requests[k][3] for k in rows], dtype=torch.float64)
            out = denoiser.predict(x, t, ab, cond)
            for j, k in enumerate(rows):
                outputs[k] = out[j : j + 1]
        else:
            for k in rows:
                _, x, t, ab = requests[k]
                outputs[k] = denoiser.predict(x, float(t), ab, cond)
    return outputs


def iter_columns(
    denoiser, settings_list: list[SampleSettings | Column], *, capture: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, Frame | np.ndarray]]:
    """Run up to MAX_COLUMNS columns in lockstep; yields (column, Frame) per model call and (column, final).
    Frame indices count steps of the whole run (a column that starts at step k begins with index k)."""
    if not 1 <= len(settings_list) <= MAX_COLUMNS:
        from .errors import InvalidInputError

        raise InvalidInputError(f"Compare 1 to {MAX_COLUMNS} columns, got {len(settings_list)}.")
    columns = [_Column(denoiser, s if isinstance(s, Column) else Column(s)) for s in settings_list]
    for i in range(max(len(c.timesteps) for c in columns)):
        if should_stop is not None and should_stop():
            return
        active = [c for c in columns if i < len(c.timesteps)]
        inputs = []
        for c in active:
            t = c.timesteps[i]
            x_in = c.scheduler.scale_model_input(c.x, t)
            inputs.append((t, x_in, current_alpha_bar(c.scheduler, t)))
        requests = [(c.prompt_at(i), x_in, t, ab) for c, (t, x_in, ab) in zip(active, inputs)]
        requests += [("", x_in, t, ab) for c, (t, x_in, ab) in zip(active, inputs) if c.use_cfg]
        outputs = _predict_groups(denoiser, requests)
        uncond = iter(outputs[len(active):])
        for c, (t, x_in, ab), out_cond in zip(active, inputs, outputs):
            out_uncond = next(uncond) if c.use_cfg else None
            output = out_uncond + c.settings.guidance * (out_cond - out_uncond) if c.use_cfg else out_cond
            if capture:
                yield columns.index(c), Frame(c.plan.start_step + i, float(t), ab, denoiser.prediction_type, x_in, output,
                                              out_cond if c.use_cfg else None, out_uncond,
                                              level_in_steps(c.scheduler, ab))
            c.reseed_if_due(i)
            c.x = c.scheduler.step(output, t, c.x, **c.step_kwargs_at(i)).prev_sample
            if i == len(c.timesteps) - 1:
                yield columns.index(c), _np(c.x)


def sample_columns(denoiser, settings_list: list[SampleSettings | Column], **kwargs) -> list[Trajectory]:
    frames: list[list[Frame]] = [[] for _ in settings_list]
    finals: list[np.ndarray | None] = [None] * len(settings_list)
    for col, item in iter_columns(denoiser, settings_list, **kwargs):
        if isinstance(item, Frame):
            frames[col].append(item)
        else:
            finals[col] = item
    plans = [s.settings if isinstance(s, Column) else s for s in settings_list]
    return [Trajectory(f, final, s.validated().__dict__) for f, final, s in zip(frames, finals, plans)]
