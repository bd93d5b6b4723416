"""The app with a Stable Diffusion checkpoint: a tiny random-weight pipeline saved to a folder and
registered through DIFFUSION_VIZ_MODEL, exactly as an operator would. Offline, CPU, seconds.

Pure tests of ``ui.sd_view`` first, then the endpoints through gradio_client.
"""

import json

import numpy as np
import pytest
from PIL import Image

from diffusion_viz.errors import InvalidInputError
from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser
from diffusion_viz.sampling import sample
from diffusion_viz.ui import logic, sd_view
from conftest import CHROMIUM, launch_chromium

SIZE = 16  # latent 4x16x16, picture 32x32 (the tiny VAE upsamples 2x)


@pytest.fixture(scope="module")
def sd():
    return StableDiffusionDenoiser(tiny_sd_pipeline(sample_size=SIZE))


@pytest.fixture(scope="module")
def traj(sd):
    return sample(sd, logic.make_settings("a red cat", 6, 0, 7.5, "ddim", "cosine"))


def test_sd_models_are_recognised_by_what_they_can_do(sd, emoji_model_32):
    assert sd_view.is_sd(sd)
    assert not sd_view.is_sd(emoji_model_32)


def test_decode_step_gives_vae_pictures_and_latent_channels(sd, traj):
    r = sd_view.decode_step(sd, traj, 2)
    assert r["index"] == 2 and r["step"] == 3 and r["steps"] == 6
    assert r["x0"].shape == r["x_t"].shape == (2 * SIZE, 2 * SIZE, 3) and r["x0"].dtype == np.uint8
    assert np.array_equal(r["x0"], sd.decode(traj.frames[2].x0))
    assert r["x0_channels"].shape == (SIZE, 4 * SIZE + 3 * 2, 3)  # 4 tiles, 2-pixel gaps
    assert not np.array_equal(r["x0"], r["x_t"])
    assert "Step 3 of 6" in sd_view.decode_caption(r)
    for bad in (6, -1, "x"):
        with pytest.raises(InvalidInputError):
            sd_view.decode_step(sd, traj, bad)


def test_final_image_is_the_vae_decode_for_sd_and_the_preview_otherwise(sd, traj):
    assert sd_view.final_image(sd, traj.final).shape == (2 * SIZE, 2 * SIZE, 3)

    class Latent:
        def to_rgb(self, x):
            return np.zeros((x.shape[1], x.shape[2], 3), np.uint8)

    assert sd_view.final_image(Latent(), traj.final).shape == (SIZE, SIZE, 3)


def test_run_store_keeps_recent_runs_and_resamples_evicted_ones(sd, traj):
    store = sd_view.RunStore(capacity=1)
    rid = store.remember("tiny", sd, traj)
    assert rid == sd_view.run_id("tiny", traj.settings) and store.get(rid).trajectory is traj
    other = sample(sd, logic.make_settings("dog", 2, 1, 1.0, "ddim", "cosine"))
    store.remember("tiny", sd, other)
    assert len(store) == 1
    again = store.get(rid, load_model=lambda name: sd)  # evicted: sampled again, deterministically
    assert np.array_equal(again.trajectory.final, traj.final)
    with pytest.raises(InvalidInputError, match="Generate"):
        store.get("nope", load_model=lambda name: sd)


def test_tokens_flag_the_77_token_window(sd):
    info = sd_view.conditioning_info(sd, "cat " * 80)
    assert info["truncated"] and len(info["tokens"]) == 75 and len(info["dropped"]) == 5
    md = sd_view.tokens_markdown(info)
    assert "75 of 75" in md and "5 tokens" in md and "dropped" in md and "~~`cat`~~" in md
    short = sd_view.conditioning_info(sd, "a red cat")
    assert short["tokens"] == ["a", "red", "cat"] and not short["truncated"]
    assert "dropped" not in sd_view.tokens_markdown(short)
    assert sd_view.conditioning_info(sd, "")["kind"] == "unconditional"


def test_embedding_image_is_a_small_heatmap(sd):
    image, caption = sd_view.embedding_image(sd, "a red cat", dims=16, scale=2)
    assert image.shape == (16 * 2, 77 * 2, 3) and image.dtype == np.uint8
    assert "77 token slots" in caption and "3 token(s)" in caption


