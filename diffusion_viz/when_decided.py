"""When is the picture decided? Change something part-way through a run and see what is already fixed.

- ``switch``: the same seed and noise, prompt A for the first k steps, prompt B from step k on. k = 0 is
  B's own run, k = N is A's. If the picture at the end still looks like A's after switching at 25 %,
  its identity was decided in the first quarter.
- ``reseed``: prompt A throughout, but from step k on the sampler's fresh noise comes from another seed.
  Only samplers that add noise at every step (DDPM, Euler ancestral) have any; the rest are deterministic
  after the start, so they are refused with a message.

Every column is the plain run up to step k (the same frames), then departs; all run in one lockstep loop.
"""

from __future__ import annotations

from . import validation
from .compare import MAX_COLUMNS, Column, sample_columns
from .errors import InvalidInputError
from .sampling import SampleSettings, Trajectory, planned_frame_count

DEFAULT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
STOCHASTIC = ("ddpm", "euler_a")  # samplers that draw fresh noise at every step
MODES = ("switch", "reseed")


def switch_steps(steps: int, fractions) -> list[int]:
    """The step k for each fraction of the run (rounded), 0 <= k <= N."""
    try:
        fractions = [float(f) for f in fractions]
    except (TypeError, ValueError) as e:
        raise InvalidInputError("Fractions of the run are numbers between 0 and 1.") from e
    if not 1 <= len(fractions) <= MAX_COLUMNS:
        raise InvalidInputError(f"Pick 1 to {MAX_COLUMNS} points in the run, got {len(fractions)}.")
    if not all(0.0 <= f <= 1.0 for f in fractions):
        raise InvalidInputError(f"Each point in the run is a fraction between 0 and 1, got {fractions}.")
    return [round(f * steps) for f in fractions]


def check_step(k, frames: int) -> int:
    k = validation.check_int("step k", k)
    if not 0 <= k <= frames:
        raise InvalidInputError(f"k must be a step of the run, between 0 and {frames}, got {k}.")
    return k


def plan_columns(settings: SampleSettings, ks: list[int], mode: str = "switch", prompt_b: str = "",
                 new_seed: int | None = None) -> list[Column]:
    s = settings.validated()
    validation.check_choice("experiment", mode, MODES)
    frames = planned_frame_count(s.scheduler, s.steps)
    ks = [check_step(k, frames) for k in ks]
    if mode == "switch":
        prompt_b = validation.check_prompt(prompt_b)
        return [Column(s, switch_step=k, switch_prompt=prompt_b) for k in ks]
    if s.scheduler not in STOCHASTIC:
        raise InvalidInputError(
            f"The {s.scheduler} sampler adds no fresh noise after the start, so a new seed changes nothing "
            f"part-way. Pick {' or '.join(STOCHASTIC)} for this experiment.")
    seed = s.seed + 1 if new_seed is None else validation.check_seed(new_seed)
    return [Column(s, reseed_step=k, reseed=seed) for k in ks]


def when_decided(model, settings: SampleSettings, prompt_b: str = "", fractions=DEFAULT_FRACTIONS,
                 mode: str = "switch", new_seed: int | None = None, should_stop=None) -> tuple[list[int], list[Trajectory]]:
    """The columns' switch steps and their runs (settings.prompt is A)."""
    s = settings.validated()
    ks = switch_steps(planned_frame_count(s.scheduler, s.steps), fractions)
    runs = sample_columns(model, plan_columns(s, ks, mode, prompt_b, new_seed), should_stop=should_stop)
    if any(r.final is None for r in runs):
        from .errors import Stopped

        raise Stopped("The experiment was stopped before it finished.")
    return ks, runs
