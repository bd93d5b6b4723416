"""Memorize vs generalize: the exact denoiser next to the trained UNet (same prompt, seed and sampler).

Shared by the app's tab, its ``/memorize`` endpoint and ``diffusion-viz memorize``, so all three check
input the same way and say the same thing: both models sample, each result gets its nearest training
emoji (``data.nearest_emoji``, the same function for every model) and a verdict a student can read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import limits, validation
from .data import load_emoji, nearest_emoji
from .errors import InvalidInputError, Stopped
from .render import _font, image_to_rgb, upscale

COPY_RMS = 0.1  # RMS distance (pixels in [-1, 1]) below which a sample counts as a copy of a training emoji
DEFAULTS = dict(prompt="cat face", seed=0, steps=50, guidance=3.0)
SHEET_PROMPTS = ["cat face", "red apple", "rocket", "grinning face", "pizza", "snowman", "tiger face", "rainbow"]
TITLES = {"emoji-exact-32": "Exact denoiser", "emoji-unet": "Neural network (emoji-unet)"}


def check_inputs(prompt, seed, steps, guidance) -> tuple[str, int, int, float]:
    """Validated (prompt, seed, steps, guidance). An empty prompt is refused: the point is what a prompt gives."""
    prompt = validation.check_prompt(prompt)
    if not prompt:
        raise InvalidInputError("Type a prompt, e.g. “cat face”: both models draw it from the same static.")
    steps, guidance = limits.check_steps(steps), validation.check_guidance(guidance)
    # the exact model runs unguided; the UNet makes two calls a step with guidance
    limits.check_cost(limits.model_calls(steps, False) + limits.model_calls(steps, guidance != 1.0),
                      "This comparison")
    return prompt, validation.check_seed(seed), steps, guidance


def verdict(nearest: str, rms: float) -> str:
    return ("a copy of a training emoji" if rms < COPY_RMS
            else f"new picture; nearest training emoji is {nearest}")


def memorize_vs_generalize(prompt: str, seed: int = 0, steps: int = 50, guidance: float = 3.0,
                           scheduler: str = "ddim", should_stop=None) -> list[dict]:
    """Same prompt, same seed, same sampler: the exact denoiser (32 px) next to the UNet.

    Each result comes with its nearest training emoji and the distance to it: ~0 for the exact model
    (a copy), clearly above 0 for the UNet (something new, or a blurred mix). The exact model runs
    without guidance: its prompt prior is already sharp, and guidance on an exact posterior only
    over-sharpens it. ``should_stop`` is checked before every step (Stop, a closed tab).
    """
    from .models.emoji_exact import exact_emoji_model
    from .models.emoji_unet import emoji_unet_model
    from .sampling import SampleSettings, sample

    results = []
    for name, model, g in (("emoji-exact-32", exact_emoji_model(32), 1.0),
                           ("emoji-unet", emoji_unet_model(), guidance)):
        settings = SampleSettings(prompt=prompt, steps=steps, scheduler=scheduler, schedule="cosine",
                                  guidance=g, seed=seed)
        final = sample(model, settings, should_stop=should_stop).final
        if final is None:
            raise Stopped("Stopped before both models finished.")
        near = nearest_emoji(final)
        results.append(dict(model=name, image=final, nearest_index=near.index, nearest=near.label,
                            nearest_rms=near.rms, guidance=g))
    return results


def run(prompt, seed=0, steps=50, guidance=3.0, should_stop=None) -> list[dict]:
    """Both models' results (exact first), each with ``rgb`` and ``nearest_rgb`` (32x32x3 uint8), ``title``,
    ``copy`` (RMS below COPY_RMS) and ``verdict`` added to what ``memorize_vs_generalize`` returns."""
    prompt, seed, steps, guidance = check_inputs(prompt, seed, steps, guidance)
    train = load_emoji(32)
    results = memorize_vs_generalize(prompt, seed=seed, steps=steps, guidance=guidance, should_stop=should_stop)
    for r in results:
        i, rms = r["nearest_index"], float(r["nearest_rms"])
        r.update(title=TITLES.get(r["model"], r["model"]), subtitle=_subtitle(r["model"], r["guidance"]),
                 rgb=image_to_rgb(r["image"]), nearest_rgb=train.images[i], nearest_name=str(train.names[i]),
                 nearest_rms=rms, copy=rms < COPY_RMS, verdict=verdict(r["nearest"], rms))
    return results


def _subtitle(model: str, guidance: float) -> str:
    """What each model is, with the UNet's real size and training (they change when it is retrained)."""
    if model != "emoji-unet":
        return "perfect for its 1,361 training emoji · no guidance"
    from .models.emoji_unet import emoji_unet_model

    unet = emoji_unet_model()
    weights = sum(p.numel() for p in unet.unet.parameters())
    return f"{weights / 1e6:.2f} M weights · trained {unet.steps_trained:,} steps · guidance {guidance:g}"