def test_guidance_comparison_same_seed(sd):
    settings = logic.make_settings("a red cat", 3, 0, 1.0, "ddim", "cosine")
    out = sd_view.guidance_images(sd, settings, [1, 7.5])
    assert [s for s, _ in out] == [1.0, 7.5]
    assert all(im.shape == (2 * SIZE, 2 * SIZE, 3) for _, im in out)
    assert not np.array_equal(out[0][1], out[1][1])
    with pytest.raises(InvalidInputError):
        sd_view.guidance_images(sd, settings, [])
    with pytest.raises(InvalidInputError):
        sd_view.guidance_images(sd, settings, [99])


def test_explanations_are_right(sd):
    md = sd_view.explanation_markdown(sd)
    assert "4x16x16 latent: 1,024 numbers" in md and "0.068" in md
    assert "0.068" in sd_view.schedule_note(sd)
    big = sd.resized(512, 512)  # the tiny VAE scales by 2: this is a 4x256x256 latent
    assert "262,144 numbers" in big.latent_explanation()
    assert sd_view.defaults(sd) == {"steps": 30, "guidance": 7.5, "scheduler": "ddim"}


# ---- the app, with the checkpoint registered through DIFFUSION_VIZ_MODEL ---------------------------
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def sd_app(tmp_path_factory):
    from gradio_client import Client

    from diffusion_viz.models import registry
    from diffusion_viz.ui.app import start_server

    folder = tmp_path_factory.mktemp("tiny-sd") / "checkpoint"
    tiny_sd_pipeline(sample_size=SIZE).save_pretrained(folder)
    name = str(folder)
    before = dict(registry.MODELS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFUSION_VIZ_MODEL", name)
        mp.setenv("DIFFUSION_VIZ_MODELS", "sd15")  # offered, but not downloaded (offline): explained
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("DIFFUSION_VIZ_ALLOW_DOWNLOADS", raising=False)
        # The registry reads DIFFUSION_VIZ_MODEL(S) at import; register again now that they are set.
        registry._register_stable_diffusion()
        assert name in registry.MODELS and "sd15" in registry.MODELS
        demo, url = start_server(warm=False)
        try:
            yield Client(url, verbose=False), name
        finally:
            demo.close()
            registry.MODELS.clear()
            registry.MODELS.update(before)


def test_sd_generate_decode_tokens_and_guidance_through_the_api(sd_app):
    client, name = sd_app
    player, image, summary, cond, status, files = client.predict(
        "a red cat", 5, 0, 7.5, "ddim", "scaled_linear", name, api_name="/generate")
    payload = json.loads(player)
    frames = payload["columns"][0]["frames"]
    assert len(frames) == 5 and payload["run"]
    # Steps are the linear latent preview at latent size; the finished picture is the VAE decode.
    strips = payload["columns"][0]["strips"][0]
    assert strips["x0"].startswith("data:image/webp;base64,") and strips["quant"] == 2 and strips["size"] == [SIZE, SIZE]
    assert Image.open(image).size == (2 * SIZE, 2 * SIZE)
    assert summary["conditioning"]["tokens"] == ["a", "red", "cat"] and "VAE" in status
    assert "`red`" in cond

    x0, xt, x0_ch, xt_ch, caption = client.predict(payload["run"], frames[2]["index"], api_name="/sd_decode_step")
    assert Image.open(x0).size == Image.open(xt).size == (2 * SIZE, 2 * SIZE)
    assert Image.open(x0_ch).size == (4 * SIZE + 6, SIZE)
    assert "Step 3 of 5" in caption

    md, emb, emb_caption = client.predict("cat " * 80, name, api_name="/sd_text")
    assert "dropped" in md and Image.open(emb).size == (77 * 4, 32 * 4) and "77 token slots" in emb_caption

    gallery = client.predict("a red cat", 3, 0, "ddim", name, api_name="/sd_guidance")
    assert [g["caption"] for g in gallery] == ["guidance 1", "guidance 3", "guidance 7.5", "guidance 12"]
    assert all(Image.open(g["image"]).size == (2 * SIZE, 2 * SIZE) for g in gallery)


def test_sd_endpoints_explain_mistakes(sd_app):
    from gradio_client.exceptions import AppError

    client, name = sd_app
    with pytest.raises(AppError, match="Generate"):
        client.predict("not-a-run", 0, api_name="/sd_decode_step")
    with pytest.raises(AppError, match="not a Stable Diffusion model"):
        client.predict("cat", "emoji-exact-32", api_name="/sd_text")
    # The emoji models still work next to the checkpoint.
    assert client.predict("cat", 2, 0, 1.0, "ddim", "cosine", "emoji-exact-32", api_name="/generate")[2]["frames"] == 2


def test_a_checkpoint_that_cannot_load_gives_a_message_and_the_emoji_model_back(monkeypatch):
    """Offline, an SD preset that is not downloaded fails fast with a plain message (select handler)."""
    import time

    from diffusion_viz.models import registry
    from diffusion_viz.ui import denoise_tab

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIFFUSION_VIZ_MODELS", "sd15")
    monkeypatch.delenv("DIFFUSION_VIZ_ALLOW_DOWNLOADS", raising=False)
    before = dict(registry.MODELS)
    registry._register_stable_diffusion()
    try:
        start = time.monotonic()
        out = denoise_tab.select_model("sd15", True)
    finally:
        registry.MODELS.clear()
        registry.MODELS.update(before)
    assert time.monotonic() - start < 30
    model_update, status = out[0], out[-1]
    assert model_update["value"] == "emoji-exact"
    assert "Could not load sd15" in status and "built-in models keep working" in status
    assert "not downloaded on this server" in status
    assert out[7]["visible"] is False and out[9] is False  # the SD panel is hidden again


# ---- in a real browser: the decode button sends the step the player shows ---------------------------


@pytest.mark.browser
@pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_browser_sd_model_controls_decode_on_demand_and_failed_checkpoint(sd_app):
    """Set DV_SCREENSHOT_DIR=docs to refresh docs/sd-tiny.png."""
    import os
    from pathlib import Path

    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    client, name = sd_app
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(client.src)
        page.wait_for_selector("#dv-generate")
        assert not page.is_visible("#dv-sd")
        page.click("#dv-model input")
        page.get_by_role("option", name=name).click()
        page.wait_for_selector("#dv-sd", state="visible", timeout=30_000)
        # The checkpoint's defaults; its own schedule (the schedule menu is off, with a note).
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('ready')")
        assert page.input_value("#dv-steps input[type=number]") == "30"
        assert page.input_value("#dv-guidance input[type=number]") == "7.5"
        assert page.eval_on_selector("#dv-schedule input", "e => e.disabled")
        assert "0.068" in page.inner_text("#dv-schedule-note") and "0.068" in page.inner_text("#dv-sd-explain")
        page.fill("#dv-prompt textarea", "a red cat and a dog")
        page.click("#dv-generate")
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('Done')", timeout=60_000)
        # the finished run, not only its streamed steps: the full payload, once decoded, shows the last
        # step and would undo a seek made before it
        page.wait_for_function("window.dvPlayers['dv-player'].frames() === 30 && !window.dvPlayers['dv-player'].state.live",
                               timeout=30_000)
        assert page.evaluate("window.dvPlayers['dv-player'].run()")
        page.evaluate("window.dvPlayers['dv-player'].seek(9)")
        page.click("#dv-sd-decode")
        page.wait_for_function("(document.querySelector('#dv-sd-caption')?.innerText || '').includes('Step 10 of 30')",
                               timeout=30_000)
        page.wait_for_function("(document.querySelector('#dv-sd-x0 img') || {}).naturalWidth > 0")
        assert page.eval_on_selector("#dv-sd-x0 img", "e => e.naturalWidth") == 2 * SIZE
        page.click("#dv-sd-text")
        page.wait_for_function("(document.querySelector('#dv-sd-tokens')?.innerText || '').includes('`') || "
                               "document.querySelector('#dv-sd-tokens code')", timeout=30_000)
        page.click("#dv-sd-guidance")
        page.wait_for_function("document.querySelectorAll('#dv-sd-gallery img').length === 4", timeout=60_000)
        folder = os.environ.get("DV_SCREENSHOT_DIR")
        if folder:
            page.evaluate("document.querySelectorAll('.toast-body').forEach(e => e.style.display = 'none')")
            page.wait_for_timeout(500)
            page.screenshot(path=str(Path(folder) / "sd-tiny.png"), full_page=True)
        # A preset that is not downloaded (offline): a message, and the emoji model comes back.
        page.click("#dv-model input")
        page.get_by_role("option", name="sd15", exact=True).click()
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('Could not load sd15')",
                               timeout=60_000)
        assert page.input_value("#dv-model input") == "emoji-exact"
        assert not page.is_visible("#dv-sd")
        assert not page.eval_on_selector("#dv-schedule input", "e => e.disabled")
        page.click("#dv-generate")
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('Done') && "
                               "window.dvPlayers['dv-player'].run() === ''", timeout=60_000)
        assert errors == []
        browser.close()
