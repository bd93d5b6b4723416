"""Guided lessons (assets/lessons/*.toml), the glossary and the printable worksheet.

The shipped lesson must load, cover the topics, and say only what the app measurably does: its numbers
are measured again here with the stop's own settings. A broken lesson file must be refused with the
file's name and the line of the mistake, so a teacher can fix it.
"""

import math
import re
from pathlib import Path

import pytest

from diffusion_viz.data import nearest_emoji
from diffusion_viz.errors import InvalidInputError
from diffusion_viz.glossary import GLOSSARY, glossary_html_title, glossary_markdown, lookup
from diffusion_viz.lessons import (DEFAULT_LESSON, SETTING_KEYS, TABS, LessonError, check_settings,
                                   default_lesson, load_lesson)
from diffusion_viz.schedules import get_schedule

ROOT = Path(__file__).resolve().parents[1]


# ---- the shipped lesson ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lesson():
    return default_lesson()


def _stop(lesson, tab, pred=lambda s: True):
    found = [s for s in lesson.stops if s.tab == tab and pred(s)]
    assert found, f"no {tab} stop of that kind"
    return found[0]


def _as_list(v):
    return v if isinstance(v, list) else [v]


def test_the_shipped_lesson_loads_with_six_to_eight_valid_stops(lesson):
    assert DEFAULT_LESSON.is_file()
    assert load_lesson(DEFAULT_LESSON) == lesson
    assert 6 <= len(lesson.stops) <= 8
    assert lesson.title
    for stop in lesson.stops:
        assert stop.tab in TABS
        assert stop.title and stop.say and stop.ask and stop.answer
        assert stop.ask.rstrip().endswith("?"), stop.ask
        assert set(stop.settings) <= set(SETTING_KEYS[stop.tab])
        assert check_settings(stop.tab, stop.settings, stop.needs) == stop.settings  # passes the app's checks
    # the tab ids are the app's own (read from app.py's source: no gradio import needed)
    app_tabs = re.findall(r'gr\.Tab\([^)]*\bid="(\w+)"', (ROOT / "diffusion_viz/ui/app.py").read_text())
    assert set(TABS) == set(app_tabs)


def test_the_lesson_covers_its_topics(lesson):
    _stop(lesson, "forward", lambda s: len(s.settings["schedules"]) >= 2)
    _stop(lesson, "denoise", lambda s: not s.needs)
    cmp_schedules = _stop(lesson, "compare", lambda s: {"cosine", "scaled_linear"} <= set(_as_list(s.settings["schedule"])))
    assert cmp_schedules.settings["prompt"] == "cat" and "snake" in cmp_schedules.say
    samplers = _stop(lesson, "compare", lambda s: len(set(_as_list(s.settings.get("sampler")))) >= 2)
    assert {"ddim", "dpmpp_2m"} <= set(samplers.settings["sampler"])
    _stop(lesson, "memorize")
    _stop(lesson, "how")
    sd = _stop(lesson, "denoise", lambda s: s.needs == "stable-diffusion")
    assert "64×64×4" in sd.say
    # without Stable Diffusion, its stop is left out; the rest stay in order
    assert lesson.available_stops(stable_diffusion=False) == [s for s in lesson.stops if s is not sd]
    assert len(lesson.available_stops(stable_diffusion=True)) == len(lesson.stops)
    # a server that offers Stable Diffusion, but not the checkpoint the stop speaks of, skips it too
    assert sd not in lesson.available_stops(stable_diffusion=True, models={"emoji-exact", "sdxl"})
    assert sd in lesson.available_stops(stable_diffusion=True, models={"emoji-exact", sd.settings["model"]})


def test_the_default_server_shows_every_stop_but_the_stable_diffusion_one(lesson):
    """Every other stop's model is one the default model list offers (none is skipped by accident)."""
    from diffusion_viz.ui import lesson_mode

    shown = lesson_mode.stops(lesson)
    assert [s for s in lesson.stops if s.needs != "stable-diffusion"] == shown


