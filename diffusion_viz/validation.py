"""Checks for every user-facing control value, in one place so the CLI, the app and the API agree."""

from __future__ import annotations

import math
from numbers import Integral, Real

from .errors import InvalidInputError, PromptTooLongError, UnknownNameError

MAX_STEPS = 1000
MAX_GUIDANCE = 30.0
MAX_PROMPT_CHARS = 1000
MAX_SEED = 2**63 - 1


def check_int(name: str, value) -> int:
    """A whole number (an int, a float without fraction, or its text), else a clear error naming it."""
    return _as_int(name, value)


def _as_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a whole number, not {value!r}.")
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        if not math.isfinite(float(value)):
            raise InvalidInputError(f"{name} must be a finite number, got {value!r}.")
        if float(value) != int(value):
            raise InvalidInputError(f"{name} must be a whole number, got {value!r}.")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInputError(f"{name} must be a whole number, got {value!r}.")


def _as_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}.")
    try:
        result = float(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(result):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}.")
    return result


def check_steps(steps, max_steps: int = MAX_STEPS) -> int:
    steps = _as_int("Steps", steps)
    if not 1 <= steps <= max_steps:
        raise InvalidInputError(f"Steps must be between 1 and {max_steps}, got {steps}.")
    return steps


def check_guidance(guidance) -> float:
    guidance = _as_float("Guidance", guidance)
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise InvalidInputError(f"Guidance must be between 0 and {MAX_GUIDANCE:g}, got {guidance:g}.")
    return guidance


def check_seed(seed) -> int:
    seed = _as_int("Seed", seed)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInputError(f"Seed must be between 0 and 2^63-1, got {seed}.")
    return seed


def check_prompt(prompt) -> str:
    """Prompts longer than the limit are refused, never silently cut: the user must see what ran."""
    if prompt is None:
        return ""
    if not isinstance(prompt, str):
        raise InvalidInputError(f"Prompt must be text, got {type(prompt).__name__}.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptTooLongError(
            f"Prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}. Please shorten it."
        )
    # Control characters (other than whitespace) carry no meaning for a text encoder.
    return "".join(ch for ch in prompt if ch.isprintable() or ch in " \t\n").strip()


def check_choice(kind: str, name, choices) -> str:
    if not isinstance(name, str) or name not in choices:
        raise UnknownNameError(kind, name, choices)
    return name


def check_timestep(t, num_train_timesteps: int) -> int:
    t = _as_int("t", t)
    if not 0 <= t <= num_train_timesteps:
        raise InvalidInputError(f"t must be between 0 and {num_train_timesteps}, got {t}.")
    return t
