"""Every public endpoint, driven through gradio_client against the app launched on a free local port."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server

    configure_torch_threads()
    demo, url = start_server()
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_api_names_are_stable(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/generate", "/downloads", "/forward_noise", "/forward_plots", "/compare", "/memorize"} <= names


def test_generate_returns_player_image_summary_and_downloads_on_request(client):
    player, image, summary, cond, status, files = client.predict(
        "cat", 20, 0, 1.0, "ddim", "cosine", "emoji-exact", api_name="/generate")
    payload = json.loads(player)
    frames = payload["columns"][0]["frames"]
    assert payload["mode"] == "full" and len(frames) == 20
    strips = payload["columns"][0]["strips"][-1]  # the run's chunks follow each other
    assert sum(c["count"] for c in payload["columns"][0]["strips"]) == 20
    assert frames[0]["t"] > frames[-1]["t"] and strips["x0"].startswith("data:image/png;base64,")
    assert strips["size"] == [64, 64]
    assert Image.open(image).size == (64, 64)
    assert summary["frames"] == 20 and summary["settings"]["seed"] == 0 and len(summary["steps"]) == 20
    assert summary["conditioning"]["matches"][0]["label"].endswith("cat")
    assert "cat" in cond and "Done" in status
    assert not files  # GIF/MP4 cost more than the run on a CPU: they are made on request
    made = client.predict("cat", 20, 0, 1.0, "ddim", "cosine", "emoji-exact", api_name="/downloads")
    assert sorted(f.rsplit(".", 1)[1] for f in made) == ["gif", "mp4"]
    gif = Image.open(next(f for f in made if f.endswith(".gif")))
    assert gif.n_frames >= 20  # one frame per step, then the result held
    again = client.predict("cat", 20, 0, 1.0, "ddim", "cosine", "emoji-exact", api_name="/downloads")
    assert [Path(f).read_bytes() for f in sorted(again)] == [Path(f).read_bytes() for f in sorted(made)]


def test_generate_same_seed_same_picture_other_seed_other_picture(client):
    def final(prompt, seed):
        return np.asarray(Image.open(client.predict(prompt, 10, seed, 1.0, "ddim", "cosine", "emoji-exact-32",
                                                    api_name="/generate")[1]))
    a = final("", 1)
    assert np.array_equal(a, final("", 1))
    assert not np.array_equal(a, final("", 2))


@pytest.mark.parametrize("args, words", [
    (("cat", 10, -5, 1.0, "ddim", "cosine", "emoji-exact"), "less than"),
    (("cat", 10, 0, 99.0, "ddim", "cosine", "emoji-exact"), "greater than"),
    (("cat", 10, 0, 1.0, "warp", "cosine", "emoji-exact"), "warp"),
    (("x" * 1200, 10, 0, 1.0, "ddim", "cosine", "emoji-exact"), "limit"),
])
def test_generate_bad_values_give_a_message_and_server_keeps_serving(client, args, words):
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name="/generate")
    assert words in str(err.value) and "Traceback" not in str(err.value)
    assert client.predict("cat", 2, 0, 1.0, "ddim", "cosine", "emoji-exact-32", api_name="/generate")[2]["frames"] == 2


def test_forward_noise_returns_images_and_pixel_arithmetic(client, tmp_path):
    path = tmp_path / "photo.png"
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (255, 0, 0)
    Image.fromarray(rgb).save(path)
    out = client.predict(handle_file(str(path)), 500, ["linear", "scaled_linear", "cosine", "sigmoid"], 0, 5, 7,
                         api_name="/forward_noise")
    images, md, numbers, shown = out[:4], out[4], out[5], out[6]
    assert all(Image.open(im["value"]).size == (60, 40) for im in images)
    assert [s["schedule"] for s in numbers["schedules"]] == ["linear", "scaled_linear", "cosine", "sigmoid"]
    first = numbers["schedules"][0]
    assert first["rgb"] == [255, 0, 0] and numbers["pixel"] == {"x": 5, "y": 7} and numbers["t"] == 500
    assert "x=5, y=7" in md and "clip" in md
    assert len({tuple(s["eps"]) for s in numbers["schedules"]}) == 1  # the same eps everywhere
    assert Image.open(shown).size == (60, 40)


def test_forward_noise_downscales_big_photos(client, tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2048, 1024), (10, 200, 30)).save(path)
    out = client.predict(handle_file(str(path)), 10, ["cosine"], 0, -1, -1, api_name="/forward_noise")
    assert out[5]["size"] == {"width": 1024, "height": 512}
    assert out[1]["visible"] is False  # unused schedule slots are hidden


def test_forward_plots(client):
    sched, hist = client.predict(300, ["linear", "cosine"], 0, api_name="/forward_plots")
    assert sched["type"] == "matplotlib" and sched["plot"].startswith("data:image")
    assert hist["plot"].startswith("data:image")


def _bomb_png(side=20000) -> bytes:
    """A valid 1-bit PNG of side x side that compresses to ~50 kB: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + side // 8)
    raw = zlib.compress(row * side, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, make", [
    ("notes.png", lambda: b"this is not an image"),
    ("empty.png", lambda: b""),
    ("bomb.png", _bomb_png),
    ("truncated.png", None),
])
def test_bad_uploads_give_a_friendly_message(client, tmp_path, name, make):
    path = tmp_path / name
    if make is None:
        full = tmp_path / "ok.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(make())
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(path)), 100, ["cosine"], 0, -1, -1, api_name="/forward_noise")
    message = str(err.value)
    assert "Traceback" not in message and ("image" in message.lower() or "empty" in message.lower())
    ok = client.predict(handle_file("assets/examples/wheel.png"), 100, ["cosine"], 0, -1, -1,
                        api_name="/forward_noise")
    assert ok[5]["t"] == 100


