"""Every offline model x every endpoint that takes a model, through gradio_client against a running app.

Models: the ones in the registry that need no download (emoji-exact, emoji-exact-32, emoji-unet), a
tiny random Stable Diffusion built from a config and registered as an operator would
(DIFFUSION_VIZ_MODEL), and emoji-ldm offered through DIFFUSION_VIZ_MODELS, loaded from a tiny export that
the real training code wrote (DIFFUSION_VIZ_EMOJI_LDM). Endpoints: /generate, the player's route /dv/run, /compare, /downloads, /lesson_file, /worksheet, the
experiments /round_trip, /when_decided, /seed_grid (and /memorize, which always runs the two emoji models). Each answer is checked for values, not just for arriving: frame counts, the noise
levels the model's scheduler used, the nearest training emoji (pixel models only), decoded files.
"""

import json
import math

import numpy as np
import pytest
from media_checks import animation_frame_count, read_gif, read_mp4
from PIL import Image

from diffusion_viz.data import nearest_emoji
from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
from diffusion_viz.sampling import start_scheduler
from diffusion_viz.schedules import get_schedule
from tiny_ldm import export_tiny_emoji_ldm

gradio_client = pytest.importorskip("gradio_client")

STEPS = 3
PIXEL_MODELS = {"emoji-exact": 64, "emoji-exact-32": 32, "emoji-unet": 32}
SD_SIZE = 16  # latent 4x16x16; the tiny VAE upsamples 2x
# latent models: (latent size, picture size)
LATENT_MODELS = {"tiny-sd": (SD_SIZE, 2 * SD_SIZE), "emoji-ldm": (16, 64)}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from gradio_client import Client

    from diffusion_viz.models import registry
    from diffusion_viz.ui.app import start_server
    from diffusion_viz.ui.cache import RESULTS

    folder = tmp_path_factory.mktemp("tiny-sd-matrix") / "checkpoint"
    tiny_sd_pipeline(sample_size=SD_SIZE).save_pretrained(folder)
    sd_name = str(folder)
    ldm_folder = export_tiny_emoji_ldm(tmp_path_factory.mktemp("tiny-emoji-ldm"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFUSION_VIZ_MODEL", sd_name)
        mp.setenv("DIFFUSION_VIZ_MODELS", "emoji-ldm")
        mp.setenv("DIFFUSION_VIZ_EMOJI_LDM", str(ldm_folder))
        mp.setenv("HF_HUB_OFFLINE", "1")
        registry._register_stable_diffusion()
        registry._register_emoji_ldm()
        assert "emoji-ldm" in registry.MODELS
        RESULTS.clear()
        demo, url = start_server(warm=False)
        try:
            yield Client(url, verbose=False), sd_name
        finally:
            demo.close()
            registry.MODELS.pop(sd_name, None)
            registry.MODELS.pop("emoji-ldm", None)


MODELS = [*PIXEL_MODELS, *LATENT_MODELS]


def _name(app, model):
    return app[1] if model == "tiny-sd" else model


def _first_alpha_bar(model_name, schedule):
    """alpha_bar of the first sampling step, from the scheduler the model runs (independently built)."""
    if model_name in PIXEL_MODELS:
        return float(get_schedule(schedule).alphas_cumprod[-1])
    from diffusion_viz.models.registry import get_model

    sch = start_scheduler(get_model(model_name).make_scheduler("ddim"), STEPS)
    return float(sch.alphas_cumprod[int(sch.timesteps[0])])


@pytest.mark.parametrize("model", MODELS)
def test_generate(app, model):
    client, _ = app
    name = _name(app, model)
    player, image, summary, cond, status, files = client.predict(
        "cat", STEPS, 7, 1.0, "ddim", "cosine", name, api_name="/generate")
    frames = json.loads(player)["columns"][0]["frames"]
    assert len(frames) == summary["frames"] == len(summary["steps"]) == STEPS
    assert status.startswith("Done") and "Something went wrong" not in status
    first = summary["steps"][0]
    assert first["alpha_bar"] == pytest.approx(_first_alpha_bar(name, "cosine"), rel=5e-3)
    for s in summary["steps"]:  # the API's numbers agree with each other and with the level used
        assert s["snr"] == pytest.approx(s["alpha_bar"] / (1 - s["alpha_bar"]), rel=1e-6)
        assert s["log_snr"] == pytest.approx(math.log(s["snr"]), abs=1e-6)
        assert s["sigma"] == pytest.approx(math.sqrt(1 / s["snr"]), rel=1e-6)
        assert s["level"] == pytest.approx(s["t"], abs=1e-2)
    final = np.asarray(Image.open(image).convert("RGB"))
    if model in PIXEL_MODELS:
        size = PIXEL_MODELS[model]
        assert final.shape == (size, size, 3)
        near = summary["nearest_training_image"]
        model_space = final.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1
        assert near["label"] == nearest_emoji(model_space).label  # one function for every model
    else:  # a latent model: no training emoji to compare with; the picture is the VAE decode
        assert final.shape == (LATENT_MODELS[model][1],) * 2 + (3,) and "nearest_training_image" not in summary


@pytest.mark.parametrize("model", MODELS)
def test_player_route(app, model):
    """The page's player fetches /dv/run (ui/run_route.py): every model streams there too, and its last
    line is the payload /generate returns for the same run."""
    import urllib.request
    from urllib.parse import urlencode

    client, _ = app
    name = _name(app, model)
    query = urlencode(dict(prompt="dog", steps=STEPS, seed=11, guidance=1.0, scheduler="ddim", schedule="cosine",
                           model=name, lean=1))  # as the page's player asks: each picture sent once
    with urllib.request.urlopen(f"{client.src.rstrip('/')}/dv/run?{query}", timeout=120) as r:
        start, *lines = [json.loads(line) for line in r]
    assert start["mode"] == "start" and {line["key"] for line in lines} == {start["key"]}
    assert lines[0]["mode"] in ("reset", "full") and lines[-1]["mode"] == "full"
    frames = lines[-1]["columns"][0]["frames"]
    assert [f["index"] for f in frames] == list(range(STEPS))
    assert frames[0]["alpha_bar"] == pytest.approx(_first_alpha_bar(name, "cosine"), rel=5e-3)
    player, *_ = client.predict("dog", STEPS, 11, 1.0, "ddim", "cosine", name, api_name="/generate")
    complete = json.loads(player)["columns"][0]
    assert complete["frames"] == frames
    # the route's lines together carry the same pictures (its finished line leaves out those sent before)
    from diffusion_viz.ui.atlas import decode_column

    strips = [strip for line in lines for strip in line["columns"][0]["strips"]]
    alpha_bars = [f["alpha_bar"] for f in frames]
    route, api = decode_column(strips, alpha_bars), decode_column(complete["strips"], alpha_bars)
    for panel in ("x_t", "x0", "eps"):
        np.testing.assert_array_equal(route[panel], api[panel], err_msg=panel)


@pytest.mark.parametrize("model", MODELS)
def test_compare(app, model):
    client, _ = app
    columns = [{"scheduler": "ddim", "schedule": "cosine", "steps": STEPS, "guidance": 1.0},
               {"scheduler": "dpmpp_2m", "schedule": "linear", "steps": STEPS + 1, "guidance": 2.0}]
    result = client.predict("cat", 3, _name(app, model), columns, api_name="/compare")
    cols = result["columns"]
    assert [c["frames"] for c in cols] == [STEPS, STEPS + 1] and [len(c["log_snr"]) for c in cols] == [3, 4]
    assert all(c["final_png"].startswith("data:image/png;base64,") for c in cols)
    if model in PIXEL_MODELS:
        assert all(c["nearest_training_image"] and c["nearest_rms"] >= 0 for c in cols)
        first = get_schedule("linear").log_snr[-1]
        assert cols[1]["log_snr"][0] == pytest.approx(first, abs=1e-2)
    else:
        assert all("nearest_training_image" not in c for c in cols)


@pytest.mark.parametrize("model", MODELS)
def test_downloads(app, model):
    client, _ = app
    name = _name(app, model)
    made = client.predict("cat", STEPS, 5, 1.0, "ddim", "cosine", name, api_name="/downloads")
    gif = next(f for f in made if f.endswith(".gif"))
    mp4 = next(f for f in made if f.endswith(".mp4"))
    frames, durations, _ = read_gif(gif)
    # one frame per step plus the finished picture; the held copies merge into a longer last frame
    assert len(frames) == STEPS + 1 and sum(durations) == pytest.approx(animation_frame_count(STEPS, 12) * 83,
                                                                           abs=12 * 2 + 20)
    video, meta = read_mp4(mp4)
    assert len(video) == animation_frame_count(STEPS, 12) and meta["fps"] == 12
    assert video[0].shape[:2] == frames[0].shape[:2] or abs(video[0].shape[0] - frames[0].shape[0]) <= 1


@pytest.mark.parametrize("model", MODELS)
def test_round_trip(app, model):
    from gradio_client import handle_file

    from diffusion_viz.round_trip import plan_start
    from diffusion_viz.sampling import SampleSettings
    from diffusion_viz.models.registry import get_model

    client, _ = app
    name = _name(app, model)
    photo = "assets/examples/wheel.png"
    player, shown, status, summary = client.predict(handle_file(photo), "", "cat", 2, name, "ddim", "cosine", 4,
                                                    [300, 999], api_name="/round_trip")
    levels = summary["levels"]
    assert [r["t"] for r in levels] == [300, 999] and status.startswith("**Started from your photo")
    settings = SampleSettings(prompt="cat", steps=4, scheduler="ddim", schedule="cosine", seed=2).validated()
    for r in levels:  # where each column starts, from the model's own scheduler (independently planned)
        st = plan_start(get_model(name), settings, r["t"])
        assert (r["start_step"], r["start_timestep"]) == (st.step, st.timestep)
        assert r["alpha_bar"] == pytest.approx(st.alpha_bar, rel=1e-6)
        assert r["power_left_pct"] == pytest.approx(100 * st.alpha_bar, rel=1e-6)
    cols = json.loads(player)["columns"]
    assert [len(c["frames"]) for c in cols] == [r["steps_run"] for r in levels]
    assert [c["frames"][0]["index"] for c in cols] == [r["start_step"] for r in levels]
    assert json.loads(player)["align"] == "step"
    picture = np.asarray(Image.open(shown).convert("RGB"))
    if model in PIXEL_MODELS:
        assert picture.shape == (PIXEL_MODELS[model],) * 2 + (3,)
    else:  # the latent's cheap preview, at latent size
        assert picture.shape == (LATENT_MODELS[model][0],) * 2 + (3,)


@pytest.mark.parametrize("model", MODELS)
def test_when_decided(app, model):
    client, _ = app
    player, text, summary = client.predict("cat", "rocket", 1, _name(app, model), "ddim", "cosine", 4,
                                           "switch the prompt", api_name="/when_decided")
    assert [c["k"] for c in summary["columns"]] == [0, 0, 1, 2, 3, 4]  # 0, 10, 25, 50, 75, 100 % of 4 steps
    cols = json.loads(player)["columns"]
    assert len(cols) == 6 and all(len(c["frames"]) == 4 for c in cols)
    assert cols[0]["title"] == "“rocket” only" and cols[-1]["title"] == "“cat” only"
    assert [c["title"] for c in cols[1:-1]] == ["“rocket” only", "switch after step 1", "switch after step 2",
                                                 "switch after step 3"]  # 10 % of 4 steps rounds to 0


@pytest.mark.parametrize("model", MODELS)
def test_seed_grid(app, model):
    client, _ = app
    player, text, summary = client.predict("animal", 3, 3, _name(app, model), "ddim", "cosine", 4,
                                           api_name="/seed_grid")
    assert summary["seeds"] == [3, 4, 5]
    cols = json.loads(player)["columns"]
    assert [c["title"].split(":")[0] for c in cols] == ["seed 3", "seed 4", "seed 5"]
    if model in PIXEL_MODELS:
        assert sum(summary["tally"]["counts"].values()) == 3
        if model.startswith("emoji-exact"):
            assert summary["tally"]["favourite"] == "dog" and "won" in text
    else:
        assert summary["tally"] is None


def test_memorize_runs_both_emoji_models(app):
    client, _ = app
    out = client.predict("rocket", 0, 8, 3.0, api_name="/memorize")
    assert [m["model"] for m in out["models"]] == ["emoji-exact-32", "emoji-unet"]
    exact, unet = out["models"]
    assert exact["copy"] and "rocket" in exact["nearest"] and exact["nearest_rms"] < 0.1
    assert not unet["copy"] and unet["nearest_rms"] >= 0.1


def _embedded_payload(html_text):
    start = html_text.index('<script type="application/json" id="dv-data">') + len(
        '<script type="application/json" id="dv-data">')
    return json.loads(html_text[start:html_text.index("</script>", start)])


@pytest.mark.parametrize("model", MODELS)
def test_lesson_file_and_worksheet(app, model):
    """The files a teacher takes away, for every model: the offline lesson carries the run's frames (as
    the player gets them), the worksheet its contact sheet and one row of numbers per shown step."""
    client, _ = app
    name = _name(app, model)
    lesson = client.predict("cat", STEPS, 4, 1.0, "ddim", "cosine", name, api_name="/lesson_file")
    text = open(lesson, encoding="utf-8").read()
    payload = _embedded_payload(text)
    frames = payload["columns"][0]["frames"]
    assert len(frames) == STEPS and "run" not in payload
    assert frames[0]["alpha_bar"] == pytest.approx(_first_alpha_bar(name, "cosine"), rel=5e-3)
    assert lesson.endswith("-lesson.html") and "“cat”" in text
    sheet = client.predict("cat", STEPS, 4, 1.0, "ddim", "cosine", name, api_name="/worksheet")
    page = open(sheet, encoding="utf-8").read()
    assert sheet.endswith("-worksheet.html") and "<script" not in page.lower()
    assert page.count("data:image/png;base64,") == 1
    rows = page.split('<table class="numbers"')[1].split("</table>")[0].count("<tr>") - 1 if \
        '<table class="numbers"' in page else None
    assert rows == STEPS, rows


def test_experiment_endpoints_refuse_bad_input_and_keep_serving(app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _ = app
    bomb = tmp_path / "huge.png"  # a tiny file that claims 20,000 x 20,000 pixels: refused before decoding
    Image.new("1", (20_000, 20_000)).save(bomb)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    for photo, words in ((bomb, "too large"), (broken, "not an image")):
        with pytest.raises(AppError, match=words):
            client.predict(handle_file(str(photo)), "", "", 0, "emoji-exact", "ddim", "cosine", 4, [300],
                           api_name="/round_trip")
    with pytest.raises(AppError, match="8"):
        client.predict("animal", 0, 9, "emoji-exact", "ddim", "cosine", 4, api_name="/seed_grid")
    with pytest.raises(AppError, match="Pick ddpm or euler_a"):
        client.predict("cat", "dog", 0, "emoji-exact", "ddim", "cosine", 4, "new noise (DDPM, Euler a)",
                       api_name="/when_decided")
    with pytest.raises(AppError, match="at least one noise level"):
        client.predict(None, "", "", 0, "emoji-exact", "ddim", "cosine", 4, [], api_name="/round_trip")
    _, _, status, summary = client.predict(None, "rocket", "", 0, "emoji-exact", "ddim", "cosine", 4, [300],
                                           api_name="/round_trip")  # still serving
    assert status.startswith("**Started from the training emoji rocket")
