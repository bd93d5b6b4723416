"""The Experiments tab and the candidates under the Denoise player, in a real browser.

Pixels on the canvases are compared with the same runs made again in this process (runs are deterministic
for their settings); the candidates' numbers with an independent computation of the posterior.
Set DV_SCREENSHOT_DIR=docs to refresh the screenshots.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM
from test_browser import ROOT, STATUS, browser, close_toasts, page, server, shot  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed at /usr/bin/chromium"),
]
pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")


def _open_experiments(page, sub):
    page.get_by_role("tab", name="5 · Experiments").click()
    page.get_by_role("tab", name=sub).click()


def _canvas(page, pid, col, panel):
    flat = page.evaluate(f"window.dvPlayers['{pid}'].pixels('{panel}', {col})")
    return np.asarray(flat, np.uint8)


def _wait_status(page, sid, text, timeout=60_000):
    # null-safe: a page opened from a link may not have rendered the experiment's tab yet
    page.wait_for_function(f"(document.querySelector('#{sid}')?.innerText || '').includes({json.dumps(text)})",
                           timeout=timeout)


def test_round_trip_columns_start_late_and_share_one_slider(page):
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.round_trip import round_trip
    from diffusion_viz.sampling import SampleSettings
    from diffusion_viz.ui import atlas, logic

    _open_experiments(page, "Round trip")
    page.click("#dv-rt-run")  # the example photo, no prompt, DDIM 50 steps, cosine, t = 200 ... 999
    _wait_status(page, "dv-rt-status", "Started from the example photo")
    page.wait_for_function("window.dvPlayers['dv-rt-player'] && window.dvPlayers['dv-rt-player'].frames() === 50")
    titles = page.eval_on_selector_all("#dv-rt-player .dv-col-title", "es => es.map(e => e.innerText)")
    assert titles == ["from t = 199: 90 % power left", "from t = 399: 65 % power left",
                      "from t = 599: 34 % power left", "from t = 799: 9.4 % power left",
                      "from t = 999: 2.4e-07 % power left"]
    assert "(Steps skipped of 50: 40, 30, 20, 10, 0.)" in page.inner_text("#dv-rt-status")

    # the same runs, made here: at slider position 25 the first column (it starts at step 40) still shows its
    # start, dimmed; the t = 599 column (starts at step 20) shows its 6th frame, x_t derived in the browser
    from diffusion_viz.images import load_image

    model = get_model("emoji-exact")
    photo = load_image(logic.example_photos()[0])
    rt = round_trip(model, photo, SampleSettings(prompt="", steps=50, scheduler="ddim", schedule="cosine", seed=0),
                    [200, 400, 600, 800, 999])
    page.evaluate("window.dvPlayers['dv-rt-player'].seek(25)")
    for col, frame in ((0, 0), (2, 5)):
        run = rt.runs[col]
        want = atlas.decode_column(logic.player_column(run.frames, model)["strips"],
                                   [f.alpha_bar for f in run.frames])
        for panel in ("x_t", "x0"):
            shown = _canvas(page, "dv-rt-player", col, panel).reshape(64, 64, 4)[..., :3]
            np.testing.assert_array_equal(shown, want[panel][frame], err_msg=f"column {col} {panel}")
    cols = page.query_selector_all("#dv-rt-player .dv-col")
    assert "dv-waiting" in cols[0].get_attribute("class") and "dv-waiting" not in cols[2].get_attribute("class")
    assert "starts at step 41" in cols[0].inner_text() and "step 26/50" in cols[2].inner_text()
    page.eval_on_selector("#dv-rt-status", "e => e.scrollIntoView({block: 'start'})")
    shot(page, "round-trip")
    assert not page.errors


def test_round_trip_from_an_emoji_and_a_bad_photo(page, tmp_path):
    _open_experiments(page, "Round trip")
    page.click("#dv-rt-emoji input")
    page.keyboard.type("rocket")
    page.get_by_role("option", name="rocket", exact=True).click()
    page.click("#dv-rt-run")
    _wait_status(page, "dv-rt-status", "Started from the training emoji rocket")
    assert "t = 199 → comes back" in page.inner_text("#dv-rt-status")  # from t = 199 the rocket returns
    # a file that is not an image (an uploaded photo comes before the emoji): a clear message, and the
    # next run works
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    page.set_input_files("#dv-rt-photo input[type=file]", str(bad))
    page.wait_for_timeout(500)
    page.click("#dv-rt-run")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')]"
                           ".some(e => /not an image|could not|cannot/i.test(e.innerText))", timeout=30_000)
    close_toasts(page)
    page.click("#dv-rt-photo button[aria-label='Clear']")
    page.set_input_files("#dv-rt-photo input[type=file]", str(ROOT / "assets" / "examples" / "wheel.png"))
    page.wait_for_timeout(500)
    page.click("#dv-rt-run")
    _wait_status(page, "dv-rt-status", "Started from your photo")


def test_when_decided_columns_say_where_they_switch(page):
    _open_experiments(page, "When is it decided?")
    page.click("#dv-wd-run")
    _wait_status(page, "dv-wd-status", "Ends on")
    titles = page.eval_on_selector_all("#dv-wd-player .dv-col-title", "es => es.map(e => e.innerText)")
    assert titles == ["“rocket” only", "switch after step 5", "switch after step 12", "switch after step 25",
                      "switch after step 38", "“cat” only"]
    text = page.inner_text("#dv-wd-status")
    assert text.startswith("Ends on: “rocket” only → rocket;") and text.rstrip(".").endswith("“cat” only → cat")
    # the deterministic DDIM cannot take new noise part-way: a message, not a crash
    page.get_by_label("new noise (DDPM, Euler a)").check()
    page.click("#dv-wd-run")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')]"
                           ".some(e => e.innerText.includes('Pick ddpm or euler_a'))", timeout=30_000)
    close_toasts(page)
    page.eval_on_selector("#dv-wd-status", "e => e.scrollIntoView({block: 'start'})")
    shot(page, "when-decided")
    assert not page.errors


def test_seed_grid_tallies_the_prior(page):
    _open_experiments(page, "One prompt, many seeds")
    page.click("#dv-sg-run")
    _wait_status(page, "dv-sg-status", "seeds end on")
    text = page.inner_text("#dv-sg-status")
    m = re.search(r"gives dog (\d+) %; it won (\d) of 8 seeds", text)
    assert m and m.group(1) == "71", text  # the prior of dog for "animal" (the reference: 0.71)
    titles = page.eval_on_selector_all("#dv-sg-player .dv-col-title", "es => es.map(e => e.innerText)")
    assert len(titles) == 8 and titles[0].startswith("seed 0: ")
    assert int(m.group(2)) == sum(t.endswith(": dog") for t in titles)
    page.eval_on_selector("#dv-sg-status", "e => e.scrollIntoView({block: 'start'})")
    shot(page, "seed-grid")
    assert not page.errors


def test_candidates_move_with_the_slider(page):
    from diffusion_viz.candidates import frame_candidates
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, sample

    page.fill("#dv-prompt textarea", "")
    page.fill("#dv-steps input[type=number]", "20")
    page.press("#dv-steps input[type=number]", "Enter")
    page.click("#dv-generate")
    page.wait_for_function(f"{STATUS}.startsWith('Done')", timeout=60_000)
    page.wait_for_function("window.dvPlayers['dv-player'].frames() === 20 && !window.dvPlayers['dv-player'].state.live")
    model = get_model("emoji-exact")
    run = sample(model, SampleSettings(prompt="", steps=20, scheduler="ddim", schedule="cosine", seed=0))
    cands = frame_candidates(model, run.frames, "")
    for k in (0, 2, 19):
        page.evaluate(f"window.dvPlayers['dv-player'].seek({k})")
        head = page.inner_text("#dv-player .dv-cands-head")
        n = float(re.search(r"≈ ([\d.]+)", head).group(1))
        assert n == pytest.approx(cands[k]["effective"], rel=0.01, abs=0.06), (k, head)
        names = page.eval_on_selector_all("#dv-player .dv-cand img", "es => es.map(e => e.alt)")
        want = [str(model.dataset.names[i]) for i, w in cands[k]["top"] if w >= 0.005]
        assert names == want, k
        cy = float(page.eval_on_selector("#dv-player .dv-cand-curve circle", "e => e.getAttribute('cy')"))
        if k == 0:
            top_y = cy
    assert cy > top_y  # the marker went down the curve: fewer candidates at the end
    assert "of the 1,361 the prompt allows" in head
    page.evaluate("window.dvPlayers['dv-player'].seek(2)")
    page.eval_on_selector("#dv-player .dv-panels", "e => e.scrollIntoView({block: 'start'})")
    shot(page, "candidates")
    # the trained network has no such list, and the status says why
    page.click("#dv-model input")
    page.get_by_role("option", name="emoji-unet", exact=True).click()
    page.wait_for_timeout(300)
    page.click("#dv-generate")
    page.wait_for_function(f"{STATUS}.startsWith('Done')", timeout=60_000)
    status = page.inner_text("#dv-status")
    assert "a trained network's guess is not" in status
    assert re.search(r"Its nearest training emoji: .+ \(RMS distance 0\.\d\d; 0 = identical\)", status), status
    assert page.query_selector("#dv-player .dv-cands-head") is None
    assert not page.errors


def test_a_copied_experiment_link_reopens_it_with_the_same_pixels(browser, server):
    from urllib.parse import parse_qs, urlparse

    from test_browser_class import _copy_link, open_page

    pg = open_page(browser, server)
    _open_experiments(pg, "One prompt, many seeds")
    pg.fill("#dv-sg-prompt textarea", "fruit")
    pg.fill("#dv-sg-seed input", "2")
    pg.fill("#dv-sg-count input[type=number]", "3")
    pg.press("#dv-sg-count input[type=number]", "Enter")
    pg.click("#dv-sg-run")
    _wait_status(pg, "dv-sg-status", "3 seeds end on")
    pg.evaluate("window.dvPlayers['dv-sg-player'].seek(7)")
    url = _copy_link(pg)
    query = parse_qs(urlparse(url).query)
    assert query["tab"] == ["experiments"] and query["exp"] == ["seeds"] and query["prompt"] == ["fruit"]
    assert query["count"] == ["3"] and query["seed"] == ["2"] and query["step"] == ["7"]
    before = [_canvas(pg, "dv-sg-player", c, "x_t") for c in range(3)]

    other = open_page(browser, url)  # it opens the seed grid, runs it, and puts the slider at step 8
    _wait_status(other, "dv-sg-status", "3 seeds end on")
    other.wait_for_function("window.dvPlayers['dv-sg-player'].position() === 7")
    assert other.input_value("#dv-sg-prompt textarea") == "fruit"
    for c in range(3):
        np.testing.assert_array_equal(_canvas(other, "dv-sg-player", c, "x_t"), before[c], err_msg=f"column {c}")
    assert not pg.errors and not other.errors
    pg.context.close()
    other.context.close()



def test_round_trip_from_a_drawing(page):
    _open_experiments(page, "Round trip")
    page.get_by_text("…or draw one").click()
    page.wait_for_selector("#dv-rt-sketch canvas", timeout=20_000)
    page.click("#dv-rt-sketch button[aria-label='Brush']")
    page.wait_for_timeout(300)
    box = page.query_selector_all("#dv-rt-sketch canvas")[-1].bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 60, cy - 60)
    page.mouse.down()
    for k in range(12):
        page.mouse.move(cx - 60 + 10 * k, cy - 60 + 8 * k, steps=3)
    page.mouse.up()
    page.wait_for_timeout(500)
    page.click("#dv-rt-run")
    _wait_status(page, "dv-rt-status", "Started from your drawing")
    # what goes in: the drawing at the model's size, a dark stroke on white
    src = page.eval_on_selector("#dv-rt-input img", "e => e.src")
    assert src
    assert not page.errors
