"""A real browser with a (fake) webcam: take a photo, noise it, click a pixel to see its arithmetic.

Chromium's fake capture device (--use-fake-device-for-media-stream) films a test pattern, so this runs
headless in CI. It also checks that a run leaves nothing in the browser's storage.
"""

from pathlib import Path

import pytest
from conftest import CHROMIUM, launch_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed at /usr/bin/chromium"),
]
playwright = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")

ARITHMETIC = "(document.querySelector('#dv-arithmetic')?.innerText || '')"


@pytest.fixture(scope="module")
def server():
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server

    configure_torch_threads()
    demo, url = start_server()
    yield url
    demo.close()


@pytest.fixture()
def page(server):
    """A fresh browser and page for every test (order-independent), with a fake camera."""
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
        pg = context.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server)
        pg.wait_for_selector("#dv-generate")
        pg.errors = errors
        yield pg
        browser.close()


def test_a_run_leaves_nothing_in_browser_storage(page):
    """Gradio's run history would copy every streamed frame into localStorage (megabytes per run, a
    stall of 0.3-0.7 s on each new run, and one pupil's runs kept for the next): it is switched off."""
    page.evaluate("document.addEventListener('click', (e) => { if (e.target.closest('#dv-generate')) "
                  "window.__click = performance.now(); }, true)")
    for seed in (11, 12):
        page.fill("#dv-seed input", str(seed))
        shown = page.evaluate("window.dvPlayers['dv-player'].shownAt().length")
        page.click("#dv-generate")
        page.wait_for_function(f"window.dvPlayers['dv-player'].shownAt().length > {shown}", timeout=30_000)
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').startsWith('Done')", timeout=30_000)
    keys = page.evaluate("Object.keys(localStorage).concat(Object.keys(sessionStorage))")
    assert not [k for k in keys if "run-history" in k], keys
    assert page.evaluate("JSON.stringify(localStorage).length") < 10_000


def test_webcam_photo_is_noised_and_a_click_picks_the_pixel(page):
    page.get_by_role("tab", name="2 · Forward noising").click()
    size = "(() => { const i = document.querySelector('#dv-noised-0 img'); return i ? [i.naturalWidth, i.naturalHeight] : [0, 0]; })()"
    page.wait_for_function(f"{ARITHMETIC}.includes('Pixel at') && {size}[0] > 0", timeout=30_000)
    example = page.evaluate(size)  # the tab opens on a bundled example photo
    page.get_by_text("…or use the webcam").click()
    page.click("#dv-webcam [title='grant webcam access'] button")
    page.wait_for_function("(() => { const v = document.querySelector('#dv-webcam video'); "
                           "return v && v.videoWidth > 0 && v.readyState >= 2; })()", timeout=20_000)
    page.click("#dv-webcam button[aria-label='capture photo']")
    # The photo is noised in place of the example (4:3 from the fake camera, at most 1024 px); its centre
    # pixel is explained until the user clicks elsewhere.
    page.wait_for_function(f"{size}[0] > 0 && {size}.join() !== '{','.join(map(str, example))}'", timeout=30_000)
    w, h = page.evaluate(size)
    assert 0 < max(w, h) <= 1024 and w * 3 == h * 4, (w, h, example)
    page.wait_for_function(f"{ARITHMETIC}.includes('x={w // 2}, y={h // 2}')", timeout=10_000)
    check_arithmetic(page.inner_text("#dv-arithmetic"))

    # Click a quarter of the way into the first noised picture, once the page has stopped moving.
    measure = """() => {
        const img = document.querySelector('#dv-noised-0 img'), r = img.getBoundingClientRect();
        // object-fit: contain - the picture may be letterboxed inside the element
        const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        const w = img.naturalWidth * s, h = img.naturalHeight * s;
        return {x: r.left + (r.width - w) / 2, y: r.top + (r.height - h) / 2, w, h};
    }"""
    box, previous = page.evaluate(measure), None
    while box != previous:
        page.wait_for_timeout(400)
        box, previous = page.evaluate(measure), box
    page.mouse.click(box["x"] + 0.25 * box["w"], box["y"] + 0.25 * box["h"])
    page.wait_for_function(f"!{ARITHMETIC}.includes('x={w // 2}, y={h // 2}')", timeout=20_000)
    px = int(page.input_value("#dv-px input"))
    py = int(page.input_value("#dv-py input"))
    assert abs(px - w / 4) <= 3 and abs(py - h / 4) <= 3, (px, py, w, h)
    page.wait_for_function(f"{ARITHMETIC}.includes('x={px}, y={py}')", timeout=20_000)
    check_arithmetic(page.inner_text("#dv-arithmetic"))
    assert not page.errors


def check_arithmetic(text: str) -> None:
    """The numbers on screen obey the forward formula: x0 = p / 127.5 - 1, x_t = sqrt(ab) x0 + sqrt(1-ab) eps."""
    import math
    import re

    def triple(pattern):
        m = re.search(pattern + r"\s*\(([-+\d., ]+)\)", text)
        assert m, (pattern, text)
        return [float(v) for v in m.group(1).split(",")]

    rgb, x0, eps = triple(r"\(R, G, B\) ="), triple(r"x0 ="), triple(r"eps \(Gaussian, unbounded\) =")
    ab = float(re.search(r"alpha_bar = ([\d.]+):", text).group(1))
    x_t = triple(r"\* eps =")
    for p, a, e, b in zip(rgb, x0, eps, x_t):
        assert abs(p / 127.5 - 1 - a) < 1e-3
        assert abs(math.sqrt(ab) * a + math.sqrt(1 - ab) * e - b) < 3e-3
