"""Memorize vs generalize: the exact denoiser gives back a training emoji, the trained UNet a new picture.

The library function, the tab's handlers, the PNG sheet and ``diffusion-viz memorize`` (the API endpoint
is driven through gradio_client in test_app_api.py).
"""

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from diffusion_viz import memorize as mvg
from diffusion_viz.cli import main
from diffusion_viz.data import load_emoji
from diffusion_viz.errors import InvalidInputError


@pytest.fixture(scope="module")
def rocket():
    return mvg.run("rocket", seed=0, steps=20, guidance=3.0)


def test_exact_model_copies_the_prompts_emoji(rocket):
    exact = rocket[0]
    assert exact["model"] == "emoji-exact-32" and exact["guidance"] == 1.0
    assert exact["nearest_rms"] < 1e-3 and exact["copy"]
    assert exact["nearest"] == "🚀 rocket" and exact["nearest_name"] == "rocket"
    assert exact["verdict"] == "a copy of a training emoji"
    train = load_emoji(32)
    np.testing.assert_array_equal(exact["nearest_rgb"], train.images[exact["nearest_index"]])
    # the sample is that training picture, to within a colour level
    assert np.abs(exact["rgb"].astype(int) - exact["nearest_rgb"].astype(int)).max() <= 1


def test_unet_makes_a_new_picture(rocket):
    unet = rocket[1]
    assert unet["model"] == "emoji-unet" and unet["guidance"] == 3.0
    assert unet["nearest_rms"] >= 0.1 and not unet["copy"]
    assert unet["verdict"] == f"new picture; nearest training emoji is {unet['nearest']}"
    assert unet["rgb"].shape == (32, 32, 3) and unet["rgb"].dtype == np.uint8 and unet["rgb"].std() > 10
    assert "M weights" in unet["subtitle"] and "guidance 3" in unet["subtitle"]
    # the RMS is measured in model space ([-1, 1]) against the nearest training picture
    train = load_emoji(32).as_model_space()[unet["nearest_index"]]
    rms = np.sqrt(np.mean((unet["image"] - train) ** 2))
    assert rms == pytest.approx(unet["nearest_rms"], rel=1e-3)


@pytest.mark.parametrize("prompt, seed, steps, guidance, words", [
    ("", 0, 50, 3.0, "type a prompt"),
    ("  \t\n", 0, 50, 3.0, "type a prompt"),
    ("x" * 1001, 0, 50, 3.0, "limit is 1000"),
    (None, 0, 50, 3.0, "type a prompt"),
    ("cat", -1, 50, 3.0, "seed"),
    ("cat", 1.5, 50, 3.0, "whole number"),
    ("cat", 0, 0, 3.0, "steps must be between 1 and 200"),
    ("cat", 0, 201, 3.0, "steps must be between 1 and 200"),
    ("cat", 0, 50, float("nan"), "guidance"),
    ("cat", 0, 50, 31.0, "guidance"),
])
def test_bad_input_is_refused_before_sampling(prompt, seed, steps, guidance, words):
    with pytest.raises(InvalidInputError) as err:
        mvg.run(prompt, seed, steps, guidance)
    assert words in str(err.value).lower()


@pytest.fixture
def results():
    """The app's shared result cache, emptied before and after (no run from or for other tests)."""
    from diffusion_viz.ui.cache import RESULTS

    RESULTS.clear()
    try:
        yield RESULTS
    finally:
        RESULTS.clear()


def test_endpoint_summary_and_cache(results):
    from diffusion_viz.ui.memorize_tab import memorize

    out = memorize("  rocket ", 0, 20, 3.0)
    assert results.stats()["misses"] == 1 and results.stats()["hits"] == 0  # computed, not replayed
    assert (out["prompt"], out["seed"], out["steps"]) == ("rocket", 0, 20)
    exact, unet = out["models"]
    assert exact["copy"] and exact["nearest"] == "🚀 rocket" and exact["nearest_rms"] < 1e-3
    assert not unet["copy"] and unet["nearest_rms"] >= 0.1
    assert all(m[k].startswith("data:image/png;base64,") for m in out["models"] for k in ("image_png", "nearest_png"))
    again = memorize("rocket", 0, 20, 3.0)  # the same request (prompt trimmed): served from the cache
    assert again == out
    if results.enabled:  # DIFFUSION_VIZ_CACHE_MB=0 turns the cache off
        assert results.stats()["hits"] == 1 and again is out