def test_the_forward_stops_numbers_are_the_schedules(lesson):
    first, last = [s for s in lesson.stops if s.tab == "forward"][:2]
    ab = {n: get_schedule(n).alphas_cumprod for n in first.settings["schedules"]}
    t = first.settings["t"]
    assert f"t = {t}" in first.say
    percents = [int(p) for p in re.findall(r"(\d+) %", first.say)]
    assert percents == [round(100 * ab[n][t]) for n in ("linear", "scaled_linear", "cosine")]
    assert f"ᾱ = {ab['linear'][t]:.3f}" in first.say
    assert f"{ab['scaled_linear'][t]:.3f}" in first.answer and f"{ab['cosine'][t]:.3f}" in first.answer
    t = last.settings["t"]
    assert t == 999 and "t = 999" in last.say
    assert 100 * ab["linear"][t] < 0.01 and 100 * ab["cosine"][t] < 0.01  # "less than 0.01 %"
    assert f"{100 * ab['scaled_linear'][t]:.2f} %" in last.say
    assert f"√ᾱ = {math.sqrt(ab['scaled_linear'][t]):.3f}" in last.say
    assert "32 %" in last.answer and round(100 * math.erfc(1 / math.sqrt(2))) == 32  # P(|z| > 1)


def test_the_denoise_stop_shows_the_guess_it_claims(lesson):
    """"Step 4 of 50 (t = 939): the guess is already the lemon ... (ᾱ = 0.0087)" with these settings."""
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, sample

    stop = _stop(lesson, "denoise", lambda s: not s.needs)
    s = stop.settings
    traj = sample(get_model(s["model"]), SampleSettings(prompt=s["prompt"], steps=s["steps"], scheduler=s["sampler"],
                                                        schedule=s["schedule"], guidance=s["guidance"], seed=s["seed"]))
    assert "lemon" in nearest_emoji(traj.final).label
    looks_like = [nearest_emoji(f.x0) for f in traj.frames[:4]]  # below 0.1 the eye sees the same picture
    assert [n.rms < 0.1 and "lemon" in n.label for n in looks_like] == [False, False, False, True]
    f4 = traj.frames[3]
    assert f"Step 4 of {s['steps']} (t = {f4.timestep:.0f})" in stop.answer
    assert f"ᾱ = {f4.alpha_bar:.4f}" in stop.answer and f4.alpha_bar < 0.01  # "under 1 % of the power"


def test_the_compare_stops_end_where_they_say(lesson):
    """Run the two Compare stops exactly as the Compare tab does (columns in lockstep)."""
    from diffusion_viz.ui import logic

    by_schedule = _stop(lesson, "compare", lambda s: isinstance(s.settings.get("schedule"), list))
    s = by_schedule.settings
    trajs, _, summary = logic.run_compare(s["prompt"], s["seed"], s["model"], by_schedule.compare_columns())
    ends = {c["schedule"]: c["nearest_training_image"] for c in summary["columns"]}
    assert "cat" in ends["cosine"] and "snake" in ends["scaled_linear"]
    snake = [nearest_emoji(f.x0) for f in trajs[1].frames[:3]]
    assert [n.rms < 0.1 and "snake" in n.label for n in snake] == [False, False, True]
    assert f"step 3 (t = {trajs[1].frames[2].timestep:.0f})" in by_schedule.answer
    assert f"ᾱ = {get_schedule('scaled_linear').alphas_cumprod[-1]:.4f}" in by_schedule.answer

    by_sampler = _stop(lesson, "compare", lambda s: isinstance(s.settings.get("sampler"), list))
    s = by_sampler.settings
    _, _, summary = logic.run_compare(s["prompt"], s["seed"], s["model"], by_sampler.compare_columns())
    got = [(c["scheduler"], c["steps"], c["nearest_training_image"].split(" ", 1)[1]) for c in summary["columns"]]
    assert got == [("ddim", 50, "lemon"), ("dpmpp_2m", 10, "lemon"), ("ddim", 5, "pie"), ("ddpm", 10, "watermelon")]
    assert all(c["nearest_rms"] < 0.01 for c in summary["columns"])  # each ends on one emoji, not a blend
    for word in ("pie", "watermelon"):
        assert word in by_sampler.answer


