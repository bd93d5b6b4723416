"""The player's own route (ui/run_route.py) and the one-computation rule (cache.RUNNING).

In process: a run asked for twice at once is computed once; a run that ends without a result lets the
waiter compute it. Through a launched server: the route streams the run line by line, its pictures are
the sampler's, bad input is a 400 with the page's words, and a closed connection stops the run. In a real
browser: Generate fetches the route, the player shows the run once (gradio's copy is not loaded again),
and with the route unreachable gradio's payload still fills the player.
"""

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from diffusion_viz.ui import atlas, denoise_tab, logic
from diffusion_viz.ui.cache import RESULTS, RUNNING, run_key

ARGS = ("cat", 30, 0, 1.0, "ddim", "cosine", "emoji-exact")


def _fresh(seed):
    """A run nobody has made in this process: cleared cache, its own seed."""
    RESULTS.clear()
    return ("cat", 30, seed, 1.0, "ddim", "cosine", "emoji-exact")


def _is_skip(value):
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def test_a_run_asked_for_twice_at_once_is_computed_once():
    args = _fresh(7101)
    runs = denoise_tab.RUN_STATS["runs"]
    lead = denoise_tab.run_outputs(*args, first_send=0.0)
    next(lead)  # "Sampling…"
    first = next(lead)  # the first frames: the run is under way, and its key is taken
    assert json.loads(first[0])["mode"] == "reset"
    key = run_key("emoji-exact", logic.make_settings(*args[:6]))
    assert key in RUNNING

    other = denoise_tab.run_outputs(*args)
    assert "Sampling" in next(other)[4]
    waiting = next(other)  # after 0.25 s of waiting: nothing to show yet
    assert all(_is_skip(v) for v in waiting), waiting
    *_, final = lead
    assert key not in RUNNING
    copied = next(other)
    assert copied[0] == final[0] and copied[4] == final[4]  # the same finished run, the same words
    assert "cache" not in copied[4]  # it was made for this click, not before
    assert denoise_tab.RUN_STATS["runs"] == runs + 1


def test_a_run_that_ends_without_a_result_is_made_by_the_one_who_waited():
    args = _fresh(7102)
    runs = denoise_tab.RUN_STATS["runs"]
    lead = denoise_tab.run_outputs(*args, first_send=0.0)
    next(lead)
    next(lead)
    other = denoise_tab.run_outputs(*args)
    next(other)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("outs", list(other)))
    thread.start()
    time.sleep(0.1)
    lead.close()  # stopped (a closed tab): no result is stored
    thread.join(60)
    final = json.loads(box["outs"][-1][0])
    assert final["mode"] == "full" and len(final["columns"][0]["frames"]) == 30
    assert denoise_tab.RUN_STATS["runs"] == runs + 2


def test_the_pages_event_does_not_send_frames_the_route_brings():
    """generate_page: given the run's key (the route brings its frames) the player's output is skipped in
    every message; with no key, or another run's, the frames come as from /generate."""
    args = _fresh(7103)
    key = denoise_tab.key_id(run_key("emoji-exact", logic.make_settings(*args[:6])))
    routed = list(denoise_tab.generate_page(*args, key))
    assert routed and all(_is_skip(out[0]) for out in routed)
    assert routed[-1][4].startswith("Done: 30 steps")
    for other in ("", "0123456789abcdef"):
        outs = list(denoise_tab.generate_page(*args, other))
        assert json.loads(outs[-1][0])["mode"] == "full"


# ---- through a launched server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    from diffusion_viz.ui.app import start_server

    RESULTS.clear()
    demo, url = start_server()
    yield url
    demo.close()


def _query(args):
    from urllib.parse import urlencode

    return urlencode(dict(zip(("prompt", "steps", "seed", "guidance", "scheduler", "schedule", "model"), args)))


def _lines(url, args, extra=""):
    with urllib.request.urlopen(f"{url}dv/run?{_query(args)}{extra}", timeout=60) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r]


def test_the_route_streams_the_samplers_pictures(server):
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import sample

    args = _fresh(7201)
    start, *lines = _lines(server, args, "&lean=1")  # as the page's player asks
    key = denoise_tab.key_id(run_key("emoji-exact", logic.make_settings(*args[:6])))
    assert start == {"mode": "start", "key": key}  # before any work: the page passes it to gradio's event
    assert lines[0]["mode"] == "reset" and lines[-1]["mode"] == "full"
    assert all(line["mode"] == "append" for line in lines[1:-1])
    assert len(lines[0]["columns"][0]["frames"]) < 30  # the first picture goes out before the run is over
    final = lines[-1]
    assert {line["key"] for line in lines} == {key}
    col = final["columns"][0]
    assert [f["index"] for f in col["frames"]] == list(range(30))
    # each frame's pictures travel once: the finished line leaves out the frames the lines before carried
    streamed = [strip for line in lines[:-1] for strip in line["columns"][0]["strips"]]
    assert final["sent"] == sum(s["count"] for s in streamed) == sum(len(x["columns"][0]["frames"]) for x in lines[:-1])
    assert final["sent"] + sum(s["count"] for s in col["strips"]) == 30
    shown = atlas.decode_column(streamed + col["strips"], [f["alpha_bar"] for f in col["frames"]])
    model = get_model("emoji-exact")
    traj = sample(model, logic.make_settings(*args[:6]))
    want = logic.player_column(traj.frames, model)
    expected = atlas.decode_column(want["strips"], [f.alpha_bar for f in traj.frames])
    for panel in ("x_t", "x0", "eps"):
        np.testing.assert_array_equal(shown[panel], expected[panel], err_msg=panel)

    # gradio's /generate (the same click's other half) then takes the same run from the cache: the same
    # payload, nothing computed again, and the words say it was made now. A later request says "cache".
    runs = denoise_tab.RUN_STATS["runs"]
    out = list(denoise_tab.generate(*args))[-1]
    complete = json.loads(out[0])  # the whole run: every strip
    assert "sent" not in complete and complete["columns"][0]["frames"] == col["frames"]
    again = atlas.decode_column(complete["columns"][0]["strips"], [f["alpha_bar"] for f in col["frames"]])
    for panel in ("x_t", "x0", "eps"):
        np.testing.assert_array_equal(again[panel], expected[panel], err_msg=panel)
    assert denoise_tab.RUN_STATS["runs"] == runs
    assert out[4].startswith("Done: 30 steps") and "cache" not in out[4]
    assert "Served from the cache" in list(denoise_tab.generate(*args))[-1][4]
    # without lean=1 (any other client) the last line is /generate's whole payload
    assert _lines(server, args)[-1] == complete