def test_compare_runs_each_column_with_same_prompt_and_seed(client):
    cols = [{"scheduler": "ddim", "schedule": "cosine", "steps": 10, "guidance": 1.0},
            {"scheduler": "dpmpp_2m", "schedule": "cosine", "steps": 5, "guidance": 1.0}]
    out = client.predict("cat", 0, "emoji-exact", cols, api_name="/compare")
    assert [c["frames"] for c in out["columns"]] == [10, 5]
    assert all(c["final_png"].startswith("data:image/png") and len(c["log_snr"]) == c["frames"]
               for c in out["columns"])
    assert out["prompt"] == "cat" and out["seed"] == 0


def test_compare_bad_columns_give_a_message(client):
    with pytest.raises(AppError) as err:
        client.predict("cat", 0, "emoji-exact", [], api_name="/compare")
    assert "column" in str(err.value).lower()
    with pytest.raises(AppError) as err:
        client.predict("cat", 0, "no-such-model", [{"steps": 5}], api_name="/compare")
    assert "model" in str(err.value).lower()


def test_memorize_exact_copies_unet_generalizes(client):
    out = client.predict("rocket", 0, 20, 3.0, api_name="/memorize")
    assert (out["prompt"], out["seed"], out["steps"]) == ("rocket", 0, 20)
    exact, unet = out["models"]
    assert exact["model"] == "emoji-exact-32" and exact["copy"] and exact["nearest_rms"] < 1e-3
    assert exact["nearest"] == "🚀 rocket" and exact["verdict"] == "a copy of a training emoji"
    assert unet["model"] == "emoji-unet" and not unet["copy"] and unet["nearest_rms"] >= 0.1
    assert unet["verdict"].startswith("new picture; nearest training emoji is ") and unet["guidance"] == 3.0
    for m in out["models"]:
        for key in ("image_png", "nearest_png"):
            assert m[key].startswith("data:image/png;base64,")
    assert client.predict("rocket", api_name="/memorize")["steps"] == 50  # seed, steps, guidance have defaults


@pytest.mark.parametrize("args, words", [
    (("", 0, 20, 3.0), "type a prompt"),
    (("x" * 1001, 0, 20, 3.0), "limit"),
    (("cat", -1, 20, 3.0), "seed"),
    (("cat", 0, 0, 3.0), "steps"),
    (("cat", 0, 10**6, 3.0), "steps"),
    (("cat", 0, 20, 99.0), "guidance"),
])
def test_memorize_bad_values_give_a_message_and_server_keeps_serving(client, args, words):
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name="/memorize")
    assert words in str(err.value).lower() and "Traceback" not in str(err.value)
    assert client.predict("cat", 0, 2, 1.0, api_name="/memorize")["models"][0]["copy"]