def test_the_memorize_stop_distances_are_measured(lesson):
    from diffusion_viz import memorize as mvg

    stop = _stop(lesson, "memorize")
    s = stop.settings
    exact, unet = mvg.run(s["prompt"], s["seed"], s["steps"], s["guidance"])
    assert exact["copy"] and f"distance {exact['nearest_rms']:.3f}" in stop.say
    assert not unet["copy"] and f"distance {unet['nearest_rms']:.2f}" in stop.say
    assert exact["nearest"] in stop.answer and unet["nearest"] == exact["nearest"]


def test_the_stable_diffusion_stop_numbers():
    from diffusion_viz.models.sd_loading import load_presets

    sd = [s for s in default_lesson().stops if s.needs == "stable-diffusion"][0]
    preset = load_presets()[sd.settings["model"]]
    latent = (preset.width // 8) * (preset.height // 8) * 4
    assert f"{preset.width // 8}×{preset.height // 8}×4" in sd.say and f"{latent:,}" in sd.say
    assert f"{preset.width * preset.height * 3 // latent}×" in sd.say and f"{preset.width}×{preset.height}" in sd.say
    assert sd.settings["guidance"] == preset.guidance == 7.5


# ---- broken lesson files: the message names the file and the line -------------------------------------
GOOD = '''title = "Broken on purpose"

[[stop]]
tab = "denoise"
title = "One"
say = "A sentence."
ask = "A question?"

[stop.settings]
prompt = "cat"
steps = 50

[[stop]]
tab = "forward"
title = "Two"
say = "Another sentence."
ask = "Another question?"

[stop.settings]
t = 300
schedules = ["linear", "cosine"]
'''


def _error(tmp_path, text, name="lesson.toml") -> LessonError:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LessonError) as info:
        load_lesson(path)
    err = info.value
    assert isinstance(err, InvalidInputError) and isinstance(err, ValueError)
    assert str(path) in str(err)
    return err


def _line(err) -> int:
    found = re.search(r"line (\d+)", str(err))
    assert found, str(err)
    return int(found.group(1))


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD, encoding="utf-8")
    lesson = load_lesson(path)
    assert [s.tab for s in lesson.stops] == ["denoise", "forward"]
    assert [s.line for s in lesson.stops] == [3, 13]
    assert lesson.stops[1].settings == {"t": 300, "schedules": ["linear", "cosine"]}


def test_a_toml_syntax_error_names_its_line(tmp_path):
    lines = GOOD.splitlines()
    assert lines[6] == 'ask = "A question?"'
    lines[6] = 'ask = "A question?'  # line 7: missing closing quote
    err = _error(tmp_path, "\n".join(lines), "syntax.toml")
    assert _line(err) == 7 and "line 7" in str(err) and "syntax.toml" in str(err)
    assert "TOML" in str(err)


def test_an_unknown_tab_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD.replace('tab = "forward"', 'tab = "paint"'))
    assert _line(err) == 14 and "paint" in str(err) and "denoise" in str(err)  # says what is allowed


def test_an_unknown_setting_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD.replace('steps = 50', 'steps = 50\ncolour = "red"'))
    assert _line(err) == 12 and "colour" in str(err)
    # a key that exists, but not on this tab: forward has no prompt
    err = _error(tmp_path, GOOD.replace('t = 300', 't = 300\nprompt = "cat"'))
    assert _line(err) == 21 and "prompt" in str(err) and "forward" in str(err)


def test_steps_out_of_range_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD.replace("steps = 50", "steps = 5000"))
    assert _line(err) == 11 and "5000" in str(err) and "Steps" in str(err)


def test_an_unknown_sampler_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD.replace('steps = 50', 'steps = 50\nsampler = "fastest"'))
    assert _line(err) == 12 and "fastest" in str(err) and "ddim" in str(err)


