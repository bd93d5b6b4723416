"""A real browser (Debian chromium, headless) drives the app the way a teacher would.

Every test opens its own fresh page (order-independent): generate, scrub, play, stop; the other model;
forward noising with every way of moving t; compare and memorize with Stop; classroom mode from the URL;
labels that do not cover pictures; controls that need no emoji font. Set DV_SCREENSHOT_DIR=docs to
refresh the README screenshots.
"""

import os
import re
from pathlib import Path

import pytest
from conftest import CHROMIUM, launch_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed at /usr/bin/chromium"),
]
playwright = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
PlaywrightTimeoutError = playwright.TimeoutError

ROOT = Path(__file__).resolve().parents[1]
STATUS = "(document.querySelector('#dv-status')?.innerText || '')"


@pytest.fixture(scope="module")
def server():
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server
    from diffusion_viz.ui.cache import RESULTS

    configure_torch_threads()
    RESULTS.clear()  # every run below is computed, not replayed from an earlier test's cache
    demo, url = start_server()
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def open_page(browser, url, width=1280, height=800, state="visible"):
    """A fresh page; ``state="attached"`` when a link may open another tab than Denoise."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_selector("#dv-generate", state=state)
    return pg


@pytest.fixture()
def page(browser, server):
    pg = open_page(browser, server)
    yield pg
    pg.context.close()


def close_toasts(page):
    """Dismiss leftover messages (they may vanish on their own while we click)."""
    page.evaluate("document.querySelectorAll('.toast-body').forEach(e => e.style.display = 'none')")


def shot(page, name):
    folder = os.environ.get("DV_SCREENSHOT_DIR")
    if folder:
        close_toasts(page)
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def player(page, expr, pid="dv-player"):
    return page.evaluate(f"window.dvPlayers['{pid}'].{expr}")


def set_number(page, selector, value):
    page.fill(f"{selector} input[type=number]", str(value))
    page.press(f"{selector} input[type=number]", "Enter")


def pick(page, dropdown, option):
    page.click(f"{dropdown} input")
    page.get_by_role("option", name=option, exact=True).click()


def expected_pictures(args, model_name, compare_columns=None):
    """What the server's player payload decodes to (atlas.decode_column: the reference the JavaScript
    follows), made again in this process: runs are deterministic for their settings."""
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample
    from diffusion_viz.ui import atlas, logic

    model = get_model(model_name)
    settings = logic.make_settings(*args)
    frames = logic.thin_frames(sample(model, settings).frames)
    col = logic.player_column(frames, model)
    return atlas.decode_column(col["strips"], [f.alpha_bar for f in frames])


def check_pixels(page, pid, args, model_name, steps, col=0, expected=None, panels=("x_t", "x0", "eps")):
    """The player shows step k's exact pixels at step k: read its canvases back."""
    import numpy as np

    expected = expected if expected is not None else expected_pictures(args, model_name)
    for k in steps:
        for panel in panels:  # seek and read in one go: a chunk arriving in between would move the player
            flat = page.evaluate(f"(() => {{ const p = window.dvPlayers['{pid}']; p.seek({k}); "
                                 f"return p.pixels('{panel}', {col}); }})()")
            shown = np.asarray(flat, np.uint8).reshape(expected[panel].shape[1:3] + (4,))[..., :3]
            np.testing.assert_array_equal(shown, expected[panel][k], err_msg=f"{panel} at step {k}")


def select_tab(page, name):
    """Click a tab; on a narrow screen gradio moves the last tabs into its "More tabs" menu (the page's own
    way to reach them), so open that first when the tab is not in the bar."""
    tab = page.get_by_role("tab", name=name)
    if tab.count():
        tab.click()
        return
    page.click("button[aria-label='More tabs']")
    page.click(f".overflow-dropdown button:has-text('{name}')")


def generate_and_wait(page, frames):
    page.click("#dv-generate")
    page.wait_for_function(f"{STATUS}.startsWith('Done')", timeout=60_000)
    page.wait_for_function(f"window.dvPlayers['dv-player'].frames() === {frames} && "
                           "!window.dvPlayers['dv-player'].state.live", timeout=30_000)


