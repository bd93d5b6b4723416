"""emoji-ldm in the app: offered as an operator asks (DIFFUSION_VIZ_MODELS), every Stable Diffusion view
working on it through the API and in a real browser. The model is a tiny export written by the real
training code (tests/tiny_ldm.py), pointed at with DIFFUSION_VIZ_EMOJI_LDM; the shipped weights are not
needed."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM, launch_chromium
from tiny_ldm import export_tiny_emoji_ldm


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """The tiny export; DV_EMOJI_LDM_DIR=assets/emoji_ldm runs the same checks on the shipped weights
    (with DV_SCREENSHOT_DIR=docs: the screenshot in docs/stable-diffusion.md)."""
    import os
    from pathlib import Path

    shipped = os.environ.get("DV_EMOJI_LDM_DIR")
    return Path(shipped).resolve() if shipped else export_tiny_emoji_ldm(tmp_path_factory.mktemp("emoji-ldm"))


def test_offered_only_when_asked_for_and_present(export, tmp_path, monkeypatch):
    from diffusion_viz.models import registry

    monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
    try:
        monkeypatch.delenv("DIFFUSION_VIZ_MODELS", raising=False)
        registry._register_emoji_ldm()
        assert "emoji-ldm" not in registry.MODELS  # offered when the operator asks, as the SD presets are
        monkeypatch.setenv("DIFFUSION_VIZ_MODELS", "emoji-ldm")
        registry._register_emoji_ldm()
        assert registry.MODELS["emoji-ldm"].default_schedule == "scaled_linear"
        assert registry.offered_presets() == []  # not mistaken for a Stable Diffusion preset to download
        monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(tmp_path))  # asked for, but no weights there
        registry._register_emoji_ldm()
        assert "emoji-ldm" not in registry.MODELS
        # the command line may still ask for it by name when it is there
        monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
        assert registry.get_model("emoji-ldm").name == "emoji-ldm"
    finally:
        registry.MODELS.pop("emoji-ldm", None)


def test_cli_renders_a_prompt_with_it(export, tmp_path, monkeypatch):
    from diffusion_viz.cli import main

    monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
    out = tmp_path / "scene.gif"
    assert main(["render", "--model", "emoji-ldm", "--prompt", "a cat next to a rocket at night", "--steps", "4",
                 "--scheduler", "dpmpp_2m", "--out", str(out)]) == 0
    gif = Image.open(out)
    assert gif.n_frames >= 4 and min(gif.size) >= 64
    # the finished frame is the VAE's decode of the last latent (as the app shows it), not its cheap preview
    import numpy as np

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, sample
    from media_checks import animation_panels, mean_abs_diff, read_gif
    from diffusion_viz.render import upscale
    from media_checks import ANIM_CELL

    model = get_model("emoji-ldm")
    settings = SampleSettings(prompt="a cat next to a rocket at night", steps=4, scheduler="dpmpp_2m",
                              schedule="scaled_linear", guidance=model.defaults["guidance"], seed=0)
    final = sample(model, settings, scheduler=model.make_scheduler("dpmpp_2m")).final

    def shown(rgb):  # as render draws it into the animation
        return np.asarray(upscale(rgb, ANIM_CELL))

    frames, _, _ = read_gif(out)
    last = animation_panels(frames[-1])[1]
    to_decode, to_preview = mean_abs_diff(last, shown(model.decode(final))), mean_abs_diff(last, shown(model.to_rgb(final)))
    # (the GIF's 256-colour palette costs a few levels on a random-weight model's noisy picture)
    assert to_decode < 10 and to_preview > 5 * to_decode, (to_decode, to_preview)
    # the same run: the decode saved beside the GIF is exactly this latent's
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "scene-final.png")), model.decode(final))


@pytest.fixture(scope="module")
def ldm_app(export):
    from gradio_client import Client

    from diffusion_viz.models import registry
    from diffusion_viz.ui.app import start_server
    from diffusion_viz.ui.cache import RESULTS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFUSION_VIZ_MODELS", "emoji-ldm")
        mp.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
        registry._register_emoji_ldm()
        RESULTS.clear()
        demo, url = start_server(warm=False)
        try:
            yield Client(url, verbose=False), url
        finally:
            demo.close()
            registry.MODELS.pop("emoji-ldm", None)


def test_every_sd_view_through_the_api(ldm_app):
    client, _ = ldm_app
    player, image, summary, cond, status, files = client.predict(
        "a cat next to a rocket", 5, 0, 4.0, "dpmpp_2m", "scaled_linear", "emoji-ldm", api_name="/generate")
    payload = json.loads(player)
    frames = payload["columns"][0]["frames"]
    assert len(frames) == 5 and payload["run"]
    strips = payload["columns"][0]["strips"][0]
    assert strips["size"] == [16, 16]  # the steps: the cheap linear preview of the 4x16x16 latent
    assert Image.open(image).size == (64, 64)  # the finished picture: the VAE decode
    assert summary["conditioning"]["tokens"] == ["a", "cat", "next", "to", "a", "rocket"] and "VAE" in status

    x0, xt, x0_ch, xt_ch, caption = client.predict(payload["run"], frames[3]["index"], api_name="/sd_decode_step")
    assert Image.open(x0).size == Image.open(xt).size == (64, 64)
    assert Image.open(x0_ch).size == (4 * 16 + 3 * 2, 16) and "Step 4 of 5" in caption

    md, emb, emb_caption = client.predict("a cat " * 10, "emoji-ldm", api_name="/sd_text")
    assert "MiniLM" in md and "16-token window" in md and "dropped" in md
    assert Image.open(emb).size == (16 * 4, 64 * 4) and "16 token slots" in emb_caption and "[CLS]" in emb_caption

    gallery = client.predict("a cat", 3, 0, "dpmpp_2m", "emoji-ldm", api_name="/sd_guidance")
    assert [g["caption"] for g in gallery] == ["guidance 1", "guidance 3", "guidance 7.5", "guidance 12"]
    pictures = [np.asarray(Image.open(g["image"]).convert("RGB")) for g in gallery]
    assert all(p.shape == (64, 64, 3) for p in pictures)
    assert not np.array_equal(pictures[0], pictures[3])  # guidance changes the picture


@pytest.mark.browser
@pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_browser_emoji_ldm_controls_and_views(ldm_app):
    """DV_SCREENSHOT_DIR=docs DV_EMOJI_LDM_DIR=assets/emoji_ldm saves docs/emoji-ldm.png (the shipped
    model's page)."""
    import os
    from pathlib import Path

    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    from diffusion_viz.ui import atlas

    client, url = ldm_app
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("#dv-generate")
        page.click("#dv-model input")
        page.get_by_role("option", name="emoji-ldm").click()
        page.wait_for_selector("#dv-sd", state="visible", timeout=30_000)
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('ready')")
        # the model's own defaults and schedule
        assert page.input_value("#dv-steps input[type=number]") == "25"
        assert page.input_value("#dv-guidance input[type=number]") == "4"
        assert page.eval_on_selector("#dv-schedule input", "e => e.disabled")
        assert "0.068" in page.inner_text("#dv-schedule-note")
        assert "MiniLM reads at most 14 tokens" in page.inner_text("#dv-prompt")
        assert "4x16x16 latent" in page.inner_text("#dv-sd-explain")
        page.fill("#dv-prompt textarea", "a cat above a rocket on grass")
        page.click("#dv-generate")
        page.wait_for_function("(document.querySelector('#dv-status')?.innerText || '').includes('Done')", timeout=60_000)
        # the finished run, not only its streamed steps: the full payload, once decoded, shows the last
        # step and would undo a seek made before it
        page.wait_for_function("window.dvPlayers['dv-player'].frames() === 25 && !window.dvPlayers['dv-player'].state.live",
                               timeout=30_000)
        # the latent previews travel quantized in lossless WebP: the canvases show the reference decoder's
        # values exactly (what the server sent: the same settings through the API, served from the cache)
        seed = int(page.input_value("#dv-seed input[type=number]"))
        sent, *_ = client.predict("a cat above a rocket on grass", 25, seed, 4.0, "dpmpp_2m", "scaled_linear",
                                  "emoji-ldm", api_name="/generate")
        col = json.loads(sent)["columns"][0]
        assert col["strips"][0]["format"] == "webp" and col["strips"][0]["quant"] == 2
        want = atlas.decode_column(col["strips"], [f["alpha_bar"] for f in col["frames"]])
        for k in (0, 12, 24):
            for panel in ("x_t", "x0", "eps"):
                flat = page.evaluate(f"(() => {{ const p = window.dvPlayers['dv-player']; p.seek({k}); "
                                     f"return p.pixels('{panel}', 0); }})()")
                shown = np.asarray(flat, np.uint8).reshape(16, 16, 4)[..., :3]
                np.testing.assert_array_equal(shown, want[panel][k], err_msg=f"{panel} at step {k}")
        page.evaluate("window.dvPlayers['dv-player'].seek(9)")
        page.click("#dv-sd-decode")
        page.wait_for_function("(document.querySelector('#dv-sd-caption')?.innerText || '').includes('Step 10 of 25')",
                               timeout=30_000)
        page.wait_for_function("(document.querySelector('#dv-sd-x0 img') || {}).naturalWidth > 0")
        assert page.eval_on_selector("#dv-sd-x0 img", "e => e.naturalWidth") == 64
        page.click("#dv-sd-text")
        page.wait_for_function("(document.querySelector('#dv-sd-tokens')?.innerText || '').includes('MiniLM')",
                               timeout=30_000)
        assert "rocket" in page.inner_text("#dv-sd-tokens")
        folder = os.environ.get("DV_SCREENSHOT_DIR")
        if folder:
            page.wait_for_timeout(500)
            page.screenshot(path=str(Path(folder) / "emoji-ldm.png"), full_page=True)
        assert errors == []
        browser.close()


def test_cli_render_takes_the_models_own_steps_sampler_and_guidance(export, tmp_path, monkeypatch):
    """Without --steps/--scheduler/--guidance the command line runs a model as the app does: emoji-ldm with
    its 25 DPM-Solver++ steps and guidance 4 (at guidance 1 it drew "at night" on grass), the emoji models
    with 50 DDIM steps and no guidance; an option given still wins."""
    from diffusion_viz import sampling
    from diffusion_viz.cli import main

    monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
    seen = []
    real = sampling.iter_frames

    def spy(model, settings, **kw):
        seen.append((settings.steps, settings.scheduler, settings.guidance))
        return real(model, settings, **kw)

    monkeypatch.setattr(sampling, "iter_frames", spy)
    assert main(["render", "--model", "emoji-ldm", "--prompt", "a cat", "--out", str(tmp_path / "a.gif")]) == 0
    assert main(["render", "--model", "emoji-exact-32", "--prompt", "cat", "--out", str(tmp_path / "b.gif")]) == 0
    assert main(["render", "--model", "emoji-ldm", "--prompt", "a cat", "--steps", "3", "--guidance", "2",
                 "--out", str(tmp_path / "c.gif")]) == 0
    assert seen == [(25, "dpmpp_2m", 4.0), (50, "ddim", 1.0), (3, "dpmpp_2m", 2.0)]


def test_the_apps_gif_and_mp4_end_on_the_decoded_picture(export, tmp_path, monkeypatch):
    """"Make GIF / MP4 of this run": a latent model's last frame is the VAE's decode, not the preview."""
    import numpy as np

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.render import upscale
    from diffusion_viz.sampling import SampleSettings, sample
    from diffusion_viz.ui.logic import write_downloads
    from media_checks import ANIM_CELL, animation_panels, mean_abs_diff, read_gif, read_mp4

    monkeypatch.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(export))
    model = get_model("emoji-ldm")
    traj = sample(model, SampleSettings(prompt="a cat", steps=3, scheduler="dpmpp_2m", schedule="scaled_linear",
                                        guidance=2.0, seed=3), scheduler=model.make_scheduler("dpmpp_2m"))
    gif, mp4 = write_downloads(traj, model, cache_dir=tmp_path)
    decoded, preview = (np.asarray(upscale(f(traj.final), ANIM_CELL)) for f in (model.decode, model.to_rgb))
    for last in (read_gif(gif)[0][-1], read_mp4(mp4)[0][-1]):
        right = animation_panels(last)[1]
        assert mean_abs_diff(right, decoded) < 12 and mean_abs_diff(right, preview) > 5 * mean_abs_diff(right, decoded)
