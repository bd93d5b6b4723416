"""The "Download lesson (HTML)" file: one self-contained page that works from file:// with the network off.

A real run (emoji-exact, 50 DDIM steps at 64 px; a two-column Compare at 32 px) is written to a file and
opened in Debian chromium with every non-file, non-data request blocked: the canvases must show exactly
the pixels of the numpy reference (atlas.decode_column), the slider, the buttons and the keys must move
it, axe-core must find nothing serious, and a hostile prompt must stay text.
"""

import copy
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM, launch_chromium

from diffusion_viz.errors import InvalidInputError
from diffusion_viz.ui import atlas, logic
from diffusion_viz.ui.lesson_file import (MAX_LESSON_BYTES, lesson_filename, lesson_html, lesson_size_bytes)

HOSTILE = "</script><img src=x onerror=alert(1)><!--<script>"


def needs_browser(test):
    """Real-browser tests: marked, and skipped where Debian chromium is missing (like test_browser.py)."""
    missing = not Path(CHROMIUM).exists()
    test = pytest.mark.skipif(missing, reason="Debian chromium not installed at /usr/bin/chromium")(test)
    return pytest.mark.browser(test)


# ---- runs, made in this process -------------------------------------------------------------------
@pytest.fixture(scope="module")
def single():
    """emoji-exact (64 px), "cat", 50 DDIM steps: the payload the Denoise tab shows, and its settings."""
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample

    model = get_model("emoji-exact")
    settings = logic.make_settings("cat", 50, 0, 1.0, "ddim", "cosine")
    traj = sample(model, settings)
    to_rgb, _ = logic.display_functions(model)
    final = logic.png_data_uri(to_rgb(traj.final))
    payload = logic.player_payload([logic.player_column(traj.frames, model, final=final)], mode="full", start="end")
    return payload, {**settings.__dict__, "model": "emoji-exact"}, settings


@pytest.fixture(scope="module")
def compare():
    columns = [dict(scheduler="ddim", schedule="cosine", steps=20),
               dict(scheduler="dpmpp_2m", schedule="cosine", steps=10)]
    _, cols, _ = logic.run_compare("cat", 0, "emoji-exact-32", columns)
    return logic.player_payload(cols, panels=("x0", "x_t"), start="end")


def expected(payload, col=0):
    c = payload["columns"][col]
    return atlas.decode_column(c["strips"], [f["alpha_bar"] for f in c["frames"]])


def write(tmp_path, payload, name="lesson.html", **kwargs):
    kwargs.setdefault("title", "Cat from noise")
    kwargs.setdefault("settings", {"prompt": "cat", "model": "emoji-exact"})
    path = tmp_path / name
    path.write_text(lesson_html(payload, **kwargs), encoding="utf-8")
    return path


# ---- no browser needed ------------------------------------------------------------------------------
def test_fifty_steps_at_64px_fit_in_3mb(single, tmp_path):
    payload, settings, _ = single
    path = write(tmp_path, payload, settings=settings)
    size = path.stat().st_size
    print(f"lesson file, 50 DDIM steps at 64 px: {size} bytes ({size / 2**20:.3f} MB)")
    assert size == lesson_size_bytes(payload, title="Cat from noise", settings=settings)
    assert size <= MAX_LESSON_BYTES
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<html lang="en">' in text
    # nothing is fetched from anywhere: no external script, style, font or picture
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "@font-face" not in text and "url(" not in text


def test_filename_says_what_it_is(single):
    _, settings_dict, settings = single
    assert lesson_filename("emoji-exact", settings) == "cat-emoji-exact-ddim-cosine-50steps-seed0-lesson.html"
    assert lesson_filename("emoji-exact", settings_dict) == "cat-emoji-exact-ddim-cosine-50steps-seed0-lesson.html"


