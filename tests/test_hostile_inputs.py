"""One table of hostile and odd inputs, over every public endpoint (gradio_client) and the UI handlers.

Each case either works (odd but valid: unicode, empty prompt, 1x1 photo...) or fails with a clear,
short message (no traceback, no HTML injection); none crashes the server, and the next normal request
after it succeeds.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

NAN, INF = float("nan"), float("inf")
OK = None  # expected outcome: a normal result
GEN = ("cat", 3, 0, 1.0, "ddim", "cosine", "emoji-exact-32")  # a valid /generate call, varied per case
COL = {"scheduler": "ddim", "schedule": "cosine", "steps": 3, "guidance": 1.0}
SCHEDS = ["cosine"]


def gen(**kw):
    names = ("prompt", "steps", "seed", "guidance", "scheduler", "schedule", "model")
    values = dict(zip(names, GEN))
    values.update(kw)
    return tuple(values[n] for n in names)


# ---- files (written on demand into tmp_path) -----------------------------------------------------
def _png(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _bomb(side=30000) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress((b"\0" * (1 + side // 8)) * side, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _noise_png() -> bytes:
    return _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))


def _other(fmt: str, mode: str = "RGB", size=(40, 30), **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode in ("L", "I;16", "CMYK") else (200, 30, 60)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _animated_gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    return buf.getvalue()


FILES = {
    "text.png": lambda: b"hello, I am not a picture",
    "empty.png": lambda: b"",
    "truncated.png": lambda: _noise_png()[:400],
    "bomb.png": _bomb,
    "svg.png": lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "huge.png": lambda: _png(Image.new("RGB", (6000, 4000), (10, 120, 200))),  # 24 MP, small file
    "one_pixel.png": lambda: _png(Image.new("RGB", (1, 1), (1, 2, 3))),
    "sixteen_bit.png": lambda: _other("PNG", "I;16"),
    "rgba.png": lambda: _png(Image.new("RGBA", (30, 30), (255, 0, 0, 0))),
    "cmyk.jpg": lambda: _other("JPEG", "CMYK"),
    "animated.gif": _animated_gif,
    "photo.tiff": lambda: _other("TIFF"),
    "photo.webp": lambda: _other("WEBP"),
    "wide.png": lambda: _png(Image.new("RGB", (5000, 2), (9, 9, 9))),
}


class F(str):
    """A file name from FILES, turned into an upload when the case runs."""


# ---- the table: (case id, endpoint, args, expected words in the error (lowercase) or OK) ------------
API_CASES = [
    # /generate: prompt
    ("empty prompt", "/generate", gen(prompt=""), OK),
    ("blank prompt", "/generate", gen(prompt="   \t\n "), OK),
    ("emoji prompt", "/generate", gen(prompt="🐱🚀 宇宙猫"), OK),
    ("bidi and zero-width prompt", "/generate", gen(prompt="\u202e\u200bcat\ufeff"), OK),
    ("control characters in prompt", "/generate", gen(prompt="ca\x00t\x1b[31m"), OK),
    ("html in prompt", "/generate", gen(prompt="<img src=x onerror=alert(1)>"), OK),
    ("prompt just over the limit", "/generate", gen(prompt="x" * 1001), "the limit is 1000"),
    ("100k-character prompt", "/generate", gen(prompt="cat " * 25_000), "limit"),
    # /generate: numbers
    ("zero steps", "/generate", gen(steps=0), "less than minimum value 1"),
    ("negative steps", "/generate", gen(steps=-5), "less than minimum value 1"),
    ("a billion steps", "/generate", gen(steps=10**9), "greater than maximum value"),
    ("NaN steps", "/generate", gen(steps=NAN), "steps"),
    ("steps as text", "/generate", gen(steps="ten"), "expected a `float`"),
    ("fractional steps", "/generate", gen(steps=2.5), "whole"),
    ("negative seed", "/generate", gen(seed=-1), "less than minimum value 0"),
    ("seed beyond 64 bits", "/generate", gen(seed=2**70), f"greater than maximum value {2**63 - 1}"),
    ("seed as text", "/generate", gen(seed="abc"), "expected a `float"),
    ("NaN guidance", "/generate", gen(guidance=NAN), "guidance"),
    ("infinite guidance", "/generate", gen(guidance=INF), "greater than maximum value"),
    ("negative guidance", "/generate", gen(guidance=-1.0), "less than minimum value 0"),
    # /generate: names
    ("unknown sampler", "/generate", gen(scheduler="warp"), "warp"),
    ("missing sampler", "/generate", gen(scheduler=None), "unknown scheduler"),
    ("script as schedule", "/generate", gen(schedule="<script>alert(1)</script>"), "list of choices"),
    ("path as model", "/generate", gen(model="../../../etc/passwd"), "list of choices"),
    ("hub id as model", "/generate", gen(model="someone/evil-model"), "list of choices"),
    ("prompt as a list", "/generate", gen(prompt=["cat", "dog"]), OK),  # gradio makes it a string
    # /compare
    ("no columns", "/compare", ("cat", 0, "emoji-exact-32", []), "column"),
    ("five columns", "/compare", ("cat", 0, "emoji-exact-32", [COL] * 5), "at most 4"),
    ("columns as text", "/compare", ("cat", 0, "emoji-exact-32", "ddim"), "column"),
    ("column that is not a dict", "/compare", ("cat", 0, "emoji-exact-32", [None]), "dict"),
    ("column steps as text", "/compare", ("cat", 0, "emoji-exact-32", [{**COL, "steps": "many"}]), "steps"),
    ("column with NaN guidance", "/compare", ("cat", 0, "emoji-exact-32", [{**COL, "guidance": NAN}]),
     "guidance"),
    ("column with unknown sampler", "/compare", ("cat", 0, "emoji-exact-32", [{**COL, "scheduler": "x"}]),
     "unknown scheduler"),
    ("compare with huge seed", "/compare", ("cat", 10**30, "emoji-exact-32", [COL]), "seed must be between 0 and 2^63-1"),
    ("compare with no model", "/compare", ("cat", 0, None, [COL]), "model"),
    ("compare with odd but valid prompt", "/compare", ("🐱" * 10, 0, "emoji-exact-32", [COL]), OK),
    # /memorize
    ("memorize empty prompt", "/memorize", ("", 0, 3, 1.0), "type a prompt"),
    ("memorize 100k-character prompt", "/memorize", ("cat " * 25_000, 0, 3, 1.0), "limit"),
    ("memorize html prompt", "/memorize", ("<img src=x onerror=alert(1)>", 0, 3, 1.0), OK),
    ("memorize seed as text", "/memorize", ("cat", "abc", 3, 1.0), "seed"),
    ("memorize NaN steps", "/memorize", ("cat", 0, NAN, 1.0), "steps"),
    ("memorize too many steps", "/memorize", ("cat", 0, 5000, 1.0), "steps must be between 1 and 200"),
    # /forward_noise: uploads
    ("not an image", "/forward_noise", (F("text.png"), 100, SCHEDS, 0, -1, -1), "image"),
    ("empty file", "/forward_noise", (F("empty.png"), 100, SCHEDS, 0, -1, -1), "empty"),
    ("truncated png", "/forward_noise", (F("truncated.png"), 100, SCHEDS, 0, -1, -1), "image"),
    ("decompression bomb", "/forward_noise", (F("bomb.png"), 100, SCHEDS, 0, -1, -1), "image"),
    ("svg named png", "/forward_noise", (F("svg.png"), 100, SCHEDS, 0, -1, -1), "image"),
    ("24-megapixel photo", "/forward_noise", (F("huge.png"), 100, SCHEDS, 0, -1, -1), OK),
    ("1x1 photo", "/forward_noise", (F("one_pixel.png"), 100, SCHEDS, 0, -1, -1), OK),
    ("16-bit grey png", "/forward_noise", (F("sixteen_bit.png"), 100, SCHEDS, 0, -1, -1), OK),
    ("transparent png", "/forward_noise", (F("rgba.png"), 100, SCHEDS, 0, -1, -1), OK),
    ("cmyk jpeg", "/forward_noise", (F("cmyk.jpg"), 100, SCHEDS, 0, -1, -1), OK),
    ("animated gif", "/forward_noise", (F("animated.gif"), 100, SCHEDS, 0, -1, -1), OK),
    ("tiff", "/forward_noise", (F("photo.tiff"), 100, SCHEDS, 0, -1, -1), OK),
    ("webp", "/forward_noise", (F("photo.webp"), 100, SCHEDS, 0, -1, -1), OK),
    ("5000x2 strip", "/forward_noise", (F("wide.png"), 100, SCHEDS, 0, -1, -1), OK),
    # /forward_noise: numbers and choices
    ("t beyond the schedule", "/forward_noise", (None, 5000, SCHEDS, 0, -1, -1), "greater than maximum value 999"),
    ("negative t", "/forward_noise", (None, -1, SCHEDS, 0, -1, -1), "less than minimum value 0"),
    ("no schedules", "/forward_noise", (None, 100, [], 0, -1, -1), "schedule"),
    ("unknown schedule", "/forward_noise", (None, 100, ["nope"], 0, -1, -1), "nope"),
    ("pixel far outside", "/forward_noise", (None, 100, SCHEDS, 0, 10**9, 10**9), OK),
    ("NaN pixel", "/forward_noise", (None, 100, SCHEDS, 0, NAN, 3), "nan"),
    # /forward_plots
    ("plots with NaN t", "/forward_plots", (NAN, SCHEDS, 0), "t"),
    ("plots with t as text", "/forward_plots", ("late", SCHEDS, 0), "expected a `float"),
    ("plots with no schedules", "/forward_plots", (100, [], 0), "schedule"),
]

# ---- what the cases that succeed must return --------------------------------------------------------
def _summary(out) -> dict:
    """The JSON summary among a handler's outputs (generate: settings; forward: schedules)."""
    return next(o for o in out if isinstance(o, dict) and ({"settings", "schedules"} & set(o)))


