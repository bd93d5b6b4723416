"""Guided lessons: a teacher-editable TOML file of "stops", each opening one tab with its settings.

A lesson file has a top-level ``title`` and 1..12 ``[[stop]]`` tables (6..8 recommended)::

    title = "How noise becomes a picture"

    [[stop]]
    tab = "denoise"              # denoise | forward | compare | memorize | how
    title = "The model guesses the whole picture"
    say = "One short true sentence for the class."
    ask = "One question for the class?"
    answer = "Optional: the answer, for the teacher."
    needs = "stable-diffusion"   # optional: only when the server offers a Stable Diffusion model

    [stop.settings]              # only the keys of that tab (SETTING_KEYS)
    prompt = "fruit"
    steps = 50

Every mistake raises ``LessonError`` whose message names the file and the line: TOML syntax errors (line
from tomllib), unknown tabs or keys, values out of range or unknown (the app's own checks in
``validation`` and its registries: samplers, schedules, models).

Links to a stop (and to any view) are the app's (``ui/views.py``); URL_PARAMS are their parameter names.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import limits, validation
from .errors import InvalidInputError

DEFAULT_LESSON = Path(__file__).resolve().parents[1] / "assets" / "lessons" / "first-lesson.toml"

TABS = ("denoise", "forward", "compare", "memorize", "experiments", "how")
_RUN_KEYS = ("prompt", "model", "sampler", "schedule", "steps", "seed", "guidance")
# The controls each tab has (ui/*_tab.py). Memorize fixes its two models (exact denoiser vs trained UNet)
# and their sampler and schedule, so a stop cannot set them.
SETTING_KEYS: dict[str, tuple[str, ...]] = {
    "denoise": _RUN_KEYS,
    "compare": _RUN_KEYS,
    "memorize": ("prompt", "steps", "seed", "guidance"),
    "forward": ("t", "schedules", "noise_seed"),
    "experiments": (),
    "how": (),
}
# Compare has up to four columns: these may be a list, one value per column.
COLUMN_KEYS = ("sampler", "schedule", "steps", "guidance")
MAX_COLUMNS = 4  # limits.Limits.columns by default
MAX_SCHEDULES = 4  # ui/forward_tab.MAX_SCHEDULES
MAX_T = 999  # training steps t = 0 .. 999 (t = 0 is one noising step, not the clean picture)
REQUIRED_STOP_KEYS = ("tab", "title", "say", "ask")
OPTIONAL_STOP_KEYS = ("answer", "needs", "settings")
NEEDS = ("stable-diffusion",)
MIN_STOPS, MAX_STOPS = 1, 12
RECOMMENDED_STOPS = (6, 8)
# URL parameter names, in the order a link lists them (shared with the app's link feature).
URL_PARAMS = ("tab", "prompt", "model", "sampler", "schedule", "steps", "seed", "guidance", "t", "schedules",
              "noise_seed")
MAX_TEXT = 600  # characters of a title, say, ask or answer: one sentence, not an essay


class LessonError(InvalidInputError):
    """A lesson file that cannot be used; the message names the file and the line."""

    def __init__(self, path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Stop:
    tab: str
    title: str
    say: str
    ask: str
    settings: dict = field(default_factory=dict)  # validated values; lists for list-valued keys
    answer: str | None = None
    needs: str | None = None
    line: int = 0  # the line of the stop's [[stop]] header in its file

    @property
    def needs_stable_diffusion(self) -> bool:
        return self.needs == "stable-diffusion"

    def compare_columns(self) -> list[dict]:
        """A Compare stop's columns in the form of ``ui.logic.check_columns`` ({"scheduler", "schedule",
        "steps", "guidance"}): list values give one column each, single values go to every column; what the
        stop does not set takes the app's defaults (ddim, cosine, 50 steps, guidance 1)."""
        s = self.settings
        n = max([len(s[k]) for k in COLUMN_KEYS if isinstance(s.get(k), list)] or [1])
        defaults = {"sampler": "ddim", "schedule": "cosine", "steps": 50, "guidance": 1.0}

        def value(key, i):
            v = s.get(key, defaults[key])
            return v[i] if isinstance(v, list) else v

        return [{"scheduler": value("sampler", i), "schedule": value("schedule", i), "steps": value("steps", i),
                 "guidance": value("guidance", i)} for i in range(n)]


