"""A run's frames in a compact form: the format of the player, the API and the result cache.

Per panel one *strip*: all the run's frames of that panel stacked top to bottom in one PNG (lossless), so
a 50-step run at 64 px is a few PNGs instead of 150. Frames change little from one step to the next, so a
strip stores each frame's *difference* from the one before (mod 256; the first frame as it is): the
browser adds them up again. For pixel models the x_t panel is not sent at all: the browser derives it
from the other two with the forward formula, in display units::

    x_t = sqrt(abar) * x0 + sqrt(1 - abar) * eps
    P   = floor(sqrt(abar) * (X0 - o) + (sqrt(1 - abar) * k) * (E - o) + o + 0.5), clipped to 0..255

where X0 and E are the displayed 0..255 values of the predicted clean picture and noise, ``o`` the
display's zero (127.5 for pixels) and ``k`` how much the noise panel is shrunk for display (3: noise is
shown at 1/3 scale). X0 and E are rounded to whole levels, so P can be one level off; wherever it is
off by more (noise beyond 3 standard deviations is clipped in its panel) a *fix* strip, zero
elsewhere, holds the difference (mod 256). Result: every x_t value within +-1 of the server's picture
(1/255), and x0 and the noise exact.

Latent models (Stable Diffusion's cheap previews clip often, so the formula does not hold for their
pictures) send x_t as a strip of its own. Their three previews travel *quantized*: each value v as the
level index round(v / 2) (``"quant": 2``; the browser shows min(255, 2 * index)), so every preview value is
within +-1 of the server's (the same tolerance as the pixel models' x_t), in lossless WebP (``"format":
"webp"``), which packs the small deltas of noisy latents about 15 % tighter than PNG. Together: a 50-step
run of a tiny random SD with a 64x64 latent is ~0.35 MB instead of 0.52 MB.
Sizes (bench/bench_payload.py prints them): tens of KB for 50 DDIM steps at 64 px (before: 1.8 MB of
per-frame PNGs); ancestral samplers draw fresh noise every step, which no lossless format shrinks much.

``encode_frames`` makes a column's strips; ``decode_column`` turns them back into numpy arrays (the
reference the browser's player follows, see player.py, and what an API client can use: docs/API.md).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# zlib level 6: a 50-step strip encodes in ~5-12 ms and is 10-25 % smaller than at level 3 (~4-6 ms).
PNG_LEVEL = 6
FIX_LEVEL = 6  # the fix strip is ~98 % zeros: ~23 KB for 50 steps at 64 px (~11 ms; level 3: 31 KB, 7 ms)
LATENT_QUANT = 2  # latent previews: level index round(v / 2), so within +-1 level of 255
WEBP_EFFORT = {"method": 4, "quality": 50}  # lossless WebP: ~85 ms for a 50-step 64x64 SD run, 8 % smaller than the fastest


def png_uri(rgb: np.ndarray, level: int = PNG_LEVEL) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=level)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def webp_uri(rgb: np.ndarray) -> str:
    """Lossless WebP (every value kept), for the latent previews' strips."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="WEBP", lossless=True, **WEBP_EFFORT)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_array(uri: str) -> np.ndarray:
    """Any strip (PNG or WebP data URI) -> (H, W, 3) uint8."""
    data = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def predict_xt(x0: np.ndarray, eps: np.ndarray, alpha_bars, offset, eps_scale: float) -> np.ndarray:
    """P for each frame (the formula above), in float64 with the same operations in the same order as the
    browser's JavaScript, so both get the same whole numbers. x0, eps: (n, H, W, 3) uint8."""
    ab = np.asarray(alpha_bars, dtype=np.float64).reshape(-1, 1, 1, 1)
    o = np.asarray(offset, dtype=np.float64).reshape(1, 1, 1, -1)
    a, bk = np.sqrt(ab), np.sqrt(1.0 - ab) * float(eps_scale)
    p = x0.astype(np.float64)  # the same operations, in the same order, as the JavaScript; in place
    p -= o
    p *= a
    q = eps.astype(np.float64)
    q -= o
    q *= bk
    p += q
    p += o
    p += 0.5
    np.floor(p, out=p)
    np.clip(p, 0, 255, out=p)
    return p.astype(np.int16)


def display_constants(model) -> tuple[list[float], float]:
    """(offset o per channel, eps_scale k) of a model's displays: pixel models show x in [-1, 1] as
    127.5 (x + 1) and noise at 1/3 scale; latent models preview both through the same linear map."""
    offset = getattr(model, "display_offset", None)
    if offset is not None:
        return [float(v) for v in offset], 1.0
    from ..render import NOISE_DISPLAY_SCALE

    return [127.5, 127.5, 127.5], 1.0 / NOISE_DISPLAY_SCALE