def test_the_api_docs_example_runs_as_written(server):
    """docs/API.md's route example, run as written against this server: all 50 frames, as arrays."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text()
    section = text[text.index("## The player's route"):]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'url = "http://127.0.0.1:7860/dv/run?prompt=cat&steps=50&seed=0"' in code
    scope = {}
    exec(code.replace("http://127.0.0.1:7860/", server), scope)  # noqa: S102 - our own documentation
    assert scope["run"]["mode"] == "full" and len(scope["col"]["frames"]) == 50
    assert scope["pics"]["x0"].shape == (50, 64, 64, 3) and scope["pics"]["x0"].dtype == np.uint8


@pytest.mark.parametrize("change, words", [
    ({"steps": 5000}, "Steps must be between 1 and"),
    ({"model": "no-such-model"}, "no-such-model"),
    ({"seed": "abc"}, "whole number"),
])
def test_bad_input_is_a_400_with_the_pages_words(server, change, words):
    args = dict(zip(("prompt", "steps", "seed", "guidance", "scheduler", "schedule", "model"), ARGS))
    args.update(change)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server}dv/run?{_query(args.values())}", timeout=30)
    assert err.value.code == 400
    assert words in json.loads(err.value.read())["error"]


def test_a_closed_connection_stops_the_run(server):
    import http.client
    from urllib.parse import urlsplit

    RESULTS.clear()
    where = urlsplit(server)
    frames = denoise_tab.RUN_STATS["frames"]
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    conn.request("GET", "/dv/run?" + _query(("", 200, 7301, 1.0, "ddim", "cosine", "emoji-unet")))
    resp = conn.getresponse()
    assert json.loads(resp.readline())["mode"] == "start"
    assert json.loads(resp.readline())["mode"] == "reset"
    conn.close()
    deadline = time.monotonic() + 30
    while denoise_tab.RUN_STATS["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert denoise_tab.RUN_STATS["active"] == 0
    assert denoise_tab.RUN_STATS["frames"] - frames < 200  # it stopped before the end
    assert not RESULTS.stats()["entries"]


# ---- in a real browser ----------------------------------------------------------------------------------
@pytest.fixture()
def page(server):
    from conftest import CHROMIUM, launch_chromium

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.routes_seen = []
        pg.on("request", lambda r: pg.routes_seen.append(r.url) if "/dv/run" in r.url else None)
        pg.goto(server)
        pg.wait_for_selector("#dv-generate")
        yield pg
        browser.close()


def _generate(page, seed):
    page.fill("#dv-seed input", str(seed))
    page.press("#dv-seed input", "Tab")
    gen = page.evaluate("window.dvPlayers['dv-player'].state.gen")
    page.click("#dv-generate")
    page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').startsWith('Done')",
                           timeout=60_000)
    page.wait_for_function("window.dvPlayers['dv-player'].frames() === 50 && "
                           "!window.dvPlayers['dv-player'].state.live", timeout=30_000)
    page.wait_for_timeout(300)  # gradio's copy of the run has arrived by now
    return gen


def _check_pixels(page, args, steps):
    from test_browser import check_pixels

    check_pixels(page, "dv-player", args, "emoji-exact", steps)


@pytest.mark.browser
def test_generate_fetches_the_route_and_shows_the_run_once(page):
    RESULTS.clear()
    gen = _generate(page, 7401)
    assert len(page.routes_seen) == 1 and "seed=7401" in page.routes_seen[0]
    state = page.evaluate("(() => { const S = window.dvPlayers['dv-player'].state; "
                          "return {src: S.src, complete: S.complete, gen: S.gen, received: S.received}; })()")
    assert state["src"] == "route" and state["complete"]
    assert state["received"]["gradio"] == 0 and state["received"]["route"] >= 2  # not sent twice
    # one new run: the finished line completes it (its pictures came before) instead of starting again
    assert state["gen"] - gen == 1
    _check_pixels(page, ("cat", 50, 7401, 1.0, "ddim", "cosine"), [0, 24, 49])
    assert page.inner_text("#dv-status").startswith("Done: 50 steps")
    assert "weighted average" in page.inner_text("#dv-player .dv-cands")  # the finished line's numbers
    assert not page.errors


@pytest.mark.browser
def test_without_the_route_gradio_fills_the_player(page):
    RESULTS.clear()
    page.route("**/dv/run*", lambda route: route.abort())
    _generate(page, 7402)
    assert page.evaluate("window.dvPlayers['dv-player'].state.src") == "gradio"
    assert page.evaluate("window.dvPlayers['dv-player'].state.received.route") == 0
    _check_pixels(page, ("cat", 50, 7402, 1.0, "ddim", "cosine"), [0, 24, 49])
    assert not page.errors