@dataclass(frozen=True)
class Lesson:
    title: str
    stops: tuple[Stop, ...]
    path: str = ""

    def available_stops(self, stable_diffusion: bool = False, models=None) -> list[Stop]:
        """The stops this server can show: those that need Stable Diffusion only when it is offered, and
        (given the names of the ``models`` it offers) a stop that sets a model only when that one is offered:
        the SD stop speaks of SD 1.5's 64x64x4 latent, so a server with only SDXL skips it."""
        return [s for s in self.stops if (stable_diffusion or not s.needs_stable_diffusion)
                and (models is None or "model" not in s.settings or s.settings["model"] in models)]

    @property
    def questions(self) -> list[str]:
        return [s.ask for s in self.stops]


# ---- finding lines ---------------------------------------------------------------------------------
_STOP_HEADER = re.compile(r"^\s*\[\[\s*stop\s*\]\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[")
_SYNTAX_LINE = re.compile(r"at line (\d+)")


class _Lines:
    """Where things are in the raw text: tomllib gives no line numbers for values, so search for them.

    Lines inside multi-line strings are skipped, so a sentence containing "steps = 5" is never taken for
    a key.
    """

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.code = self._code_lines()
        self.stops = [i for i in self.code if _STOP_HEADER.match(self.lines[i])]

    def _code_lines(self) -> list[int]:
        code, quote = [], None
        for i, line in enumerate(self.lines):
            if quote is None:
                code.append(i)
            for q in re.findall(r'"""|\'\'\'', line):
                if quote is None:
                    quote = q
                elif q == quote:
                    quote = None
        return code

    def stop_block(self, k: int) -> tuple[int, int]:
        """0-based [start, end) lines of the k-th [[stop]] (header included)."""
        start = self.stops[k]
        end = self.stops[k + 1] if k + 1 < len(self.stops) else len(self.lines)
        return start, end

    def _find(self, key: str, lo: int, hi: int, inline: bool = False) -> int | None:
        plain = rf"^\s*[\"']?{re.escape(key)}[\"']?\s*="
        pattern = re.compile(plain + (rf"|[{{,]\s*[\"']?{re.escape(key)}[\"']?\s*=" if inline else ""))
        for i in self.code:
            if lo <= i < hi and pattern.search(self.lines[i]):
                return i + 1
        return None

    def _settings_table(self, lo: int, hi: int) -> tuple[int, int] | None:
        for i in self.code:
            if lo < i < hi and re.match(r"^\s*\[\s*stop\s*\.\s*settings\s*\]", self.lines[i]):
                end = next((j for j in self.code if i < j < hi and _TABLE_HEADER.match(self.lines[j])), hi)
                return i, end
        return None

    def stop_line(self, k: int) -> int | None:
        return self.stops[k] + 1 if k < len(self.stops) else None

    def stop_key(self, k: int, key: str) -> int | None:
        """The line of a stop's own key (before any sub-table), else the stop's header."""
        if k >= len(self.stops):
            return None
        lo, hi = self.stop_block(k)
        sub = next((j for j in self.code if lo < j < hi and _TABLE_HEADER.match(self.lines[j])), hi)
        return self._find(key, lo, sub) or lo + 1

    def setting(self, k: int, key: str) -> int | None:
        """The line of a setting: in [stop.settings], or inline (settings = { steps = 50 }), else the
        settings table's header, else the stop's header."""
        if k >= len(self.stops):
            return None
        lo, hi = self.stop_block(k)
        table = self._settings_table(lo, hi)
        if table is not None:
            return self._find(key, table[0] + 1, table[1]) or table[0] + 1
        return self._find(key, lo, hi, inline=True) or self.stop_key(k, "settings")

    def top_key(self, key: str) -> int | None:
        hi = min([len(self.lines), *self.stops])
        first_table = next((i for i in self.code if i < hi and _TABLE_HEADER.match(self.lines[i])), hi)
        return self._find(key, 0, first_table)


# ---- checking values -------------------------------------------------------------------------------
def _registries():
    """(samplers, schedules, models): imported here, so reading this module stays cheap."""
    from .models.registry import MODELS
    from .sampling import SCHEDULERS
    from .schedules import SCHEDULES

    return SCHEDULERS, SCHEDULES, MODELS


def _sd_presets() -> dict:
    try:
        from .models.sd_loading import load_presets

        return load_presets()
    except Exception:  # noqa: BLE001 - no presets file: no Stable Diffusion names
        return {}