def to_deltas(frames: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> the first frame, then each frame minus the one before, mod 256 (uint8
    arithmetic wraps around by itself)."""
    d = np.empty_like(frames)
    d[0] = frames[0]
    np.subtract(frames[1:], frames[:-1], out=d[1:])
    return d


def from_deltas(deltas: np.ndarray) -> np.ndarray:
    return (np.cumsum(deltas.astype(np.int64), axis=0) % 256).astype(np.uint8)


def strip_uri(frames: np.ndarray, level: int = PNG_LEVEL) -> str:
    n, h, w, c = frames.shape
    return png_uri(to_deltas(frames).reshape(n * h, w, c), level)


def quantized_strip_uri(frames: np.ndarray, quant: int = LATENT_QUANT) -> str:
    """Lossless WebP of the frames' level indices round(v / quant), as deltas."""
    n, h, w, c = frames.shape
    index = ((frames.astype(np.uint16) + quant // 2) // quant).astype(np.uint8)  # round half up, like JS
    return webp_uri(to_deltas(index).reshape(n * h, w, c))


def dequantize(index: np.ndarray, quant: int) -> np.ndarray:
    return np.minimum(index.astype(np.uint16) * quant, 255).astype(np.uint8)


def _stack_display(frames, display, panel: str) -> np.ndarray:
    """(n, H, W, 3) uint8 of one panel. The pixel models' displays (render.image_to_rgb, noise_to_rgb) take
    a whole stack in one call (the same values as frame by frame, a few ms less per run)."""
    from ..render import image_to_rgb, noise_to_rgb

    show = display[1] if panel == "eps" else display[0]
    if show in (image_to_rgb, noise_to_rgb):
        return np.ascontiguousarray(show(np.stack([getattr(f, panel) for f in frames])))
    return np.stack([show(getattr(f, panel)) for f in frames])


def encode_frames(frames, model, display) -> dict:
    """Strips for ``frames`` (sampling.Frame objects): {"size": [H, W], "count": n, "delta": true,
    "x0": uri, "eps": uri, "x_t": {"fix": uri} (derived) or uri (latent models), "predict": {"offset",
    "eps_scale"}}. ``display``: (to_rgb, noise_rgb)."""
    x_t, x0, eps = (_stack_display(frames, display, panel) for panel in ("x_t", "x0", "eps"))
    offset, k = display_constants(model)
    n, h, w, _ = x0.shape
    if getattr(model, "display_offset", None) is not None:  # latent previews: quantized, x_t its own strip
        return {"size": [h, w], "count": n, "delta": True, "format": "webp", "quant": LATENT_QUANT,
                "x0": quantized_strip_uri(x0), "eps": quantized_strip_uri(eps), "x_t": quantized_strip_uri(x_t),
                "predict": {"offset": offset, "eps_scale": k}}
    out = {"size": [h, w], "count": n, "delta": True, "x0": strip_uri(x0), "eps": strip_uri(eps),
           "predict": {"offset": offset, "eps_scale": k}}
    diff = x_t.astype(np.int16)
    diff -= predict_xt(x0, eps, [f.alpha_bar for f in frames], offset, k)
    fix = diff.astype(np.uint8)  # mod 256
    fix[np.abs(diff) <= 1] = 0
    out["x_t"] = {"fix": png_uri(fix.reshape(n * h, w, 3), FIX_LEVEL)}
    return out


def decode_column(chunks: list[dict] | dict, alpha_bars) -> dict[str, np.ndarray]:
    """The inverse of ``encode_frames``: {"x_t", "x0", "eps"} as (n, H, W, 3) uint8 arrays. ``chunks``: a
    column's list of strips (a streamed run arrives in several; they follow each other), or one strip."""
    if isinstance(chunks, list):
        out, start = [], 0
        for chunk in chunks:
            out.append(decode_column(chunk, list(alpha_bars)[start:start + int(chunk["count"])]))
            start += int(chunk["count"])
        return {k: np.concatenate([o[k] for o in out]) for k in ("x_t", "x0", "eps")}
    strips = chunks
    h, w = strips["size"]
    n = int(strips["count"])

    def panel(uri):
        a = png_array(uri).reshape(n, h, w, 3)
        a = from_deltas(a) if strips.get("delta") else a
        return dequantize(a, int(strips["quant"])) if strips.get("quant", 1) > 1 else a

    x0, eps = panel(strips["x0"]), panel(strips["eps"])
    if isinstance(strips["x_t"], str):
        return {"x_t": panel(strips["x_t"]), "x0": x0, "eps": eps}
    fix = png_array(strips["x_t"]["fix"]).reshape(n, h, w, 3).astype(np.int16)
    p = strips["predict"]
    predicted = predict_xt(x0, eps, alpha_bars, p["offset"], p["eps_scale"])
    x_t = np.where(fix != 0, (predicted + fix) % 256, predicted).astype(np.uint8)
    return {"x_t": x_t, "x0": x0, "eps": eps}

