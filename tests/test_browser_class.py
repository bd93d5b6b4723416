"""Class use in a real browser: a link restores the view with identical pixels, a bad link is read
leniently with a note, the guided lesson walks its stops, the lesson file and worksheet download, every
tab passes axe-core (no serious or critical violation) in both modes, and the keyboard focus is visible.
Set DV_SCREENSHOT_DIR=docs to refresh the lesson-mode screenshot."""

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from conftest import CHROMIUM
import test_browser
from test_browser import STATUS, browser, server, shot  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed at /usr/bin/chromium"),
]
pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")

TABS = ["1 · Denoise", "2 · Forward noising", "3 · Compare", "4 · Memorize vs generalize", "5 · Experiments", "6 · How it works"]
DONE = f"{STATUS}.startsWith('Done')"


def open_page(browser, url, width=1280, height=800):
    """A fresh page; a link may open another tab than Denoise, so wait for the page, not a visible button."""
    return test_browser.open_page(browser, url, width, height, state="attached")


def _wait_player(pg, frames, pid="dv-player"):
    pg.wait_for_function(f"window.dvPlayers['{pid}'] && window.dvPlayers['{pid}'].frames() === {frames} && "
                         f"!window.dvPlayers['{pid}'].state.live", timeout=60_000)


def _pixels(pg, panel, pid="dv-player"):
    return np.asarray(pg.evaluate(f"window.dvPlayers['{pid}'].pixels('{panel}', 0)"), np.uint8)


def _selected_tab(pg):
    return pg.inner_text("button[role=tab][aria-selected=true]").strip()


def _copy_link(pg):
    pg.click("#dv-copy-link")
    pg.wait_for_function("(document.querySelector('#dv-link textarea, #dv-link input') || {}).value", timeout=20_000)
    return pg.input_value("#dv-link textarea, #dv-link input")


def test_a_copied_link_opens_the_same_view_with_the_same_pixels(browser, server):
    pg = open_page(browser, server)
    pg.fill("#dv-prompt textarea", "fruit")
    pg.fill("#dv-steps input[type=number]", "12")
    pg.press("#dv-steps input[type=number]", "Enter")
    pg.fill("#dv-seed input", "3")
    pg.click("#dv-generate")
    pg.wait_for_function(DONE, timeout=60_000)
    _wait_player(pg, 12)
    pg.evaluate("window.dvPlayers['dv-player'].seek(5)")
    url = _copy_link(pg)
    query = parse_qs(urlparse(url).query)
    assert query["tab"] == ["denoise"] and query["prompt"] == ["fruit"] and query["steps"] == ["12"]
    assert query["seed"] == ["3"] and query["step"] == ["5"]
    before = {p: _pixels(pg, p) for p in ("x_t", "x0")}
    numbers = pg.inner_text("#dv-player .dv-numbers")

    other = open_page(browser, url)  # a student opens the link: it runs by itself and stops at step 5
    other.wait_for_function(DONE, timeout=60_000)
    _wait_player(other, 12)
    assert other.evaluate("window.dvPlayers['dv-player'].position()") == 5
    assert other.input_value("#dv-prompt textarea") == "fruit"
    assert other.inner_text("#dv-player .dv-numbers") == numbers
    for panel, want in before.items():
        np.testing.assert_array_equal(_pixels(other, panel), want, err_msg=panel)
    assert not pg.errors and not other.errors
    pg.context.close()
    other.context.close()


def test_a_compare_link_restores_its_columns(browser, server):
    pg = open_page(browser, server + "?tab=compare&prompt=cat&seed=0&sampler=ddim,euler&steps=8,4&schedule=cosine")
    pg.wait_for_function("window.dvPlayers['dv-cmp-player'] && window.dvPlayers['dv-cmp-player'].state.cols.length === 2",
                         timeout=60_000)
    assert _selected_tab(pg) == "3 · Compare"
    assert pg.evaluate("window.dvPlayers['dv-cmp-player'].state.cols.map(c => c.frames.length)") == [8, 4]
    url = _copy_link(pg)
    query = parse_qs(urlparse(url).query)
    assert query["sampler"] == ["ddim,euler"] and query["steps"] == ["8,4"] and query["tab"] == ["compare"]
    pg.context.close()


def test_a_bad_link_is_clamped_with_a_note_and_still_runs(browser, server):
    pg = open_page(browser, server + "?tab=denoise&steps=2.5&sampler=magic&seed=-3&colour=red&prompt=dog")
    pg.wait_for_function(DONE, timeout=60_000)
    note = pg.inner_text("#dv-link-note")
    for words in ("not a whole number", "Unknown sampler 'magic'", "Seed -3 is outside", "Unknown setting 'colour'"):
        assert words in note, note
    assert pg.input_value("#dv-seed input") == "0" and pg.input_value("#dv-prompt textarea") == "dog"
    assert not pg.errors
    pg.context.close()


def test_a_forward_link_sets_t_and_says_the_photo_is_not_in_it(browser, server):
    pg = open_page(browser, server + "?tab=forward&t=1500&schedules=linear,cosine&noise_seed=2")
    pg.wait_for_function("(document.querySelector('#dv-link-note')?.innerText || '').includes('photo')", timeout=30_000)
    note = pg.inner_text("#dv-link-note")
    assert "not included in links" in note and "set to 999" in note
    assert _selected_tab(pg) == "2 · Forward noising"
    assert pg.input_value("#dv-t input[type=number]") == "999"
    pg.context.close()


