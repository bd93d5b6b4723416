"""emoji-ldm's quality and speed figures (issue "Stable Diffusion in miniature").

For each group of captions (seeded, so every run asks the same), one sample per caption with 25
DPM-Solver++ steps and classifier-free guidance, read back by the adherence scorer (``scenes.adheres``):
    single objects                       goal: right object >= 85 %
    pairs seen together in training     goal: both right and in place >= 60 %
    held-out pairs (never seen together) goal: >= 50 %
    not a copy: the nearest training scene (all distinct scenes of the batches behind the UNet) further
                than the app's copy line (RMS 0.1 in [-1, 1]) >= 95 %; printed beside it, the same figure
                for a perfect model of the latest training data (each caption's scene drawn as the
                generator draws it, with that data's nudges and shades)
    speed: 25 DPM-Solver++ steps with CFG + the VAE decode of every captured x0, warm  goal <= 1.5 s
    VAE: reconstruction PSNR on the 64 held-out scenes of the model card           goal >= 26 dB

Usage: python bench/bench_emoji_ldm.py [--n 200] [--model-dir assets/emoji_ldm] [--grid samples.png]
       [--vae-grid vae.png] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_viz.memorize import COPY_RMS  # noqa: E402
from diffusion_viz.models.emoji_ldm import load_emoji_ldm, model_dir  # noqa: E402
from diffusion_viz.runtime import configure_torch_threads  # noqa: E402
from diffusion_viz.sampling import SampleSettings, sample  # noqa: E402
from diffusion_viz.scenes import adheres, render, scenes  # noqa: E402


def groups(n: int) -> dict[str, list]:
    """n captions per group, drawn from the generator with fixed seeds (never the training seeds)."""
    pool = scenes(20 * n, seed=31_337)
    single = [s for s in pool if len(s.objects) == 1][:n]
    pairs = [s for s in pool if len(s.objects) == 2][:n]
    return {"single": single, "seen pairs": pairs, "held-out pairs": scenes(n, seed=31_337, split="heldout")}


@torch.no_grad()
def generate(model, captions: list[str], steps: int, guidance: float, seed: int, batch: int) -> np.ndarray:
    """(N, 64, 64, 3) uint8, caption i from seed + i, through the diffusers pipeline (batched)."""
    pipe = model.pipe
    pipe.scheduler = model.make_scheduler("dpmpp_2m")
    out = []
    for start in range(0, len(captions), batch):
        chunk = captions[start:start + batch]
        gens = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        images = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                      height=64, width=64, output_type="np").images
        out.append(np.clip(np.round(images * 255), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def training_scenes(card: dict, steps: int | None = None) -> list:
    """The distinct scenes of every training stream behind the UNet (the model card's ``data``: its own
    batches, and those of the UNet it was fine-tuned or distilled from), at most ``steps`` batches each."""
    from diffusion_viz.training.ldm import stream_scenes, streams_of

    return list(dict.fromkeys(s for stream in streams_of(card) for s in stream_scenes(stream, steps)))


def perfect_drawings(wanted: list, card: dict, seed: int = 77) -> np.ndarray:
    """(N, 64, 64, 3) uint8: each scene as a perfect model of the UNet's latest training stream would draw
    its caption: the generator's own picture, nudged and shaded with that stream's variation (seeded)."""
    from diffusion_viz.scenes import Variation, vary
    from diffusion_viz.training.ldm import streams_of

    latest = streams_of(card)[0]
    variation = Variation(latest["nudge"], latest["centre_nudge"], latest["shade"])
    rng = np.random.default_rng(seed)
    return np.stack([render(vary(s, rng, variation)) for s in wanted])


def nearest_training_rms(samples: np.ndarray, train: list, chunk: int = 4096) -> np.ndarray:
    """RMS distance (pixels in [-1, 1]) from each sample to the nearest of the training scenes ``train``,
    rendered and compared a chunk at a time."""
    x = samples.reshape(len(samples), -1).astype(np.float32) / 127.5 - 1
    best = np.full(len(x), np.inf, np.float32)
    for start in range(0, len(train), chunk):
        t = np.stack([render(s) for s in train[start:start + chunk]]).reshape(-1, x.shape[1]).astype(np.float32)
        t = t / 127.5 - 1
        d2 = (x ** 2).sum(1)[:, None] + (t ** 2).sum(1)[None] - 2 * x @ t.T
        best = np.minimum(best, d2.min(1))
    return np.sqrt(np.maximum(best, 0) / x.shape[1])


def speed(model, guidance: float, repeats: int) -> dict[str, float]:
    """Median seconds of: sampling alone; sampling + every x0 decoded in one batch (the figure); and
    sampling + the x0 decoded one at a time (as "decode this step" does, step by step)."""
    settings = SampleSettings(prompt="a cat next to a rocket at night", steps=25, scheduler="dpmpp_2m",
                              guidance=guidance, seed=0)

    def run(decode):
        start = time.perf_counter()
        traj = sample(model, settings, scheduler=model.make_scheduler("dpmpp_2m"))
        if decode == "batch":
            model.decode_batch(np.stack([f.x0 for f in traj.frames]))
        elif decode == "single":
            for f in traj.frames:
                model.decode(f.x0)
        return time.perf_counter() - start

    run("batch")  # warm
    times = {mode: [] for mode in ("none", "batch", "single")}
    for _ in range(repeats):
        for mode in times:
            times[mode].append(run(mode))
    return {mode: statistics.median(t) for mode, t in times.items()}


def vae_figures(model, path: Path | None = None, shown: int = 8) -> tuple[float, float]:
    """PSNR (dB) of the shipped VAE on the 64 held-out scenes its model card reports (training.vae's; they
    chose between EMA and raw weights), and on 256 other held-out scenes that chose nothing; with
    ``path``, a picture: ``shown`` originals on top, their reconstructions below (4x, nearest neighbour)."""
    from PIL import Image

    from diffusion_viz.training.vae import heldout_batch, psnr

    vae = model.pipe.vae
    x = heldout_batch().to(vae.dtype)
    db = psnr(vae, x), psnr(vae, heldout_batch(256, seed=4_242).to(vae.dtype))
    if path is not None:
        with torch.no_grad():
            x_hat = vae.decode(vae.encode(x[:shown]).latent_dist.mean).sample.clamp(-1, 1)
        rows = [((t.permute(0, 2, 3, 1).float().numpy() + 1) * 127.5).round().astype(np.uint8) for t in (x[:shown], x_hat)]
        sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
        Image.fromarray(sheet).resize((sheet.shape[1] * 4, sheet.shape[0] * 4), Image.NEAREST).save(path)
    return db


def grid(samples: dict[str, np.ndarray], captions: dict[str, list[str]], path: Path, per_group: int = 8) -> None:
    """A sample grid: one row per group, the caption under each picture (4x, nearest neighbour)."""
    from PIL import Image, ImageDraw

    cell, text_h = 256, 44
    rows = list(samples)
    sheet = Image.new("RGB", (per_group * cell, len(rows) * (cell + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, name in enumerate(rows):
        for c in range(min(per_group, len(samples[name]))):
            pic = Image.fromarray(samples[name][c]).resize((cell, cell), Image.NEAREST)
            sheet.paste(pic, (c * cell, r * (cell + text_h)))
            draw.text((c * cell + 4, r * (cell + text_h) + cell + 4), captions[name][c][:40], fill="black")
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="captions per group")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's own")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=None,
                        help="training batches searched per stream for copies (default: all of the model card's data)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", default=None, help="write a sample grid PNG here")
    parser.add_argument("--vae-grid", default=None, help="write held-out scenes and their VAE round trips here")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    configure_torch_threads()
    model = load_emoji_ldm(str(args.model_dir or model_dir()))
    guidance = args.guidance if args.guidance is not None else model.defaults["guidance"]
    unet = model.pipe.unet.config
    print(f"emoji-ldm from {args.model_dir or model_dir()}: {args.steps} DPM-Solver++ steps, guidance {guidance}, "
          f"{args.n} captions per group, {torch.get_num_threads()} threads; UNet {unet.block_out_channels} channels, "
          f"{unet.layers_per_block} layer(s) per block; pictures decoded in "
          f"{'bfloat16' if model.display_vae is not None else 'float32'} (bfloat16 where this CPU computes it natively)")
    figures, all_samples, samples, captions = {}, [], {}, {}
    (figures["VAE PSNR, held-out scenes (dB)"],
     figures["VAE PSNR, 256 other held-out scenes (dB)"]) = vae_figures(model, Path(args.vae_grid) if args.vae_grid else None)
    print(f"  VAE round trip on the 64 held-out scenes of the model card: {figures['VAE PSNR, held-out scenes (dB)']:.2f}"
          f" dB (goal >= 26); on 256 other held-out scenes (chose nothing): "
          f"{figures['VAE PSNR, 256 other held-out scenes (dB)']:.2f} dB" + (f"; wrote {args.vae_grid}" if args.vae_grid else ""))
    for i, (name, group) in enumerate(groups(args.n).items()):
        start = time.perf_counter()
        caps = [s.caption for s in group]
        pics = generate(model, caps, args.steps, guidance, seed=1000 * i, batch=args.batch)
        ok = [adheres(p, s) for p, s in zip(pics, group)]
        figures[name] = 100 * float(np.mean(ok))
        samples[name], captions[name] = pics, caps
        all_samples.append(pics)
        print(f"  {name:16s} adherence {figures[name]:5.1f} %  ({sum(ok)}/{len(ok)}, {time.perf_counter() - start:.0f} s)")
    card = json.loads((Path(args.model_dir or model_dir()) / "ldm.json").read_text())
    train = training_scenes(card, args.train_steps)
    rms = nearest_training_rms(np.concatenate(all_samples), train)
    # the reference: a perfect model of the UNet's latest training data, which draws every caption's scene
    # as the generator does, with that data's variation (none: the caption's one exact picture)
    perfect = nearest_training_rms(perfect_drawings([s for g in groups(args.n).values() for s in g], card), train)
    figures["training scenes searched"] = len(train)
    figures["not a copy"] = 100 * float(np.mean(rms >= COPY_RMS))
    figures["not a copy, perfect drawing of each caption"] = 100 * float(np.mean(perfect >= COPY_RMS))
    figures["nearest training scene RMS, median"] = float(np.median(rms))
    print(f"  not a copy of the {len(train):,} distinct training scenes (every batch behind the UNet; RMS >= "
          f"{COPY_RMS}): {figures['not a copy']:.1f} %  (median nearest RMS {np.median(rms):.3f}); a perfect model, "
          f"drawing each caption's scene as its latest training data does: "
          f"{figures['not a copy, perfect drawing of each caption']:.1f} %")
    # per group: without variation a single-object caption names one of 848 scenes (106 words x 2 sizes x
    # 4 backgrounds), all of them in training, so a model that follows it exactly draws a training scene;
    # so does a seen pair whose exact scene (objects, places, background) was in one of the batches
    at = 0
    for name in samples:
        part, ref = rms[at:at + len(samples[name])], perfect[at:at + len(samples[name])]
        at += len(part)
        figures[f"not a copy, {name}"] = 100 * float(np.mean(part >= COPY_RMS))
        figures[f"not a copy, {name}, perfect drawing"] = 100 * float(np.mean(ref >= COPY_RMS))
        print(f"    {name:16s} not a copy {figures[f'not a copy, {name}']:5.1f} %  (median nearest RMS "
              f"{np.median(part):.3f}); perfect drawing {figures[f'not a copy, {name}, perfect drawing']:5.1f} %")
    secs = speed(model, guidance, args.repeats)
    figures["seconds, 25 steps + CFG + decode of every x0"] = secs["batch"]
    figures["seconds, 25 steps + CFG, no decode"] = secs["none"]
    figures["seconds, 25 steps + CFG + 25 single decodes"] = secs["single"]
    print(f"  speed: 25 DPM-Solver++ steps with CFG + VAE decode of all 25 x0 (one batch): {secs['batch']:.2f} s; "
          f"sampling alone {secs['none']:.2f} s; with 25 single decodes {secs['single']:.2f} s "
          f"(medians of {args.repeats})")
    if args.grid:
        grid(samples, captions, Path(args.grid))
        print(f"  wrote {args.grid}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