def _check_model(name, needs: str | None) -> str:
    _, _, models = _registries()
    if isinstance(name, str) and name in models:
        return name
    presets = _sd_presets()
    if isinstance(name, str) and name in presets:
        if needs != "stable-diffusion":
            raise InvalidInputError(f"model {name!r} is a Stable Diffusion preset: add needs = \"stable-diffusion\" "
                                    "to this stop, so servers without it skip the stop.")
        return name
    return validation.check_choice("model", name, [*models, *presets])


def _check_t(t) -> int:
    return validation.check_timestep(t, MAX_T)


def _check_schedules(names) -> list[str]:
    _, schedules, _ = _registries()
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_SCHEDULES:
        raise InvalidInputError(f"schedules must be a list of 1 to {MAX_SCHEDULES} schedule names, got {names!r}.")
    if len(set(map(str, names))) != len(names):
        raise InvalidInputError(f"schedules names one schedule twice: {names!r}.")
    return [validation.check_choice("noise schedule", n, schedules) for n in names]


def _check_prompt(prompt) -> str:
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be text in quotes, got {prompt!r}.")
    return validation.check_prompt(prompt)


def _value_check(key: str, needs: str | None):
    samplers, schedules, _ = _registries()
    return {
        "prompt": _check_prompt,
        "model": lambda v: _check_model(v, needs),
        "sampler": lambda v: validation.check_choice("sampler", v, samplers),
        "schedule": lambda v: validation.check_choice("noise schedule", v, schedules),
        "steps": limits.check_steps,  # 1 .. this server's limit (200 unless the operator changes it)
        "seed": validation.check_seed,
        "noise_seed": validation.check_seed,
        "guidance": validation.check_guidance,
        "t": _check_t,
        "schedules": _check_schedules,
    }[key]


def check_settings(tab: str, settings: dict, needs: str | None = None) -> dict:
    """Validated settings of one stop (keys in SETTING_KEYS[tab]); raises InvalidInputError naming the key.

    The returned error carries ``key`` (the setting at fault) for line lookup."""
    if tab not in SETTING_KEYS:
        raise InvalidInputError(f"unknown tab {tab!r}. Choose one of: {', '.join(TABS)}.")
    if not isinstance(settings, dict):
        raise InvalidInputError("settings must be a table ([stop.settings]).")
    allowed = SETTING_KEYS[tab]
    out, columns = {}, None
    for key, value in settings.items():
        try:
            if key not in allowed:
                raise InvalidInputError(
                    f"unknown setting {key!r} for tab {tab!r}. "
                    + (f"This tab's settings are: {', '.join(allowed)}." if allowed else "This tab has no settings."))
            check = _value_check(key, needs)
            if tab == "compare" and key in COLUMN_KEYS and isinstance(value, list):
                if not 1 <= len(value) <= MAX_COLUMNS:
                    raise InvalidInputError(f"{key} lists one value per Compare column: 1 to {MAX_COLUMNS}, "
                                            f"got {len(value)}.")
                if columns is not None and len(value) != columns:
                    raise InvalidInputError(f"{key} lists {len(value)} columns, another setting {columns}: "
                                            "every list needs one value per column.")
                columns = len(value)
                out[key] = [check(v) for v in value]
            else:
                out[key] = check(value)
        except InvalidInputError as e:
            e.key = key
            raise
    return out


# ---- loading ---------------------------------------------------------------------------------------
def _text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where} needs {key} = \"...\" (text in quotes)."
                                if value is None else f"{key} must be text in quotes, got {value!r}.")
    value = " ".join(value.split())
    if len(value) > MAX_TEXT:
        raise InvalidInputError(f"{key} is {len(value)} characters; keep it under {MAX_TEXT}: one sentence.")
    return value