def test_too_big_a_file_is_refused_with_its_size(compare):
    big = copy.deepcopy(compare)
    big["columns"][0]["final"] = "data:image/png;base64," + "A" * MAX_LESSON_BYTES
    size = lesson_size_bytes(big, title="t", settings={})  # says the size without refusing
    assert size > MAX_LESSON_BYTES
    with pytest.raises(InvalidInputError) as err:
        lesson_html(big, title="t", settings={})
    message = str(err.value)
    print(message)
    assert f"{size / 2**20:.2f} MB" in message and "limit is 3.00 MB" in message
    with pytest.raises(InvalidInputError, match="no finished run"):
        lesson_html({"columns": []}, title="t", settings={})


def test_hostile_text_is_escaped_in_the_file(compare):
    payload = copy.deepcopy(compare)
    payload["columns"][0]["title"] = HOSTILE
    text = lesson_html(payload, title=HOSTILE, settings={"prompt": HOSTILE, "model": HOSTILE},
                       explanation_md=HOSTILE)
    # the only </script> tags are the two the page itself closes; no comment opens inside a script
    assert text.count("</script>") == 2 and "<!--" not in text
    head, data = text.split('<script type="application/json" id="dv-data">')
    assert "<img src=x" not in head  # escaped where it is markup; inside the JSON it is only data
    assert "<\\/script><img src=x" in data