def test_lesson_mode_walks_its_stops(browser, server):
    from diffusion_viz.ui.lesson_mode import stops

    all_stops = stops()
    pg = open_page(browser, server + "?lesson=1")
    pg.wait_for_selector("#dv-lesson", state="visible", timeout=30_000)
    text = pg.inner_text("#dv-lesson-text")
    assert f"stop 1 of {len(all_stops)}" in text and all_stops[0].title in text
    assert _selected_tab(pg) == "2 · Forward noising"
    assert pg.input_value("#dv-t input[type=number]") == str(all_stops[0].settings["t"])

    pg.click("#dv-lesson-next")
    pg.wait_for_function("(document.querySelector('#dv-lesson-text')?.innerText || '').includes('stop 2 of')")
    pg.wait_for_function(f"document.querySelector('#dv-t input[type=number]').value === "
                         f"'{all_stops[1].settings['t']}'")
    pg.click("#dv-lesson-next")  # stop 3: Denoise, with its settings, run for the class
    third = all_stops[2]
    pg.wait_for_function("(document.querySelector('#dv-lesson-text')?.innerText || '').includes('stop 3 of')")
    pg.wait_for_function(DONE, timeout=60_000)
    _wait_player(pg, third.settings["steps"])
    assert _selected_tab(pg) == "1 · Denoise"
    assert pg.input_value("#dv-prompt textarea") == third.settings["prompt"]
    shot(pg, "lesson-mode")
    pg.click("#dv-lesson-back")
    pg.wait_for_function("(document.querySelector('#dv-lesson-text')?.innerText || '').includes('stop 2 of')")
    assert _selected_tab(pg) == "2 · Forward noising"
    pg.click("#dv-lesson-close")
    pg.wait_for_selector("#dv-lesson", state="hidden")
    assert not pg.errors
    pg.context.close()


def test_the_lesson_file_and_the_worksheet_download(browser, server):
    pg = open_page(browser, server)
    pg.fill("#dv-steps input[type=number]", "10")
    pg.press("#dv-steps input[type=number]", "Enter")
    pg.click("#dv-generate")
    pg.wait_for_function(DONE, timeout=60_000)
    for button, suffix, words in (("#dv-lesson-file", "-lesson.html", "id=\"dv-data\""),
                                  ("#dv-worksheet", "-worksheet.html", "@media print")):
        pg.click(button)
        pg.wait_for_function(f"[...document.querySelectorAll('#dv-downloads a')].some(a => a.href.includes('{suffix}'))",
                             timeout=120_000)
        href = pg.evaluate(f"[...document.querySelectorAll('#dv-downloads a')].find(a => a.href.includes('{suffix}')).href")
        row = pg.evaluate(f"[...document.querySelectorAll('#dv-downloads tr')].find(r => r.innerText.replace(/\\s/g, '').includes('{suffix}'))"
                          "?.innerText || ''")
        assert re.search(r"\d+(\.\d+)?\s?[kKM]B", row), row  # its size, before anyone downloads it
        response = pg.request.get(href)
        assert response.ok
        html = response.text()
        assert html.lstrip().lower().startswith("<!doctype html") and words in html, (button, html[:200])
        assert "cat" in html and "http://" not in html.replace("http://www.w3.org", "")  # self-contained
    assert not pg.errors
    pg.context.close()


@pytest.mark.parametrize("query", ["", "?classroom=1"])
def test_every_tab_passes_axe_core(browser, server, query):
    axe_mod = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python missing")
    pg = open_page(browser, server + query)
    pg.click("#dv-generate")
    pg.wait_for_function(DONE, timeout=60_000)
    for tab in TABS:
        pg.get_by_role("tab", name=tab).click()
        pg.wait_for_timeout(800)
        result = axe_mod.Axe().run(pg)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result.response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert bad == [], (query, tab, bad)
    pg.context.close()


def test_the_keyboard_focus_is_visible(browser, server):
    pg = open_page(browser, server)
    seen = []
    for _ in range(12):
        pg.keyboard.press("Tab")
        seen.append(pg.evaluate("""(() => { const e = document.activeElement; const s = getComputedStyle(e);
            return [e.tagName + '#' + (e.id || e.className || ''),
                    (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none']; })()"""))
    focused = [name for name, _ in seen if not name.startswith("BODY")]
    assert len(focused) >= 8, seen
    assert all(visible for name, visible in seen if not name.startswith("BODY")), seen
    pg.context.close()


def test_glossary_words_explain_themselves_on_focus_and_hover(browser, server):
    from diffusion_viz.glossary import GLOSSARY

    pg = open_page(browser, server)
    pg.click("#dv-generate")
    pg.wait_for_function(DONE, timeout=60_000)
    tip = "::after"
    pg.focus("#dv-player .dv-numbers .dv-term")  # the keyboard reaches it (tabindex 0)
    shown = pg.eval_on_selector("#dv-player .dv-numbers .dv-term", f"e => getComputedStyle(e, '{tip}').content")
    assert GLOSSARY["ᾱ (alpha-bar)"][:40] in shown, shown
    pg.mouse.move(0, 0)
    pg.hover("#dv-player .dv-numbers .dv-term >> nth=1")
    shown = pg.eval_on_selector_all("#dv-player .dv-numbers .dv-term",
                                    f"els => getComputedStyle(els[1], '{tip}').content")
    assert GLOSSARY["SNR"][:30] in shown, shown
    # the controls named by a glossary word: the line on the label, and read out for the input
    described = pg.eval_on_selector("#dv-sampler input", "e => e.getAttribute('aria-description')")
    assert described and GLOSSARY["sampler"][:30] in described
    assert "dv-term" in pg.eval_on_selector("#dv-steps [data-testid=block-info]", "e => e.className")
    # and the whole list is in "How it works"
    pg.get_by_role("tab", name="6 · How it works").click()
    listed = pg.inner_text("#dv-glossary")
    assert all(text[:30] in listed for text in GLOSSARY.values())
    pg.context.close()
