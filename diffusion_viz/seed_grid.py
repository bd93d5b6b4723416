"""One prompt, many seeds: "why do I get a different picture each time?"

The seed chooses the starting static (and a stochastic sampler's later draws); the prompt only sets what
the model prefers. The same prompt from up to 8 seeds, run in lockstep (one batched model call per step,
as in Compare), scrubbed together. For the exact emoji model each tile names its emoji, and the tally
compares how often the prior's favourite wins with the prior's own weight for it: the prior is the
chance *before* any noise is seen, not the chance of the result (a sampler with finite steps, the
schedule and the seed all move it).
"""

from __future__ import annotations

from collections import Counter

from . import validation
from .compare import MAX_COLUMNS, sample_columns
from .data import nearest_emoji
from .errors import InvalidInputError, Stopped
from .sampling import SampleSettings, Trajectory

DEFAULT_SEEDS = tuple(range(8))


def check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, float, str)):
        seeds = [seeds]
    seeds = [validation.check_seed(s) for s in (seeds or [])]
    if not 1 <= len(seeds) <= MAX_COLUMNS:
        raise InvalidInputError(f"Pick 1 to {MAX_COLUMNS} seeds, got {len(seeds)}.")
    return seeds


def seed_grid(model, settings: SampleSettings, seeds=DEFAULT_SEEDS, should_stop=None) -> list[Trajectory]:
    """The settings' run once per seed (the settings' own seed is ignored)."""
    s = settings.validated()
    runs = sample_columns(model, [SampleSettings(**{**s.__dict__, "seed": seed}) for seed in check_seeds(seeds)],
                          should_stop=should_stop)
    if any(r.final is None for r in runs):
        raise Stopped("The seed grid was stopped before it finished.")
    return runs


def tally(model, prompt: str, runs: list[Trajectory]) -> dict | None:
    """For models whose pictures are emoji-sized: the emoji each run ends nearest to, how often each won,
    and (the exact model) the prior's favourite with its prior weight."""
    names = []
    for r in runs:
        near = nearest_emoji(r.final)
        if near is None:
            return None
        names.append(near.name)
    out = {"ends": names, "counts": dict(Counter(names).most_common())}
    if prompt and hasattr(model, "top_matches"):  # the exact model: its prior over emoji is explicit
        cond = model.encode_prompt(prompt)
        j = int(cond.log_prior.argmax())
        favourite = str(model.dataset.names[int(cond.support[j])])
        out.update(favourite=favourite, prior=float(cond.log_prior[j].exp()), wins=names.count(favourite))
    return out