@pytest.mark.parametrize("old, new, line, words", [
    ('t = 300', 't = 1000', 20, ["999"]),  # t runs 0 .. 999
    ('schedules = ["linear", "cosine"]', 'schedules = ["linear", "wavy"]', 21, ["wavy"]),
    ('prompt = "cat"', 'prompt = "cat"\nguidance = 31', 11, ["Guidance"]),
    ('prompt = "cat"', 'prompt = "cat"\nseed = -1', 11, ["Seed"]),
    ('prompt = "cat"', 'prompt = "cat"\nmodel = "dall-e"', 11, ["dall-e", "emoji-exact"]),
    ('prompt = "cat"', 'prompt = "cat"\nmodel = "sd15"', 11, ["needs"]),  # SD preset without needs
    ('say = "Another sentence."\n', '', 13, ["say"]),  # missing say: the stop's header
    ('ask = "A question?"\n\n[stop.settings]\nprompt', 'ask = "A question?"\nhint = "x"\n\n[stop.settings]\nprompt',
     8, ["hint"]),
])
def test_other_mistakes_name_their_line(tmp_path, old, new, line, words):
    assert old in GOOD
    err = _error(tmp_path, GOOD.replace(old, new, 1))
    assert _line(err) == line, str(err)
    for word in words:
        assert word in str(err)


def test_inline_settings_and_multiline_text_find_the_right_line(tmp_path):
    text = '''title = "Inline"

[[stop]]
tab = "compare"
title = "One"
say = """A long sentence that mentions
steps = 5000 inside the text, which is not a setting."""
ask = "Why?"
settings = { prompt = "cat", sampler = ["ddim", "dpmpp_2m"], steps = [50, 5000] }
'''
    err = _error(tmp_path, text)
    assert _line(err) == 9 and "5000" in str(err)
    err = _error(tmp_path, text.replace("[50, 5000]", "[50, 10, 5]"))  # 3 steps for 2 samplers
    assert _line(err) == 9 and "column" in str(err)


def test_too_many_or_too_few_stops(tmp_path):
    err = _error(tmp_path, 'title = "Empty"\n')
    assert "0" in str(err) and "[[stop]]" in str(err)
    block = '\n[[stop]]\ntab = "how"\ntitle = "T"\nsay = "S."\nask = "A?"\n'
    err = _error(tmp_path, 'title = "Long"\n' + block * 13)
    assert _line(err) == 3 + 12 * 6 and "13" in str(err)  # the 13th stop's header
    path = tmp_path / "twelve.toml"
    path.write_text('title = "Twelve"\n' + block * 12, encoding="utf-8")
    assert len(load_lesson(path).stops) == 12