def _picture(value) -> np.ndarray:
    """An image output: a file path (through the API) or an array (straight from the handler)."""
    return np.asarray(Image.open(value).convert("RGB")) if isinstance(value, str) else np.asarray(value)


def _data_uri_picture(uri: str) -> np.ndarray:
    import base64

    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def _generated(prompt: str, kind: str = "emoji"):
    """/generate ran 3 steps for exactly this (cleaned) prompt and shows it in the conditioning text."""
    def check(out):
        payload, final, summary, cond_md, status = out[:5]
        assert summary["settings"]["prompt"] == prompt and summary["conditioning"]["prompt"] == prompt
        assert summary["conditioning"]["kind"] == kind and summary["frames"] == 3
        assert summary["settings"]["steps"] == 3 and summary["model"] == "emoji-exact-32"
        assert len(json.loads(payload)["columns"][0]["frames"]) == 3
        assert _picture(final).shape == (32, 32, 3)
        assert "Done: 3 steps" in status
        if kind == "unconditional":
            assert "empty prompt" in cond_md.lower()
        else:
            assert "<" not in cond_md and "points to" in cond_md  # shown, and no raw HTML
    return check


def _html_prompt_is_escaped(out):
    raw = "<img src=x onerror=alert(1)>"
    _generated(raw)(out)  # the run is for the prompt as typed (it is data, not markup)...
    cond_md = out[3]
    assert "<img" not in cond_md and "&#60;img" in cond_md  # ...and where it is shown, it is text (entities)