def test_ui_handler_cards_and_friendly_errors():
    from diffusion_viz.ui.memorize_tab import memorize_ui

    *_, (html, summary, progress) = list(memorize_ui("rocket", 0, 20, 3.0))  # progress lines, then the cards
    assert html.count('class="dv-mvg-img"') == 4 and "a copy of a training emoji" in html
    assert "new picture; nearest training emoji is" in html and summary["models"][0]["model"] == "emoji-exact-32"
    assert progress == ""
    with pytest.raises(gr.Error, match="Type a prompt"):
        list(memorize_ui("", 0, 20, 3.0))
    with pytest.raises(gr.Error, match="limit"):
        list(memorize_ui("cat " * 500, 0, 20, 3.0))


def test_cards_escape_their_text():
    from diffusion_viz.ui.memorize_tab import cards_html

    model = {"model": "m", "title": "<script>x</script>", "subtitle": "s", "image_png": "data:,",
             "nearest_png": "data:,", "nearest": "<img onerror=1>", "nearest_rms": 0.5, "copy": False,
             "verdict": "<b>v</b>"}
    html = cards_html({"models": [model]})
    assert "<script>" not in html and "<img onerror" not in html and "&lt;b&gt;v&lt;/b&gt;" in html


def test_sheet_size_and_content(rocket):
    img = mvg.sheet([("rocket", rocket), ("rocket again", rocket)], cell=64)
    assert img.size == mvg.sheet_size(2, cell=64) == (mvg.LABEL_W + 4 * 64 + mvg.GAP + mvg.MARGIN,
                                                       mvg.HEADER_H + 2 * (64 + mvg.CAPTION_H))
    tile = np.asarray(img)[mvg.HEADER_H:mvg.HEADER_H + 64, mvg.LABEL_W:mvg.LABEL_W + 64]
    np.testing.assert_array_equal(tile[::2, ::2], rocket[0]["rgb"])  # nearest-neighbour: 2x2 blocks


def test_cli_writes_a_side_by_side_png(tmp_path, capsys):
    out = tmp_path / "mvg.png"
    assert main(["memorize", "cat face", "--seed", "0", "--steps", "10", "--out", str(out)]) == 0
    assert Image.open(out).size == mvg.sheet_size(1)
    printed = capsys.readouterr().out
    assert "emoji-exact-32" in printed and "a copy" in printed and "new picture" in printed and "wrote" in printed


@pytest.mark.parametrize("args, message", [
    (["", "--out", "x.png"], "Type a prompt"),
    (["cat", "--out", "x.gif"], ".png"),
    (["cat", "--steps", "0", "--out", "x.png"], "Steps"),
    (["cat", "--seed", "-3", "--out", "x.png"], "Seed"),
])
def test_cli_bad_input_exits_with_a_message(tmp_path, capsys, args, message):
    args = [str(tmp_path / a) if a.endswith((".png", ".gif")) else a for a in args]
    assert main(["memorize", *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_memorize_runs_in_the_shared_sampling_pool():
    """Run, Enter, the dice and /memorize queue with Generate and Compare: they cannot overload the CPU."""
    from diffusion_viz.ui.app import Serving, build_app, configure_queue

    demo = configure_queue(build_app(), Serving(sampling=2, light=4, queue_size=10, torch_threads=1, gpu=False))
    fns = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") in ("memorize_api", "memorize_ui")]
    assert len(fns) == 4  # Run, Enter in the prompt, the dice's follow-up, the API
    assert all(fn.concurrency_id == "sampling" and fn.concurrency_limit == 2 for fn in fns)
    assert {fn.api_name for fn in fns if fn.api_visibility == "public"} == {"memorize"}
