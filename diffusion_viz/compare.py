"""Several runs side by side (same prompt and seed; other schedule, sampler, steps or guidance).

Each column is exactly the run ``sampling.iter_frames`` would make on its own: same starting noise,
same scheduler, same random draws. The difference is cost: at each step, the columns' inputs go to the
model together, one call for all columns (per prompt, with and without), when the model accepts one
noise level per row (``supports_batched_alpha_bar``). The exact emoji denoiser is limited by reading
its dataset, so four columns cost about as much as one.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .sampling import Frame, SampleSettings, Trajectory, _accepts, _np, build_scheduler, current_alpha_bar

MAX_COLUMNS = 4


class _Column:
    """One run's scheduler, random generator and current sample."""

    def __init__(self, denoiser, settings: SampleSettings):
        self.settings = s = settings.validated()
        self.scheduler = build_scheduler(denoiser, s)
        self.scheduler.set_timesteps(s.steps)
        self.timesteps = list(self.scheduler.timesteps)
        self.generator = torch.Generator("cpu").manual_seed(s.seed)
        self.use_cfg = s.guidance != 1.0 and bool(s.prompt)
        x = torch.randn((1, *denoiser.sample_shape), generator=self.generator, dtype=torch.float32)
        self.x = x * self.scheduler.init_noise_sigma
        self.step_kwargs = {"generator": self.generator} if _accepts(self.scheduler.step, "generator") else {}


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
    denoiser, settings_list: list[SampleSettings], *, capture: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, Frame | np.ndarray]]:
    """Run up to four columns in lockstep; yields (column, Frame) per model call and (column, final)."""
    if not 1 <= len(settings_list) <= MAX_COLUMNS:
        from .errors import InvalidInputError

        raise InvalidInputError(f"Compare 1 to {MAX_COLUMNS} columns, got {len(settings_list)}.")
    columns = [_Column(denoiser, s) for s in settings_list]
    for i in range(max(len(c.timesteps) for c in columns)):
        if should_stop is not None and should_stop():
            return
        active = [c for c in columns if i < len(c.timesteps)]
        inputs = []
        for c in active:
            t = c.timesteps[i]
            x_in = c.scheduler.scale_model_input(c.x, t)
            inputs.append((t, x_in, current_alpha_bar(c.scheduler, t)))
        requests = [(c.settings.prompt, x_in, t, ab) for c, (t, x_in, ab) in zip(active, inputs)]
        requests += [("", x_in, t, ab) for c, (t, x_in, ab) in zip(active, inputs) if c.use_cfg]
        outputs = _predict_groups(denoiser, requests)
        uncond = iter(outputs[len(active):])
        for c, (t, x_in, ab), out_cond in zip(active, inputs, outputs):
            out_uncond = next(uncond) if c.use_cfg else None
            output = out_uncond + c.settings.guidance * (out_cond - out_uncond) if c.use_cfg else out_cond
            if capture:
                yield columns.index(c), Frame(i, float(t), ab, denoiser.prediction_type, x_in, output,
                                              out_cond if c.use_cfg else None, out_uncond)
            c.x = c.scheduler.step(output, t, c.x, **c.step_kwargs).prev_sample
            if i == len(c.timesteps) - 1:
                yield columns.index(c), _np(c.x)


def sample_columns(denoiser, settings_list: list[SampleSettings], **kwargs) -> list[Trajectory]:
    frames: list[list[Frame]] = [[] for _ in settings_list]
    finals: list[np.ndarray | None] = [None] * len(settings_list)
    for col, item in iter_columns(denoiser, settings_list, **kwargs):
        if isinstance(item, Frame):
            frames[col].append(item)
        else:
            finals[col] = item
    return [Trajectory(f, final, s.validated().__dict__) for f, final, s in zip(frames, finals, settings_list)]
