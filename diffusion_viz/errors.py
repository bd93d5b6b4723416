"""Typed errors: the library raises these, the UI turns them into friendly messages.

Every error a user can cause is a subclass of ``DiffusionVizError`` *and* ``ValueError``, so callers
can catch either. The message is written for a person, not a stack trace.
"""


class DiffusionVizError(Exception):
    """Base class for every error this package raises on purpose."""


class InvalidInputError(DiffusionVizError, ValueError):
    """A control value is out of range, not finite, or of the wrong type."""


class UnknownNameError(InvalidInputError):
    """A scheduler, schedule or model name that does not exist."""

    def __init__(self, kind: str, name, choices):
        self.kind, self.name, self.choices = kind, name, list(choices)
        super().__init__(f"Unknown {kind} {name!r}. Choose one of: {', '.join(self.choices)}.")


class PromptTooLongError(InvalidInputError):
    """Prompts are refused (not silently truncated) past the limit, so the user knows what was used."""


class UnsupportedOptionError(InvalidInputError):
    """A valid option that the chosen scheduler or model cannot honour (e.g. Karras sigmas on DDIM)."""


class ImageInputError(InvalidInputError):
    """An uploaded file that is not a usable image (corrupt, empty, too large)."""


class ModelLoadError(DiffusionVizError, RuntimeError):
    """A model or checkpoint could not be loaded (offline, missing, out of memory)."""


class Stopped(DiffusionVizError):
    """A run was stopped before it finished (the Stop button, a closed tab, a time limit)."""