def _stop(raw, k: int, lines: _Lines, path) -> Stop:
    where = f"stop {k + 1}"
    header = lines.stop_line(k)
    if not isinstance(raw, dict):
        raise LessonError(path, header, f"{where} must be a [[stop]] table.")
    for key in raw:
        if key not in REQUIRED_STOP_KEYS + OPTIONAL_STOP_KEYS:
            raise LessonError(path, lines.stop_key(k, key),
                              f"unknown key {key!r} in {where}. A stop has: "
                              f"{', '.join(REQUIRED_STOP_KEYS + OPTIONAL_STOP_KEYS)}.")
    for key in REQUIRED_STOP_KEYS:
        if key not in raw:
            raise LessonError(path, header, f"{where} has no {key} = \"...\".")
    try:
        tab = _text(raw, "tab", where)
    except InvalidInputError as e:
        raise LessonError(path, lines.stop_key(k, "tab"), str(e)) from None
    if tab not in TABS:
        raise LessonError(path, lines.stop_key(k, "tab"), f"unknown tab {tab!r}. Choose one of: {', '.join(TABS)}.")
    texts = {}
    for key in ("title", "say", "ask") + (("answer",) if "answer" in raw else ()):
        try:
            texts[key] = _text(raw, key, where)
        except InvalidInputError as e:
            raise LessonError(path, lines.stop_key(k, key), str(e)) from None
    needs = raw.get("needs")
    if needs is not None and needs not in NEEDS:
        raise LessonError(path, lines.stop_key(k, "needs"),
                          f"needs must be one of: {', '.join(repr(n) for n in NEEDS)}, got {needs!r}.")
    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise LessonError(path, lines.stop_key(k, "settings"), "settings must be a table ([stop.settings]).")
    try:
        settings = check_settings(tab, settings, needs)
    except InvalidInputError as e:
        key = getattr(e, "key", None)
        line = lines.setting(k, key) if key else lines.stop_key(k, "settings")
        raise LessonError(path, line, f"{where} ({tab}): {e}") from None
    return Stop(tab=tab, settings=settings, needs=needs, line=header or 0, answer=texts.get("answer"),
                title=texts["title"], say=texts["say"], ask=texts["ask"])


def parse_lesson(text: str, path="<lesson>") -> Lesson:
    """A lesson from the text of a lesson file; ``path`` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None)  # Python 3.14+; older ones put it in the message
        if line is None:
            found = _SYNTAX_LINE.search(str(e))
            line = int(found.group(1)) if found else (len(text.splitlines()) or 1)
        message = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)$", "", str(e))
        raise LessonError(path, line, f"this is not valid TOML: {message}. Check quotes, brackets and '='.") from None
    lines = _Lines(text)
    for key in raw:
        if key not in ("title", "stop"):
            raise LessonError(path, lines.top_key(key) or 1,
                              f"unknown key {key!r}. A lesson has a title and [[stop]] tables.")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise LessonError(path, lines.top_key("title") or 1, "the lesson needs title = \"...\" at the top.")
    stops = raw.get("stop", [])
    if isinstance(stops, dict):
        raise LessonError(path, next((i + 1 for i in lines.code if re.match(r"^\s*\[\s*stop\s*\]", lines.lines[i])), 1),
                          "write each stop as [[stop]], with two brackets.")
    if not isinstance(stops, list) or not MIN_STOPS <= len(stops) <= MAX_STOPS:
        n = len(stops) if isinstance(stops, list) else 0
        line = lines.stop_line(MAX_STOPS) if n > MAX_STOPS else (lines.stop_line(0) or len(lines.lines) or 1)
        raise LessonError(path, line, f"a lesson has {MIN_STOPS} to {MAX_STOPS} [[stop]] tables "
                                      f"({RECOMMENDED_STOPS[0]} to {RECOMMENDED_STOPS[1]} work best); this one has {n}.")
    return Lesson(title=" ".join(title.split()), stops=tuple(_stop(s, k, lines, path) for k, s in enumerate(stops)),
                  path=str(path))


def load_lesson(path) -> Lesson:
    """Read and check a lesson file; raises LessonError naming the file and line of any mistake."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LessonError(path, None, "no such lesson file.") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise LessonError(path, line, "the file is not UTF-8 text: save it as UTF-8.") from None
    except OSError as e:
        raise LessonError(path, None, f"cannot read the lesson file ({e.strerror or e}).") from None
    return parse_lesson(text, path)


def lesson_path(environ=None) -> Path:
    """The lesson the app walks through: DIFFUSION_VIZ_LESSON (a teacher's own TOML file) or the shipped one."""
    import os

    raw = (os.environ if environ is None else environ).get("DIFFUSION_VIZ_LESSON", "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_LESSON


def default_lesson() -> Lesson:
    """The app's lesson (``lesson_path()``), read once per file and process. Raises LessonError."""
    return _load_cached(str(lesson_path()))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> Lesson:
    return load_lesson(path)