def test_a_missing_or_non_utf8_file(tmp_path):
    with pytest.raises(LessonError, match="no such lesson file"):
        load_lesson(tmp_path / "nowhere.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(GOOD.replace("A sentence.", "Ça va.").encode("latin-1"))
    with pytest.raises(LessonError, match="line 6.*UTF-8"):
        load_lesson(path)


# ---- glossary -------------------------------------------------------------------------------------
TERMS = ["ᾱ", "SNR", "log-SNR", "schedule", "sampler", "step", "seed", "guidance", "latent", "x0 guess", "ε / v"]


def test_the_glossary_has_its_eleven_terms_one_short_line_each():
    assert len(GLOSSARY) == 11
    assert sorted(lookup(t) for t in TERMS) == sorted(GLOSSARY)
    md = glossary_markdown()
    for term, text in GLOSSARY.items():
        assert "\n" not in text and len(text) < 200, term
        assert f"**{term}**" in md and text in md
        title = glossary_html_title(term)
        assert title.startswith(term) and text in title
        assert not set('<>&"') & set(title), title  # plain text for an attribute
    assert glossary_html_title("alpha-bar") == glossary_html_title("ᾱ (alpha-bar)")
    with pytest.raises(InvalidInputError):
        glossary_html_title("flux capacitor")


def test_the_glossary_facts():
    abar = GLOSSARY[lookup("ᾱ")]
    assert "power" in abar and "√ᾱ" in abar and "amplitude" in abar
    assert not re.search(r"share of the \w+'s amplitude", abar)  # ᾱ is power; √ᾱ is amplitude
    example = float(re.search(r"ᾱ = ([\d.]+) keeps a quarter of the power and half of the amplitude", abar).group(1))
    assert example == 0.25 and math.sqrt(example) == 0.5
    assert "ᾱ / (1 − ᾱ)" in GLOSSARY["SNR"]
    assert "0 where picture and noise are equal" in GLOSSARY["log-SNR"]
    assert "0 to 999" in GLOSSARY["schedule"]
    assert "64×64×4" in GLOSSARY["latent"] and "512×512" in GLOSSARY["latent"]
    assert "7.5" in GLOSSARY["guidance"] and "without the prompt" in GLOSSARY["guidance"]
    eps_v = GLOSSARY[lookup("v")]
    assert "all of the noise" in eps_v and "predict v" in eps_v and "√ᾱ·ε − √(1−ᾱ)·x0" in eps_v
    everything = " ".join(GLOSSARY.values()).lower()
    for wrong in ("because of its training", "t = 0 is clean", "pure noise", "noise that doesn't match"):
        assert wrong not in everything


# ---- worksheet --------------------------------------------------------------------------------------
CHROMIUM_MISSING = not Path("/usr/bin/chromium").exists()


@pytest.fixture(scope="module")
def run():
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, sample

    settings = SampleSettings(prompt="<b>x</b>", steps=10, scheduler="ddim", schedule="cosine", guidance=1.0, seed=0)
    return sample(get_model("emoji-exact-32"), settings), settings


def _worksheet(run, lesson):
    from diffusion_viz.render import image_to_rgb
    from diffusion_viz.ui.worksheet import contact_sheet_uri, shown_numbers, worksheet_html

    traj, s = run
    settings = {"prompt": s.prompt, "model": "emoji-exact-32", "sampler": s.scheduler, "schedule": s.schedule,
                "steps": s.steps, "seed": s.seed, "guidance": s.guidance}
    numbers = shown_numbers(traj)
    page = worksheet_html(title="Lesson <i>one</i>", settings=settings, numbers=numbers,
                          sheet_png_data_uri=contact_sheet_uri(traj, image_to_rgb), questions=lesson.questions)
    return page, numbers


def test_the_worksheet_html(run, lesson):
    from diffusion_viz.ui.worksheet import worksheet_html

    page, numbers = _worksheet(run, lesson)
    traj, _ = run
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page and "@media print" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page  # the prompt is text, not markup
    assert "<i>one</i>" not in page and "Lesson &lt;i&gt;one&lt;/i&gt;" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:image/png;base64,)""", page)  # nothing external
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count('src="data:image/png;base64,') == 1
    # the numbers: the steps the contact sheet shows, with the power left
    assert [r["step"] for r in numbers] == [f.index + 1 for f in traj.frames] and len(numbers) == 10
    for r in numbers:
        assert f"<td>{r['step']}</td><td>{r['t']:.0f}</td>" in page
    assert f"{100 * traj.frames[5].alpha_bar:.1f} %" in page
    for q in lesson.questions:
        assert q.replace("'", "&#x27;") in page
    assert "Name:" in page
    with pytest.raises(InvalidInputError):
        worksheet_html(title="x", settings={}, numbers=[], sheet_png_data_uri="https://example.com/a.png", questions=[])


@pytest.mark.skipif(CHROMIUM_MISSING, reason="needs /usr/bin/chromium")
def test_the_worksheet_prints_on_one_or_two_pages(run, lesson, tmp_path):
    from playwright.sync_api import sync_playwright

    from conftest import launch_chromium

    page_html, _ = _worksheet(run, lesson)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("data:") else None)
            page.set_content(page_html)
            # the prompt shows as text; no <b> element was made from it
            assert "<b>x</b>" in page.inner_text("table.settings")
            assert page.query_selector("table.settings b") is None
            assert page.evaluate("document.querySelector('figure img').naturalWidth") > 0  # the PNG decodes
            for size in ("A4", "Letter"):
                pdf = tmp_path / f"worksheet-{size}.pdf"
                page.pdf(path=str(pdf), format=size)
                data = pdf.read_bytes()
                pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
                assert 1 <= pages <= 2, (size, pages)
                assert b"/Subtype /Image" in data
            assert requests == []
        finally:
            browser.close()