# ---- one PNG for a worksheet: rows = prompts; exact sample | nearest | UNet sample | nearest ----------
LABEL_W, GAP, MARGIN, HEADER_H, CAPTION_H = 150, 24, 12, 44, 24


def sheet_size(rows: int, cell: int = 160) -> tuple[int, int]:
    return LABEL_W + 4 * cell + GAP + MARGIN, HEADER_H + rows * (cell + CAPTION_H)


def _fit(draw, text: str, font, width: int) -> str:
    """Cut text with an ellipsis so it fits ``width`` pixels (emoji names can be long)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def sheet(rows: list[tuple[str, list[dict]]], cell: int = 160) -> Image.Image:
    """``rows``: (prompt, run(prompt)) pairs. Nearest-neighbour upscaled, captioned with names and RMS
    (names only: the PNG font has no colour emoji)."""
    img = Image.new("RGB", sheet_size(len(rows), cell), "white")
    draw, bold, font = ImageDraw.Draw(img), _font(15), _font(13)
    pair_x = [LABEL_W, LABEL_W + 2 * cell + GAP]
    for x, title in zip(pair_x, ("Exact denoiser (memorizes)", "emoji-unet (generalizes)")):
        draw.text((x + 4, 4), title, fill="black", font=bold)
        draw.text((x + 4, 24), "its picture", fill="#555", font=font)
        draw.text((x + cell + 4, 24), _fit(draw, "nearest training emoji", font, cell - 8), fill="#555", font=font)
    for k, (prompt, results) in enumerate(rows):
        y = HEADER_H + k * (cell + CAPTION_H)
        draw.text((6, y + cell // 2 - 8), _fit(draw, f"“{prompt}”", bold, LABEL_W - 12), fill="black", font=bold)
        for x, r in zip(pair_x, results):
            img.paste(upscale(np.asarray(r["rgb"]), cell), (x, y))
            img.paste(upscale(np.asarray(r["nearest_rgb"]), cell), (x + cell, y))
            word = "copy" if r["copy"] else "new"
            draw.text((x + 4, y + cell + 4), f"{word}, RMS {r['nearest_rms']:.3f}", fill="black", font=font)
            draw.text((x + cell + 4, y + cell + 4), _fit(draw, r["nearest_name"], font, cell - 8),
                      fill="black", font=font)
    return img


def run_many(prompts: list[str], seed=0, steps=50, guidance=3.0) -> list[tuple[str, list[dict]]]:
    """(prompt, run(prompt)) per prompt; every prompt is checked before the first one is sampled."""
    if not prompts:
        raise InvalidInputError("Give at least one prompt.")
    checked = [check_inputs(p, seed, steps, guidance)[0] for p in prompts]
    return [(p, run(p, seed, steps, guidance)) for p in checked]


def check_out(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"Output must end in .png, got {path.name!r}.")
    return path


def write_sheet(rows: list[tuple[str, list[dict]]], path: str | Path) -> Path:
    path = check_out(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet(rows).save(path)
    return path