def _compared_emoji_prompt(out):
    assert out["prompt"] == "🐱" * 10 and out["model"] == "emoji-exact-32" and len(out["columns"]) == 1
    col = out["columns"][0]
    assert (col["scheduler"], col["schedule"], col["frames"]) == ("ddim", "cosine", 3)
    assert _data_uri_picture(col["final_png"]).shape == (32, 32, 3)


def _memorized_html_prompt(out):
    from diffusion_viz.ui.memorize_tab import cards_html

    assert out["prompt"] == "<img src=x onerror=alert(1)>" and out["steps"] == 3
    assert [m["model"] for m in out["models"]] == ["emoji-exact-32", "emoji-unet"]
    for m in out["models"]:
        assert _data_uri_picture(m["image_png"]).shape == (32, 32, 3) and m["nearest"]
    cards = cards_html(out)
    assert "onerror" not in cards and cards.count("<img ") == 4  # two pictures per model, nothing injected


def _noised(rgb, size=None, tol=0, t=100, pixel=None):
    """/forward_noise read the photo as ``rgb`` (at the pixel), at ``size`` (width, height), and did the
    arithmetic x_t = sqrt(abar) x0 + sqrt(1 - abar) eps with x0 = p / 127.5 - 1."""
    def check(out):
        from diffusion_viz.schedules import get_schedule

        summary = _summary(out)
        w, h = summary["size"]["width"], summary["size"]["height"]
        if size is not None:
            assert (w, h) == size
        x, y = summary["pixel"]["x"], summary["pixel"]["y"]
        assert (x, y) == (pixel or (w // 2, h // 2))
        assert summary["t"] == t and len(summary["schedules"]) == 1
        row = summary["schedules"][0]
        assert row["schedule"] == "cosine"
        ab = float(get_schedule("cosine").alphas_cumprod[t])
        assert row["alpha_bar"] == pytest.approx(ab, rel=1e-6)
        if rgb is not None:
            np.testing.assert_allclose(row["rgb"], rgb, atol=tol)
        x0 = np.asarray(row["rgb"]) / 127.5 - 1
        np.testing.assert_allclose(row["x0"], x0, atol=1e-6)
        np.testing.assert_allclose(row["x_t"], math.sqrt(ab) * x0 + math.sqrt(1 - ab) * np.asarray(row["eps"]),
                                   atol=1e-5)
        assert _picture(out[0]["value"] if isinstance(out[0], dict) else out[0]).shape[:2] == (h, w)
    return check


def _clamped_to_the_corner(out):
    """A pixel far outside the photo is clamped to its last column and row (whichever photo it is)."""
    summary = _summary(out)
    w, h = summary["size"]["width"], summary["size"]["height"]
    _noised(None, pixel=(w - 1, h - 1))(out)


def _ui_generated_unicode(out):
    _generated("ｃａｔ \U0001F408\u0301")(out)


def _ui_compared(out):
    payload, _fig, results, summary = out
    assert len(summary["columns"]) == 1 and summary["columns"][0]["frames"] == 3  # only the column turned on
    assert len(json.loads(payload)["columns"]) == 1 and "3 steps" in results


CHECKS = {
    "empty prompt": _generated("", "unconditional"),
    "blank prompt": _generated("", "unconditional"),  # whitespace only: the same as empty
    "emoji prompt": _generated("🐱🚀 宇宙猫"),
    "bidi and zero-width prompt": _generated("cat"),  # invisible format characters are dropped
    "control characters in prompt": _generated("cat[31m"),  # NUL and ESC dropped, the printable rest kept
    "html in prompt": _html_prompt_is_escaped,
    "prompt as a list": _generated(str(["cat", "dog"])),
    "compare with odd but valid prompt": _compared_emoji_prompt,
    "memorize html prompt": _memorized_html_prompt,
    "24-megapixel photo": _noised((10, 120, 200), size=(1024, 683)),  # downscaled, aspect kept
    "1x1 photo": _noised((1, 2, 3), size=(1, 1)),
    "16-bit grey png": _noised((128, 128, 128), size=(40, 30)),  # value 128 of 65535 is read as 8-bit 128
    "transparent png": _noised((255, 255, 255), size=(30, 30)),  # composited on white
    "cmyk jpeg": _noised((127, 255, 255), size=(40, 30), tol=3),  # C=128: half cyan
    "animated gif": _noised((255, 0, 0), size=(20, 20)),  # the first frame
    "tiff": _noised((200, 30, 60), size=(40, 30)),
    "webp": _noised((200, 30, 60), size=(40, 30), tol=3),  # lossy
    "5000x2 strip": _noised((9, 9, 9), size=(1024, 1)),
    "pixel far outside": _clamped_to_the_corner,
    "ui generate odd unicode": _ui_generated_unicode,
    "ui compare valid": _ui_compared,
    "ui forward schedules as text": _noised(None, t=10),  # "cosine" read as ["cosine"]
}


NEXT = {  # a normal request after each case: the server must still serve
    "/generate": lambda k: gen(seed=1000 + k),
    "/compare": lambda k: ("cat", 1000 + k, "emoji-exact-32", [COL]),
    "/forward_noise": lambda k: (None, k % 999, SCHEDS, 0, -1, -1),
    "/forward_plots": lambda k: (k % 999, SCHEDS, 0),
    "/memorize": lambda k: ("cat", 1000 + k, 3, 1.0),
}


@pytest.fixture(scope="module")
def client():
    import torch

    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server

    threads = torch.get_num_threads()  # put back afterwards: a process-wide setting
    configure_torch_threads()
    demo, url = start_server()
    try:
        c = Client(url, verbose=False)
        yield c
        c.close()
    finally:
        demo.close()
        torch.set_num_threads(threads)


def _materialize(args, tmp_path):
    out = []
    for a in args:
        if isinstance(a, F):
            path = tmp_path / str(a)
            path.write_bytes(FILES[str(a)]())
            a = handle_file(str(path))
        out.append(a)
    return out


def _check_message(message: str, words: str):
    low = message.lower()
    assert words in low, message
    assert "traceback" not in low and "upstream gradio app has raised" not in low, message
    if "list of choices" not in low:  # gradio's own choice check echoes the value back to its sender
        assert "<script" not in low and "onerror" not in low, message
    assert len(message) < 600, message


def _raw_call(client, endpoint: str, args) -> tuple[bool, str]:
    """What gradio_client refuses to send (NaN, inf: not JSON), sent as raw HTTP like any script could.
    Returns (succeeded, message)."""
    import httpx

    base = client.src.rstrip("/") + "/gradio_api/call" + endpoint
    body = json.dumps({"data": list(args)})  # Python writes NaN / Infinity literals
    with httpx.Client(timeout=60) as http:
        resp = http.post(base, content=body, headers={"Content-Type": "application/json"})
        if resp.status_code != 200:
            return False, resp.text
        event_id = resp.json()["event_id"]
        text = http.get(f"{base}/{event_id}").text
    events = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("event:")]
    data = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("data:")]
    if "error" in events:
        payload = data[events.index("error")]
        return False, payload if payload != "null" else "no message"
    return "complete" in events, text[-300:]


