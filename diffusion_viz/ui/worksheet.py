"""A print-ready worksheet of one run: its contact sheet, its numbers, its settings and the lesson's questions.

One self-contained HTML page (no scripts, no external files: the picture is a PNG data URI, and a
Content-Security-Policy forbids anything else) that prints on one or two A4 or Letter pages. Every string
that comes from a user or a lesson file is escaped.

    traj = sample(model, settings)
    page = worksheet_for_run(traj, to_rgb=image_to_rgb, title="Lesson 1", settings={...}, questions=[...])
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Callable

from ..errors import InvalidInputError
from ..render import contact_sheet, image_to_rgb, pick_frames

SHEET_COLUMNS = 10  # frames on the contact sheet (render.contact_sheet's default)
ANSWER_LINES = 3  # ruled lines under each question
_DATA_URI_PREFIX = "data:image/png;base64,"
SHEET_ALT = ("Contact sheet of the run: the noisy picture x_t (top row) and the model's guess of the clean picture "
             "(bottom row) at evenly spaced steps, labelled with t.")

CSS = """
@page { size: auto; margin: 12mm; }
* { box-sizing: border-box; }
html { color: #000; background: #fff; }
body { font: 11pt/1.35 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 0 auto;
       max-width: 186mm; padding: 8mm 0; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 5mm 0 2mm; }
.name { display: flex; gap: 8mm; margin: 2mm 0 4mm; }
.name span { flex: 1; border-bottom: 1px solid #000; padding-top: 5mm; }
.name span.date { flex: 0 0 45mm; }
figure { margin: 0; }
figure img { width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #999; }
figcaption { font-size: 9pt; color: #333; }
table { border-collapse: collapse; font-size: 9.5pt; }
th, td { border: 1px solid #999; padding: 0.6mm 2mm; text-align: right; }
th { background: #eee; }
table.settings td, table.settings th { text-align: left; }
table.settings th { white-space: nowrap; }
table.settings td { overflow-wrap: anywhere; }
.cols { display: flex; gap: 8mm; align-items: flex-start; }
.cols > section:last-child { flex: 1; min-width: 0; }
.note { font-size: 9pt; color: #333; margin: 1mm 0 0; }
ol.questions { padding-left: 6mm; margin: 0; }
ol.questions li { break-inside: avoid; page-break-inside: avoid; margin-bottom: 3mm; }
.line { border-bottom: 1px solid #777; height: 8mm; }
@media print {
  body { padding: 0; max-width: none; }
  figure, table, .cols { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"""


def png_data_uri(image) -> str:
    """A PIL image -> "data:image/png;base64,..."."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return _DATA_URI_PREFIX + base64.b64encode(buf.getvalue()).decode("ascii")


def contact_sheet_uri(traj, to_rgb: Callable = image_to_rgb, columns: int = SHEET_COLUMNS) -> str:
    """The run's contact sheet (render.contact_sheet: x_t above the predicted x0, at evenly spaced steps)
    as a PNG data URI."""
    return png_data_uri(contact_sheet(traj, columns=columns, to_rgb=to_rgb))


def shown_numbers(traj, columns: int = SHEET_COLUMNS) -> list[dict]:
    """The numbers of the steps the contact sheet shows: step (1-based), t, alpha_bar."""
    return [{"step": traj.frames[i].index + 1, "t": float(traj.frames[i].timestep),
             "alpha_bar": float(traj.frames[i].alpha_bar)}
            for i in pick_frames(len(traj.frames), columns)]


def _fmt_alpha_bar(ab: float) -> str:
    if not math.isfinite(ab):
        return "–"
    return f"{ab:.4f}" if ab >= 1e-3 else f"{ab:.2e}"


def _fmt_power(ab: float) -> str:
    if not math.isfinite(ab):
        return "–"
    pct = 100.0 * ab
    if pct >= 10:
        return f"{pct:.1f} %"
    if pct >= 0.01:
        return f"{pct:.2f} %"
    return "< 0.01 %"


def _number(row: dict, key: str):
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError(f"Each row of numbers needs a number {key!r}, got {row!r}.") from None


def _setting_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_setting_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def worksheet_html(*, title: str, settings: dict, numbers: list[dict], sheet_png_data_uri: str,
                   questions: list[str]) -> str:
    """A print-ready page. ``numbers``: rows {"step", "t", "alpha_bar"} (``shown_numbers``); ``settings``:
    what was run (name -> value); ``questions``: the lesson's questions, each with lines to write on."""
    if not isinstance(sheet_png_data_uri, str) or not sheet_png_data_uri.startswith(_DATA_URI_PREFIX):
        raise InvalidInputError("The contact sheet must be a PNG data URI (data:image/png;base64,...).")
    e = html.escape
    rows = []
    for row in numbers:
        step, t, ab = _number(row, "step"), _number(row, "t"), _number(row, "alpha_bar")
        rows.append(f"<tr><td>{step:.0f}</td><td>{t:.0f}</td><td>{_fmt_alpha_bar(ab)}</td>"
                    f"<td>{_fmt_power(ab)}</td></tr>")
    setting_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(_setting_text(v))}</td></tr>"
                           for k, v in (settings or {}).items())
    lines = '<div class="line"></div>' * ANSWER_LINES
    items = "".join(f"<li><div>{e(str(q))}</div>{lines}</li>" for q in questions or [])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{e(title)}</h1>
<div class="name"><span>Name:</span><span class="date">Date:</span></div>
<figure>
<img src="{e(sheet_png_data_uri)}" alt="{e(SHEET_ALT)}">
<figcaption>Top row: the noisy picture x<sub>t</sub> the model sees. Bottom row: its guess of the whole clean
picture (predicted x<sub>0</sub>) at that step.</figcaption>
</figure>
<div class="cols">
<section>
<h2>The numbers at these steps</h2>
<table class="numbers">
<thead><tr><th>step</th><th>t</th><th>ᾱ</th><th>signal power left</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>
<p class="note">ᾱ is the share of the picture's power left in x<sub>t</sub> (√ᾱ of its amplitude). t = 0 is
one noising step, not the clean picture.</p>
</section>
<section>
<h2>Settings</h2>
<table class="settings"><tbody>{setting_rows}</tbody></table>
</section>
</div>
<h2>Questions</h2>
<ol class="questions">{items}</ol>
</body>
</html>
"""


def worksheet_for_run(traj, *, to_rgb: Callable = image_to_rgb, title: str, settings: dict,
                      questions: list[str], columns: int = SHEET_COLUMNS) -> str:
    """The worksheet of a finished run: its contact sheet and the numbers of the steps it shows."""
    return worksheet_html(title=title, settings=settings, numbers=shown_numbers(traj, columns),
                          sheet_png_data_uri=contact_sheet_uri(traj, to_rgb, columns), questions=questions)
