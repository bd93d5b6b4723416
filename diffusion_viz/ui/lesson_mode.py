"""Lesson mode: the guided lesson (assets/lessons/first-lesson.toml) walked through stop by stop.

Each stop selects its tab, sets its controls (and runs them, for the fast offline models), and shows one
true sentence for the class, one question, and the measured answer for the teacher. Opened with the
"Lesson" button or ``?lesson=1`` (``&stop=k`` to start at stop k).
"""

from __future__ import annotations

from ..lessons import Lesson, Stop, default_lesson
from ..models.registry import MODELS
from .logic import escape_text
from .views import view_updates


def stops(lesson: Lesson | None = None) -> list[Stop]:
    """The stops this server can show (the Stable Diffusion one only when its checkpoint is offered)."""
    lesson = lesson or default_lesson()
    sd_offered = any(not name.startswith("emoji") for name in MODELS)
    return lesson.available_stops(stable_diffusion=sd_offered, models=set(MODELS))


def stop_markdown(i: int, all_stops: list[Stop]) -> str:
    s = all_stops[i]
    return (f"**Lesson, stop {i + 1} of {len(all_stops)}: {escape_text(s.title)}**\n\n{escape_text(s.say)}\n\n"
            f"**Ask the class:** {escape_text(s.ask)}")


def answer_markdown(stop: Stop) -> str:
    return escape_text(stop.answer) if stop.answer else "(This stop has no answer written down.)"


def show_stop(index) -> tuple:
    """(lesson text, answer, index, *view updates) for stop ``index`` (clamped to the lesson)."""
    all_stops = stops()
    i = min(max(int(index or 0), 0), len(all_stops) - 1)
    stop = all_stops[i]
    settings = dict(stop.settings)  # a copy: the lesson is cached and shared
    return (stop_markdown(i, all_stops), answer_markdown(stop), i, *view_updates(stop.tab, settings, note=""))