def test_generate_scrub_play_and_keys(page):
    generate_and_wait(page, 50)
    # The finished run is shown: the last step, three data-URI pictures, its numbers, the conditioning.
    assert page.inner_text("#dv-player .dv-step") == "step 50 / 50"
    sizes = page.eval_on_selector_all("#dv-player canvas.dv-img", "els => els.map(e => [e.width, e.height])")
    assert sizes == [[64, 64]] * 3  # native size, drawn from the run's PNG strips
    assert "cat" in page.inner_text("#dv-conditioning") and "prior" in page.inner_text("#dv-conditioning")
    assert page.eval_on_selector("#dv-player canvas.dv-img", "e => getComputedStyle(e).imageRendering") == "pixelated"
    assert page.eval_on_selector("#dv-player canvas.dv-img", "e => e.getBoundingClientRect().width") >= 200
    check_pixels(page, "dv-player", ("cat", 50, 0, 1.0, "ddim", "cosine"), "emoji-exact", [0, 25, 49])
    assert "The result is the training emoji" in page.inner_text("#dv-status")

    # Scrub: the slider swaps pictures in the browser (no request needed); the numbers follow.
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.eval_on_selector("#dv-player .dv-slider",
                          "el => { el.value = 10; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert page.inner_text("#dv-player .dv-step") == "step 11 / 50"
    frame10 = page.evaluate("(({img, ...n}) => n)(window.dvPlayers['dv-player'].state.cols[0].frames[10])")
    numbers = page.inner_text("#dv-player .dv-numbers")
    assert f"t = {round(frame10['t'])}" in numbers
    assert f"signal power left: {100 * frame10['alpha_bar']:.1f} %" in numbers
    assert f"noise left √(1−ᾱ) = {(1 - frame10['alpha_bar']) ** 0.5:.3f}" in numbers
    assert not [u for u in requests if "/gradio_api/" in u]
    shot(page, "denoise")

    # Buttons, then the keyboard: arrows step, Home/End jump, space plays and pauses.
    page.click("#dv-player button[data-act='back']")
    assert player(page, "position()") == 9
    page.click("#dv-player button[data-act='fwd']")
    page.click("#dv-player button[data-act='fwd']")
    assert player(page, "position()") == 11
    page.focus("#dv-player .dv-slider")
    page.keyboard.press("ArrowRight")
    assert player(page, "position()") == 12
    page.keyboard.press("Home")
    assert player(page, "position()") == 0
    page.keyboard.press("End")
    assert player(page, "position()") == 49
    page.keyboard.press("Home")
    page.keyboard.press(" ")
    assert player(page, "playing()")
    page.wait_for_function("window.dvPlayers['dv-player'].position() > 3")
    page.keyboard.press(" ")
    assert not player(page, "playing()")
    assert page.inner_text("#dv-player .dv-play").strip() == "Play"
    assert not page.errors


def test_the_trained_unet_runs_in_the_denoise_tab(page):
    """Issue: emoji-unet crashed after 49 of 50 steps (the nearest-emoji lookup was per model). Also: the
    player shows each step's exact pixels while the run still streams in, and after."""
    pick(page, "#dv-model", "emoji-unet")
    set_number(page, "#dv-steps", 60)
    args = ("cat", 60, 0, 1.0, "ddim", "cosine")
    expected = expected_pictures(args, "emoji-unet")
    page.click("#dv-generate")
    page.wait_for_function("window.dvPlayers['dv-player'] && window.dvPlayers['dv-player'].state.live && "
                           "window.dvPlayers['dv-player'].frames() >= 1", timeout=60_000)
    live = page.evaluate("window.dvPlayers['dv-player'].frames()")
    check_pixels(page, "dv-player", args, "emoji-unet", [0, live - 1], expected=expected)  # during streaming
    page.wait_for_function(f"{STATUS}.startsWith('Done')", timeout=60_000)
    page.wait_for_function("window.dvPlayers['dv-player'].frames() === 60 && !window.dvPlayers['dv-player'].state.live")
    assert live < 60, "the run was over before the test could look at it while streaming"
    assert page.eval_on_selector("#dv-player canvas.dv-img", "e => e.width") == 32
    check_pixels(page, "dv-player", args, "emoji-unet", [0, 30, 59], expected=expected)
    assert page.inner_text("#dv-status").startswith("Done: 60 steps")
    assert "Something went wrong" not in page.inner_text("body") and not page.errors


def test_stop_says_where_it_stopped_and_keeps_the_frames(page):
    pick(page, "#dv-model", "emoji-unet")  # ~40 ms a step: time to press Stop
    page.fill("#dv-prompt textarea", "")
    set_number(page, "#dv-steps", 200)
    page.click("#dv-generate")
    page.wait_for_function("window.dvPlayers['dv-player'] && window.dvPlayers['dv-player'].frames() >= 5",
                           timeout=60_000)
    page.click("#dv-stop")
    page.wait_for_function(f"{STATUS}.startsWith('Stopped at step')", timeout=30_000)
    m = re.match(r"Stopped at step (\d+) of 200\.", page.inner_text("#dv-status"))
    assert m, page.inner_text("#dv-status")
    shown = int(m.group(1))
    assert 5 <= shown < 200 and player(page, "frames()") == shown and not player(page, "state.live")
    assert page.inner_text("#dv-player .dv-step") == f"step {shown} / {shown}"
    page.eval_on_selector("#dv-player .dv-slider",
                          "el => { el.value = 2; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert page.inner_text("#dv-player .dv-step") == f"step 3 / {shown}"  # still playable
    page.wait_for_timeout(1500)
    assert page.inner_text("#dv-status").startswith("Stopped at step")  # nothing overwrote it
    assert "Error" not in page.inner_text("#dv-denoise-main")  # no error overlay on the pictures
    assert not page.errors


def test_other_prompt_same_seed_is_one_click(page):
    page.click("#dv-quick-dog")
    page.wait_for_function("(document.querySelector('#dv-conditioning')?.innerText || '').includes('“dog”')", timeout=30_000)
    assert page.input_value("#dv-prompt textarea, #dv-prompt input") == "dog"
    assert page.input_value("#dv-seed input") == "0"


def _set_slider(page, selector, value):
    page.eval_on_selector(f"{selector} input[type=range]", """(el, v) => {
        el.value = v; el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true})); el.dispatchEvent(new Event('pointerup', {bubbles: true}));
    }""", value)


PLOT_IMG = "#dv-schedule-plot .matplotlib img"


def _plot_src(page):
    return page.eval_on_selector(PLOT_IMG, "e => e.src")


def test_forward_upload_slider_keys_and_plots(page):
    page.get_by_role("tab", name="2 · Forward noising").click()
    from diffusion_viz.images import load_image
    from diffusion_viz.schedules import get_schedule

    photo = ROOT / "assets" / "examples" / "landscape.png"
    rgb = load_image(photo)
    h, w = rgb.shape[:2]
    centre = tuple(int(v) for v in rgb[h // 2, w // 2])
    page.set_input_files("#dv-photo input[type=file]", str(photo))
    page.wait_for_function(f"(document.querySelector('#dv-arithmetic')?.innerText || '').includes('{centre}, each')",
                           timeout=30_000)
    assert f"x={w // 2}, y={h // 2}" in page.inner_text("#dv-arithmetic")
    # the pixel boxes say which pixel the sums use (they showed -1 before)
    page.wait_for_function(f"document.querySelector('#dv-px input').value === '{w // 2}' && "
                           f"document.querySelector('#dv-py input').value === '{h // 2}'")

    # On a loaded machine the first move can land while the upload's own handlers still run and be
    # superseded by them; a user would move the slider again, and so does the test (at most 3 times, each
    # time to another value: setting the same value again fires no change event).
    for attempt, target in enumerate((900, 899, 900)):
        ab = get_schedule("linear").alphas_cumprod[target]
        _set_slider(page, "#dv-t", target)
        try:
            page.wait_for_function(f"(document.querySelector('#dv-arithmetic')?.innerText || '').includes('t = {target}') && "
                                   f"(document.querySelector('#dv-noised-0')?.innerText || '').includes('{ab:.4f}')",
                                   timeout=10_000 * (attempt + 1))
            page.wait_for_timeout(500)  # still so? (a late answer of the upload's own handler would undo it)
            if f"t = {target}" in page.inner_text("#dv-arithmetic"):
                break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    assert re.search(r"linear: ᾱ = 0\.0\d{3}", page.inner_text("#dv-noised-0"))
    # the label sits above the picture, not over its top-left corner
    label_bottom = page.eval_on_selector("#dv-noised-0 label", "e => e.getBoundingClientRect().bottom")
    img_top = page.eval_on_selector("#dv-noised-0 img", "e => e.getBoundingClientRect().top")
    assert label_bottom <= img_top + 1

    # Arrow keys on the slider and Enter in its number box move the pictures *and* the plots.
    page.wait_for_selector(PLOT_IMG, timeout=30_000)
    page.wait_for_timeout(1000)  # the plots for this t may still be on their way
    before = _plot_src(page)
    page.focus("#dv-t input[type=range]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"(document.querySelector('#dv-arithmetic')?.innerText || '').includes('t = {target + 1}')",
                           timeout=20_000)
    changed = "(b) => { const e = document.querySelector('" + PLOT_IMG + "'); return e && e.src !== b; }"
    page.wait_for_function(changed, arg=before, timeout=20_000)
    before = _plot_src(page)
    set_number(page, "#dv-t", 100)
    page.wait_for_function("(document.querySelector('#dv-arithmetic')?.innerText || '').includes('t = 100')", timeout=20_000)
    page.wait_for_function(changed, arg=before, timeout=20_000)
    page.wait_for_timeout(1000)
    shot(page, "forward")
    assert not page.errors


def test_a_fifth_schedule_is_unticked_with_a_message(page):
    page.get_by_role("tab", name="2 · Forward noising").click()
    page.wait_for_function("(document.querySelector('#dv-arithmetic')?.innerText || '').includes('Pixel at')", timeout=30_000)
    page.click("#dv-schedules label:has-text('sigmoid')")
    page.wait_for_function("document.querySelectorAll('#dv-schedules input:checked').length === 4")
    page.click("#dv-schedules label:has-text('laplace')")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')]"
                           ".some(e => e.innerText.includes('at most 4'))", timeout=30_000)
    page.wait_for_timeout(500)
    checked = page.eval_on_selector_all("#dv-schedules input:checked", "els => els.length")
    assert checked == 4 and not page.is_checked("#dv-schedules label:has-text('laplace') input")
    assert "Pick at most 4" not in page.inner_text("body")  # no error on top of the message


def test_bad_upload_shows_a_message(page, tmp_path):
    page.get_by_role("tab", name="2 · Forward noising").click()
    page.wait_for_function("(document.querySelector('#dv-arithmetic')?.innerText || '').includes('Pixel at')", timeout=30_000)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"definitely not a png")
    page.set_input_files("#dv-photo input[type=file]", str(bad))
    page.wait_for_function("[...document.querySelectorAll('.toast-body')]"
                           ".some(e => e.innerText.includes('not an image Pillow can read'))", timeout=30_000)
    # the app keeps serving: a good photo works again
    page.click("#dv-photo button[aria-label='Clear']")
    page.set_input_files("#dv-photo input[type=file]", str(ROOT / "assets" / "examples" / "wheel.png"))
    page.wait_for_function("(document.querySelector('#dv-arithmetic')?.innerText || '').includes('(255, 255, 255), each')",
                           timeout=30_000)


def test_compare_with_the_unet_and_how_tab(page):
    page.get_by_role("tab", name="3 · Compare").click()
    # dropdowns are wide enough for their longest choice
    widths = page.eval_on_selector_all("#dv-cmp-columns input[role=listbox], #dv-cmp-columns .wrap-inner input",
                                       "els => els.map(e => e.scrollWidth <= e.clientWidth + 1)")
    assert widths and all(widths)
    page.click("#dv-compare")
    page.wait_for_function("window.dvPlayers && window.dvPlayers['dv-cmp-player'] && "
                           "window.dvPlayers['dv-cmp-player'].state.cols.length === 4", timeout=60_000)
    page.eval_on_selector("#dv-cmp-player .dv-slider",
                          "el => { el.value = 0; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    steps = page.eval_on_selector_all("#dv-cmp-player .dv-numbers", "els => els.map(e => e.innerText)")
    assert len(steps) == 4 and all("step 1/" in s for s in steps)
    page.eval_on_selector("#dv-cmp-player .dv-slider",
                          "el => { el.value = el.max; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    steps = page.eval_on_selector_all("#dv-cmp-player .dv-numbers", "els => els.map(e => e.innerText)")
    assert "step 10/10" in steps[2] and "step 50/50" in steps[0]  # aligned by fraction of the run
    page.wait_for_selector("#dv-cmp-plot img", timeout=30_000)
    assert "snake" in page.inner_text("#dv-cmp-results")  # cat + scaled_linear, seed 0: the lesson
    from diffusion_viz.ui import atlas, compare_tab, logic

    columns = [{k: v for k, v in c.items() if k != "use"} for c in compare_tab.DEFAULT_COLUMNS]
    _, player_cols, _ = logic.run_compare("cat", 0, "emoji-exact", columns)
    for k, pc in enumerate(player_cols):  # every column's pixels, at the start, the middle and the end
        want = atlas.decode_column(pc["strips"], [f["alpha_bar"] for f in pc["frames"]])
        n = len(pc["frames"])
        for pos, i in ((0, 0), (49, n - 1)):
            for panel in ("x0", "x_t"):
                flat = page.evaluate(f"(() => {{ const p = window.dvPlayers['dv-cmp-player']; p.seek({pos}); "
                                     f"return p.pixels('{panel}', {k}); }})()")
                shown = __import__("numpy").asarray(flat, "uint8").reshape(64, 64, 4)[..., :3]
                assert (shown == want[panel][i]).all(), (k, panel, i)
    page.eval_on_selector("#dv-cmp-results", "e => e.scrollIntoView()")
    shot(page, "compare")
    # Issue: emoji-unet crashed in Compare too.
    pick(page, "#dv-cmp-model", "emoji-unet")
    page.click("#dv-compare")
    page.wait_for_function("(document.querySelector('#dv-cmp-results')?.innerText || '').startsWith('Results') && "
                           "window.dvPlayers['dv-cmp-player'].state.cols.length === 4 && "
                           "document.querySelector('#dv-cmp-player canvas.dv-img').width === 32", timeout=120_000)
    page.get_by_role("tab", name="6 · How it works").click()
    assert "Myths, corrected" in page.inner_text("body")
    shot(page, "how")
    assert not page.errors


def test_compare_stop(page):
    page.get_by_role("tab", name="3 · Compare").click()
    pick(page, "#dv-cmp-model", "emoji-unet")
    page.eval_on_selector_all("#dv-cmp-columns input[type=number]", """els => els.forEach((e, i) => {
        if (i % 2 === 0) { e.value = 200; e.dispatchEvent(new Event('input', {bubbles: true}));
                           e.dispatchEvent(new Event('change', {bubbles: true})); } })""")
    page.click("#dv-compare")
    page.wait_for_function("(document.querySelector('#dv-cmp-results')?.innerText || '').startsWith('Comparing')",
                           timeout=30_000)
    page.click("#dv-cmp-stop")
    page.wait_for_function("(document.querySelector('#dv-cmp-results')?.innerText || '').startsWith('Stopped')",
                           timeout=30_000)
    page.wait_for_timeout(1500)
    assert page.inner_text("#dv-cmp-results").startswith("Stopped")
    assert not page.errors


def test_memorize_tab_shows_a_copy_and_a_new_picture(page):
    page.get_by_role("tab", name="4 · Memorize vs generalize").click()
    page.click("#dv-mvg-run")
    page.wait_for_function("document.querySelectorAll('#dv-mvg-cards img.dv-mvg-img').length === 4 && "
                           "[...document.querySelectorAll('#dv-mvg-cards img.dv-mvg-img')]"
                           ".every(e => e.complete && e.naturalWidth === 32)", timeout=60_000)
    cards = page.query_selector_all("#dv-mvg-cards .dv-mvg-card")
    assert [c.get_attribute("data-model") for c in cards] == ["emoji-exact-32", "emoji-unet"]
    for card in cards:  # each column: the sample and its nearest training emoji, big and crisp
        imgs = card.query_selector_all("img.dv-mvg-img")
        assert len(imgs) == 2 and all(i.get_attribute("src").startswith("data:image/png;base64,") for i in imgs)
        assert all(i.evaluate("e => e.getBoundingClientRect().width") >= 150 for i in imgs)
        assert imgs[0].evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
        assert "nearest training emoji" in card.inner_text()
    verdicts = page.eval_on_selector_all("#dv-mvg-cards .dv-mvg-verdict", "els => els.map(e => e.innerText)")
    assert "a copy of a training emoji" in verdicts[0]
    assert "new picture; nearest training emoji is" in verdicts[1]
    assert "memorization" in page.inner_text("#dv-mvg-why")
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(0, 0)  # no hover or focus highlight on the Run button in the screenshot
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(400)  # let the hover transition finish
    shot(page, "memorize")

    # An empty prompt is explained in a message; the tab keeps working.
    page.fill("#dv-mvg-prompt textarea, #dv-mvg-prompt input", "")
    page.click("#dv-mvg-run")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')]"
                           ".some(e => e.innerText.toLowerCase().includes('type a prompt'))", timeout=30_000)
    close_toasts(page)
    page.fill("#dv-mvg-prompt textarea, #dv-mvg-prompt input", "rocket")
    page.click("#dv-mvg-run")
    page.wait_for_function("(document.querySelector('#dv-mvg-cards')?.innerText || '').includes('rocket')", timeout=60_000)
    assert not page.errors


def test_memorize_stop(page):
    page.get_by_role("tab", name="4 · Memorize vs generalize").click()
    set_number(page, "#dv-mvg-steps", 200)
    page.fill("#dv-mvg-prompt textarea, #dv-mvg-prompt input", "snowman")
    page.click("#dv-mvg-run")
    page.wait_for_function("(document.querySelector('#dv-mvg-status')?.innerText || '').startsWith('Drawing')",
                           timeout=30_000)
    page.click("#dv-mvg-stop")
    page.wait_for_function("(document.querySelector('#dv-mvg-status')?.innerText || '').startsWith('Stopped')",
                           timeout=30_000)
    page.wait_for_timeout(1500)
    assert page.inner_text("#dv-mvg-status").startswith("Stopped")
    assert "snowman" not in page.inner_text("#dv-mvg-cards")  # the stopped run left no cards
    assert not page.errors


def test_classroom_mode_from_the_url_ticks_the_box_and_reorders(browser, server):
    page = open_page(browser, server + "?classroom=1")
    try:
        page.wait_for_function("document.querySelector('#dv-classroom input').checked", timeout=30_000)
        assert page.evaluate("document.body.classList.contains('dv-classroom')")
        # Compare: the pictures come before the column settings
        page.get_by_role("tab", name="3 · Compare").click()
        player_top = page.eval_on_selector("#dv-cmp-player", "e => e.getBoundingClientRect().top")
        columns_top = page.eval_on_selector("#dv-cmp-columns", "e => e.getBoundingClientRect().top")
        assert player_top < columns_top
        # unticking turns it off and takes it out of the URL (a reload keeps the teacher's choice)
        page.click("#dv-classroom input[type=checkbox]")
        page.wait_for_function("!document.body.classList.contains('dv-classroom')")
        assert "classroom" not in page.url
        page.click("#dv-classroom input[type=checkbox]")
        page.wait_for_function("document.body.classList.contains('dv-classroom')")
        assert "classroom=1" in page.url
    finally:
        page.context.close()


def test_classroom_mode_makes_pictures_bigger_on_a_big_screen(browser, server):
    page = open_page(browser, server, 1920, 1080)
    try:
        generate_and_wait(page, 50)
        before = page.eval_on_selector("#dv-player canvas.dv-img", "e => e.getBoundingClientRect().width")
        page.click("#dv-classroom input[type=checkbox]")
        page.wait_for_function("document.body.classList.contains('dv-classroom')")
        after = page.eval_on_selector("#dv-player canvas.dv-img", "e => e.getBoundingClientRect().width")
        assert after > before * 1.3
    finally:
        page.context.close()


# On a projector: the main button, the main pictures and the step slider of every tab on one screen,
# text at least 20 px (sub- and superscripts aside).
PROJECTOR_TABS = {"1 · Denoise": ("#dv-generate", "#dv-player canvas.dv-img", "#dv-player .dv-slider"),
                  "2 · Forward noising": ("#dv-t", "#dv-noised-0 img", "#dv-t input[type=range]"),
                  "3 · Compare": ("#dv-compare", "#dv-cmp-player canvas.dv-img", "#dv-cmp-player .dv-slider"),
                  "4 · Memorize vs generalize": ("#dv-mvg-run", "#dv-mvg-cards img.dv-mvg-img", None),
                  "5 · Experiments": ("#dv-rt-run", "#dv-rt-player canvas.dv-img", "#dv-rt-player .dv-slider")}
SMALL_TEXT = """() => [...document.querySelectorAll('.gradio-container *')].filter(e => e.offsetParent &&
    !['SUB', 'SUP', 'CODE'].includes(e.tagName) && !e.closest('.sr-only') && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) &&
    e.getBoundingClientRect().top < innerHeight && parseFloat(getComputedStyle(e).fontSize) < 19.5)
    .map(e => e.tagName + ' ' + getComputedStyle(e).fontSize + ' ' + e.textContent.trim().slice(0, 30))"""


@pytest.mark.parametrize("size", [(1280, 800), (1024, 768)])
def test_classroom_mode_fits_a_projector(browser, server, size):
    page = open_page(browser, server + "?classroom=1", *size)
    try:
        page.wait_for_function("document.body.classList.contains('dv-classroom')")
        page.wait_for_timeout(300)
        # all six tabs in view, none hidden behind gradio's "More tabs" menu (wrapped onto a second row if need be)
        bar = page.evaluate("""[...document.querySelectorAll('#dv-tabs [role=tablist] button[role=tab]')]
            .filter(b => b.offsetParent).map(b => { const r = b.getBoundingClientRect();
              return [b.innerText.trim(), r.left, r.right, r.bottom]; })""")
        assert [t for t, *_ in bar] == ["1 · Denoise", "2 · Forward noising", "3 · Compare", "4 · Memorize vs generalize",
                                        "5 · Experiments", "6 · How it works"], bar
        assert all(0 <= left and right <= size[0] and bottom <= 250 for _, left, right, bottom in bar), bar
        assert not page.locator("button[aria-label='More tabs']").is_visible()
        for tab, (button, picture, slider) in PROJECTOR_TABS.items():
            select_tab(page, tab)
            page.wait_for_timeout(500)
            if tab.startswith("1"):
                generate_and_wait(page, 50)
            elif tab.startswith("3"):
                page.click("#dv-compare")
                page.wait_for_function("(document.querySelector('#dv-cmp-results')?.innerText || '').startsWith('Results')",
                                       timeout=60_000)
            elif tab.startswith("4"):
                page.click("#dv-mvg-run")
                page.wait_for_function("document.querySelectorAll('#dv-mvg-cards img').length === 4", timeout=60_000)
            elif tab.startswith("5"):
                for sub, run, pid in (("When is it decided?", "#dv-wd-run", "dv-wd-player"),
                                      ("One prompt, many seeds", "#dv-sg-run", "dv-sg-player"),
                                      ("Round trip", "#dv-rt-run", "dv-rt-player")):
                    page.get_by_role("tab", name=sub).click()
                    page.click(run)
                    page.wait_for_function(f"window.dvPlayers['{pid}'] && window.dvPlayers['{pid}'].frames() >= 50",
                                           timeout=60_000)
                    if pid == "dv-rt-player":  # checked below, with the other tabs
                        continue
                    page.evaluate("window.scrollTo(0, 0)")
                    page.wait_for_timeout(300)
                    for sel in (run, f"#{pid} canvas.dv-img", f"#{pid} .dv-slider"):
                        bottom = page.evaluate(f"Math.max(...[...document.querySelectorAll('{sel}')]"
                                               ".filter(e => e.offsetParent).map(e => e.getBoundingClientRect().bottom))")
                        assert 0 < bottom <= size[1], f"{sub}: {sel} ends at {bottom:.0f} px on a {size} screen"
                    assert page.evaluate(SMALL_TEXT) == [], sub
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            for selector in filter(None, (button, picture, slider)):
                bottom = page.evaluate(f"Math.max(...[...document.querySelectorAll('{selector}')]"
                                       ".filter(e => e.offsetParent).map(e => e.getBoundingClientRect().bottom))")
                assert 0 < bottom <= size[1], f"{tab}: {selector} ends at {bottom:.0f} px on a {size} screen"
            assert page.evaluate(SMALL_TEXT) == [], tab
            if size == (1280, 800) and tab.startswith("1"):
                shot(page, "classroom")
    finally:
        page.context.close()


def test_every_button_has_words_no_emoji_font_needed(page):
    """School PCs often have no emoji font: a control whose only label is an emoji is an empty box there."""
    emoji = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u23E9-\u23FA\u25A0-\u25FF]")
    for tab in ("1 · Denoise", "2 · Forward noising", "3 · Compare", "4 · Memorize vs generalize", "5 · Experiments"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(300)
        labels = page.eval_on_selector_all(
            "button:visible, label:visible",
            "els => els.filter(e => e.offsetParent).map(e => (e.innerText || e.getAttribute('aria-label') || '').trim())")
        for text in labels:
            if emoji.search(text):
                words = emoji.sub("", text).strip()
                assert re.search(r"[A-Za-z]{2,}", words), f"{text!r} on {tab} has no words besides its icon"
    assert not re.search(emoji, page.inner_text("#dv-classroom"))


def test_downloads_show_both_files_and_the_prior_table_header_fits(page):
    generate_and_wait(page, 50)
    # the prior table's headers stay on one line ("wei/ght" wrapped before)
    heights = page.eval_on_selector_all("#dv-conditioning th", """els => els.map(e => {
        const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; })""")
    assert heights and all(n == 1 for n in heights), heights
    page.click("#dv-make-files")
    page.wait_for_function("document.querySelectorAll('#dv-downloads a[download], #dv-downloads tr.file').length >= 2",
                           timeout=120_000)
    # both the GIF and the MP4 row are inside the visible box (the MP4 row was hidden under it)
    rows = page.eval_on_selector_all("#dv-downloads tr.file, #dv-downloads a[download]", """els => els.map(e => {
        const box = document.querySelector('#dv-downloads').getBoundingClientRect(), r = e.getBoundingClientRect();
        return [e.innerText, r.bottom <= box.bottom + 1 && r.top >= box.top - 1]; })""")
    names = " ".join(t for t, _ in rows)
    assert ".gif" in names and ".mp4" in names and all(visible for _, visible in rows), rows


PAYLOADS = [
    "<img src=https://example.invalid/a.png>",
    '<a href="https://example.invalid" style="position:fixed;inset:0;background:red">win</a>',
    "![x](https://example.invalid/b.png)",
    "[click me](javascript:window.__pwned=1)",
    "<script>window.__pwned=1</script>",
    '<svg onload="window.__pwned=1"></svg>',
    '"><img src=x onerror="window.__pwned=1">',
    "<style>body{display:none}</style>",
    "['cat', 'dog'] & #1 _x_ *y*",
]


def test_prompts_cannot_inject_html_or_fetch_anything(page):
    """Issue: the prompt went into the conditioning Markdown raw: an <img> was fetched by every browser
    that showed it (the result cache shares runs), a styled <a> could cover the page. Now it is text."""
    outside = []
    page.on("request", lambda r: outside.append(r.url) if "127.0.0.1" not in r.url and not r.url.startswith("data:")
            else None)
    pick(page, "#dv-model", "emoji-exact-32")
    set_number(page, "#dv-steps", 3)
    for k, payload in enumerate(PAYLOADS):
        page.fill("#dv-prompt textarea", payload)
        page.fill("#dv-seed input", str(100 + k))
        page.click("#dv-generate")
        page.wait_for_function(f"{STATUS}.startsWith('Done') && "
                               f"window.dvPlayers['dv-player'].frames() === 3", timeout=60_000)
        page.wait_for_function("(document.querySelector('#dv-conditioning')?.innerText || '').includes('points to')")
        panel = page.inner_text("#dv-conditioning")
        assert payload in panel, (payload, panel[:200])  # shown as the text it is
        injected = page.eval_on_selector_all(
            "#dv-conditioning img, #dv-conditioning a, #dv-conditioning script, #dv-conditioning svg, "
            "#dv-conditioning style", "els => els.map(e => e.outerHTML)")
        assert injected == [], injected
    assert page.evaluate("window.__pwned === undefined") and page.is_visible("#dv-generate")
    assert outside == [], outside
    assert not page.errors


def test_a_chunk_that_arrives_while_the_first_still_decodes_is_added_to_it(page):
    """Issue (CI, slow machine): the second chunk of a streamed run came while the first was still being
    decoded; the player took it for a new run and dropped the first frames, so "step 1" showed x_t of step 2.
    Here both chunks are handed over in one go, before either can decode."""
    import json

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample
    from diffusion_viz.ui import atlas, logic

    model = get_model("emoji-exact")
    frames = sample(model, logic.make_settings("cat", 12, 0, 1.0, "ddim", "cosine")).frames
    first, rest = logic.player_column(frames[:3], model), logic.player_column(frames[3:], model)
    reset = json.dumps(logic.player_payload([first], mode="reset", total=12))
    append = json.dumps(logic.player_payload([rest], mode="append", total=12))
    page.evaluate("([a, b]) => { const p = window.dvPlayers['dv-player']; p.load(a); p.load(b); }", [reset, append])
    page.wait_for_function("window.dvPlayers['dv-player'].frames() === 12", timeout=10_000)
    expected = atlas.decode_column(first["strips"] + rest["strips"], [f.alpha_bar for f in frames])
    check_pixels(page, "dv-player", None, None, [0, 2, 3, 11], expected=expected)


def test_a_stop_keeps_exactly_the_frames_it_counted(page):
    """Flaky before: Stop said "Stopped at step 8" while a chunk still decoding then added 2 more frames.
    Here the second chunk is handed over and Stop pressed before it can decode: what Stop counted stays."""
    import json

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample
    from diffusion_viz.ui import logic

    model = get_model("emoji-exact")
    frames = sample(model, logic.make_settings("cat", 12, 0, 1.0, "ddim", "cosine")).frames
    first, rest = logic.player_column(frames[:3], model), logic.player_column(frames[3:], model)
    reset = json.dumps(logic.player_payload([first], mode="reset", total=12))
    append = json.dumps(logic.player_payload([rest], mode="append", total=12))
    page.evaluate("(a) => window.dvPlayers['dv-player'].load(a)", reset)
    page.wait_for_function("window.dvPlayers['dv-player'].frames() === 3", timeout=10_000)
    done = page.evaluate("(b) => { const p = window.dvPlayers['dv-player']; p.load(b); return p.finish().done; }", append)
    page.evaluate("window.dvPlayers['dv-player'].idle()")
    page.wait_for_timeout(300)
    assert done == 3 and player(page, "frames()") == 3 and not player(page, "state.live")


def test_a_step_the_user_went_back_to_stays_while_the_run_streams_in_and_finishes(page):
    """Noticed: a run that streams (any Stable Diffusion on a CPU) moved the player to each new frame and,
    when the finished payload came, to the last step: a teacher who had stepped back to step 1 was yanked
    away. Now the player follows new frames only while the user is at the newest one."""
    import json

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample
    from diffusion_viz.ui import logic

    model = get_model("emoji-exact")
    frames = sample(model, logic.make_settings("cat", 12, 0, 1.0, "ddim", "cosine")).frames
    chunk = lambda part, mode: json.dumps(logic.player_payload([logic.player_column(part, model)], mode=mode, total=12))
    full = json.dumps(logic.player_payload([logic.player_column(frames, model)], start="end", total=12))
    load = "(v) => window.dvPlayers['dv-player'].load(v)"
    idle = "() => window.dvPlayers['dv-player'].idle()"

    page.evaluate(load, chunk(frames[:3], "reset"))
    page.evaluate(idle)
    assert player(page, "position()") == 2  # a new run: the player shows the newest frame
    page.evaluate(load, chunk(frames[3:6], "append"))
    page.evaluate(idle)
    assert player(page, "position()") == 5  # ... and follows the frames as they come
    page.focus("#dv-player .dv-slider")
    page.keyboard.press("Home")  # the user goes back to step 1
    assert player(page, "position()") == 0
    page.evaluate(load, chunk(frames[6:9], "append"))
    page.evaluate(idle)
    assert player(page, "position()") == 0 and player(page, "frames()") == 9
    page.evaluate(load, full)  # the finished run
    page.evaluate(idle)
    assert player(page, "frames()") == 12 and player(page, "position()") == 0
    assert page.inner_text("#dv-player .dv-step") == "step 1 / 12"

    page.evaluate(load, chunk(frames[:3], "reset"))  # the next run follows again
    page.evaluate(idle)
    page.keyboard.press("End")  # at the newest frame: new frames are followed
    page.evaluate(load, chunk(frames[3:6], "append"))
    page.evaluate(idle)
    assert player(page, "position()") == 5
    page.evaluate(load, full)
    page.evaluate(idle)
    assert player(page, "position()") == 11