# ---- the real browser, offline ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def open_offline(browser, path: Path):
    """The file from file://, with every request that would leave the machine blocked and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked, dialogs, errors = [], [], []

    def route(r):
        url = r.request.url
        if url.startswith("file:") or url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda req: None if req.url.startswith(("file:", "data:")) else blocked.append(req.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("window.dvLesson && window.dvLesson.ready === true", timeout=15000)
    page.blocked, page.dialogs, page.errors = blocked, dialogs, errors
    return page


def lesson(page, expr):
    return page.evaluate(f"window.dvLesson.{expr}")


def shown(page, panel, col, shape):
    flat = page.evaluate(f"window.dvLesson.pixels('{panel}', {col})")
    return np.asarray(flat, np.uint8).reshape(shape[1:3] + (4,))[..., :3]


def numbers(page, col=0):
    return page.inner_text(f'.numbers[data-col="{col}"]')


@needs_browser
def test_offline_player_shows_exact_pixels_and_steps(single, browser, tmp_path):
    payload, settings, _ = single
    page = open_offline(browser, write(tmp_path, payload, settings=settings))
    try:
        ref = expected(payload)
        assert lesson(page, "frames()") == 50
        assert lesson(page, "position()") == 49  # a finished run opens on its last step
        for k in (0, 25, 49):
            page.evaluate(f"window.dvLesson.seek({k})")
            for panel in ("x_t", "x0", "eps"):
                np.testing.assert_array_equal(shown(page, panel, 0, ref[panel].shape), ref[panel][k],
                                              err_msg=f"{panel} at step {k}")
        page.evaluate("window.dvLesson.seek(25)")
        line = numbers(page)
        f = payload["columns"][0]["frames"][25]
        assert "step 26/50" in line and f"t = {f['t']:.0f}" in line
        assert "signal power left" in line and "noise left √(1−ᾱ)" in line and "log SNR" in line
        assert page.inner_text("#step") == "step 26 / 50"

        # the slider, by an input event (as a drag makes)
        page.evaluate("(() => { const s = document.getElementById('slider'); s.value = 10;"
                      " s.dispatchEvent(new Event('input', {bubbles: true})); })()")
        assert lesson(page, "position()") == 10 and "step 11/50" in numbers(page)
        # the keys, from the page and from the focused slider (one step per key press, not two)
        page.keyboard.press("Home")
        assert lesson(page, "position()") == 0
        page.keyboard.press("End")
        assert lesson(page, "position()") == 49
        page.focus("#slider")
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        assert lesson(page, "position()") == 1
        page.keyboard.press("ArrowLeft")
        assert lesson(page, "position()") == 0
        # the buttons: Next, Back, Play (advances by itself), Pause
        page.click("button[data-act=fwd]")
        assert lesson(page, "position()") == 1
        page.click("button[data-act=back]")
        assert lesson(page, "position()") == 0
        page.click("button[data-act=play]")
        page.wait_for_function("window.dvLesson.position() >= 3", timeout=5000)
        assert lesson(page, "playing()")
        assert page.get_attribute("button[data-act=play]", "aria-pressed") == "true"
        assert "Pause" in page.inner_text("button[data-act=play]")
        page.click("button[data-act=play]")
        assert not lesson(page, "playing()")
        page.keyboard.press("End")
        page.locator("body").press(" ")  # space plays from the start again after the end
        page.wait_for_function("window.dvLesson.playing() && window.dvLesson.position() < 49", timeout=5000)
        page.locator("body").press(" ")
        assert not lesson(page, "playing()")

        assert page.locator(".final img").count() == 1
        assert page.blocked == [], f"the lesson tried the network: {page.blocked}"
        assert page.errors == []
    finally:
        page.context.close()


@needs_browser
def test_compare_one_slider_moves_every_column(compare, browser, tmp_path):
    cols = compare["columns"]
    settings = {"prompt": "cat", "model": "emoji-exact-32", "seed": 0}
    page = open_offline(browser, write(tmp_path, compare, settings=settings))
    try:
        lengths = [len(c["frames"]) for c in cols]
        L = max(lengths)
        assert lesson(page, "frames()") == L
        for k, c in enumerate(cols):  # at the end: every column's last frame, exactly
            ref = expected(compare, k)
            for panel in ("x0", "x_t"):
                np.testing.assert_array_equal(shown(page, panel, k, ref[panel].shape), ref[panel][-1],
                                              err_msg=f"column {k} {panel} at the end")
            assert f"step {lengths[k]}/{lengths[k]}" in numbers(page, k)
            assert "noise left" not in numbers(page, k)  # one line per column: the short one
        pos = 7
        page.evaluate(f"(() => {{ const s = document.getElementById('slider'); s.value = {pos};"
                      " s.dispatchEvent(new Event('input', {bubbles: true})); })()")
        for k, n in enumerate(lengths):  # the same fraction of each run
            i = math.floor(pos / (L - 1) * (n - 1) + 0.5)
            assert f"step {i + 1}/{n}" in numbers(page, k)
            ref = expected(compare, k)
            np.testing.assert_array_equal(shown(page, "x0", k, ref["x0"].shape), ref["x0"][i])
        assert page.inner_text("#step") == f"{round(100 * pos / (L - 1))}% of each run"
        assert page.blocked == [] and page.errors == []
    finally:
        page.context.close()


@needs_browser
def test_axe_finds_nothing_serious(single, compare, browser, tmp_path):
    from axe_playwright_python.sync_playwright import Axe

    payload, settings, _ = single
    for name, p, s in (("single", payload, settings), ("compare", compare, {"prompt": "cat", "seed": 0})):
        page = open_offline(browser, write(tmp_path, p, name=f"{name}.html", settings=s))
        try:
            violations = Axe().run(page).response["violations"]
            for v in violations:
                print(f"axe ({name}): {v['id']} ({v['impact']}): {v['help']} x{len(v['nodes'])}")
            bad = [f"{v['id']} ({v['impact']})" for v in violations if v["impact"] in ("serious", "critical")]
            assert bad == [], f"axe on the {name} lesson: {bad}"
            assert page.blocked == []
        finally:
            page.context.close()


@needs_browser
def test_hostile_prompt_stays_text(compare, browser, tmp_path):
    payload = copy.deepcopy(compare)
    payload["columns"][0]["title"] = HOSTILE
    page = open_offline(browser, write(tmp_path, payload, title=HOSTILE, settings={"prompt": HOSTILE, "seed": 0},
                                       explanation_md=HOSTILE))
    try:
        srcs = page.evaluate("Array.from(document.images, i => i.getAttribute('src'))")
        assert all(s.startswith("data:image/png;base64,") for s in srcs), srcs
        assert page.dialogs == [] and page.errors == []
        assert page.inner_text(".settings td") == HOSTILE  # the first row: the prompt, as text
        assert page.inner_text(".col-title") == HOSTILE
        assert page.title() == HOSTILE
        assert page.evaluate("JSON.parse(document.getElementById('dv-data').textContent).columns[0].title") == HOSTILE
        assert lesson(page, "frames()") == max(len(c["frames"]) for c in payload["columns"])  # the player still runs
    finally:
        page.context.close()