def _nonfinite(args) -> bool:
    def bad(v):
        return (isinstance(v, float) and not math.isfinite(v)) or (
            isinstance(v, list) and any(isinstance(c, dict) and any(bad(x) for x in c.values()) for c in v))
    return any(bad(a) for a in args)


def test_the_table_is_big_enough():
    assert len(API_CASES) + len(UI_CASES) >= 30
    assert {c[1] for c in API_CASES} == set(NEXT)
    assert {c[0] for c in API_CASES + UI_CASES if c[3] is OK} == set(CHECKS)  # every success is checked


@pytest.mark.parametrize("name, endpoint, args, expect", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_endpoint(client, tmp_path, name, endpoint, args, expect):
    k = API_CASES.index(next(c for c in API_CASES if c[0] == name))
    args = _materialize(args, tmp_path)
    if _nonfinite(args):  # the official client cannot send these; a raw HTTP client can
        ok, message = _raw_call(client, endpoint, args)
        assert not ok
        _check_message(message, expect)
    elif expect is OK:
        CHECKS[name](client.predict(*args, api_name=endpoint))
    else:
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=endpoint)
        _check_message(str(err.value), expect)
    assert client.predict(*NEXT[endpoint](k), api_name=endpoint) is not None  # still serving


# ---- the same kinds of input straight into the UI handlers (what the page's events call) -------------
def _generate(*args):
    from diffusion_viz.ui.denoise_tab import generate

    return list(generate(*args))[-1]


def _compare_ui(prompt, seed, model, *flat):
    from diffusion_viz.ui.compare_tab import compare_ui

    return list(compare_ui(prompt, seed, model, *flat))[-1]  # progress lines first, then the results


def _forward(*args):
    from diffusion_viz.ui.forward_tab import forward_noise

    return forward_noise(*args, state=None)


def _plots(*args):
    from diffusion_viz.ui.forward_tab import forward_plots

    return forward_plots(*args, state=None)


FLAT_OK = [True, "ddim", "cosine", 3, 1.0] + [False, "ddim", "cosine", 3, 1.0] * 3
UI_CASES = [
    ("ui generate NaN steps", _generate, gen(steps=NAN), "steps"),
    ("ui generate None steps", _generate, gen(steps=None), "steps"),
    ("ui generate infinite seed", _generate, gen(seed=INF), "seed"),
    ("ui generate None model", _generate, gen(model=None), "model"),
    ("ui generate long prompt", _generate, gen(prompt="ab" * 5000), "limit"),
    ("ui generate prompt as bytes", _generate, gen(prompt=b"\xff\xfe"), "prompt"),
    ("ui generate odd unicode", _generate, gen(prompt="ｃａｔ \U0001F408\u0301"), OK),
    ("ui compare all columns off", _compare_ui, ("cat", 0, "emoji-exact-32", *([False, "ddim", "cosine", 3, 1.0] * 4)),
     "column"),
    ("ui compare None steps", _compare_ui, ("cat", 0, "emoji-exact-32", True, "ddim", "cosine", None, 1.0), "steps"),
    ("ui compare NaN seed", _compare_ui, ("cat", NAN, "emoji-exact-32", *FLAT_OK), "seed"),
    ("ui compare valid", _compare_ui, ("cat", 0, "emoji-exact-32", *FLAT_OK), OK),
    ("ui forward missing file", _forward, ("/nonexistent/photo.png", 10, SCHEDS, 0, -1, -1), "image"),
    ("ui forward directory as file", _forward, ("/tmp", 10, SCHEDS, 0, -1, -1), "image"),
    ("ui forward None t", _forward, (None, None, SCHEDS, 0, -1, -1), "t"),
    ("ui forward schedules as text", _forward, (None, 10, "cosine", 0, -1, -1), OK),
    ("ui plots huge seed", _plots, (10, SCHEDS, 10**40), "seed must be between 0 and 2^63-1"),
]


@pytest.mark.parametrize("name, fn, args, expect", UI_CASES, ids=[c[0] for c in UI_CASES])
def test_ui_handler(name, fn, args, expect):
    if expect is OK:
        CHECKS[name](fn(*args))
    else:
        with pytest.raises(gr.Error) as err:
            fn(*args)
        _check_message(str(err.value.message if hasattr(err.value, "message") else err.value), expect)
    assert _generate(*gen(seed=len(name))) is not None  # the handlers still work
