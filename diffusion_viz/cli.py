"""The ``diffusion-viz`` command: render a denoising run to a GIF, MP4 or PNG contact sheet; put the
exact denoiser next to the trained UNet (``memorize``); the experiments (``round-trip``, ``when-decided``,
``seed-grid``) as a PNG sheet or GIF; train the UNet."""

from __future__ import annotations

import argparse
import sys

from .errors import DiffusionVizError
from .schedules import SCHEDULES
from .sampling import SCHEDULERS
from .models.registry import DEFAULT_MODEL, MODELS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-viz",
        description="Watch a diffusion model turn pure noise into a picture, step by step.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "render",
        help="sample once and write the trajectory to a file",
        description="Sample once and write every step to a GIF/MP4 (x_t next to the predicted clean "
        "image) or a PNG contact sheet (x_t row on top, predicted x0 row below).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument("--prompt", default="", help="what to draw; empty = unconditional (any emoji)")
    r.add_argument("--steps", type=int, default=None,
                   help="number of sampling steps, 1..1000; default: the model's own (50 for the emoji models)")
    r.add_argument("--scheduler", default=None, choices=list(SCHEDULERS),
                   help="the sampler that turns predictions into the next x_t; default: the model's own "
                        "(ddim for the emoji models)")
    r.add_argument("--schedule", default=None, choices=list(SCHEDULES),
                   help="noise schedule (how fast signal is destroyed); default: the model's own")
    r.add_argument("--karras", action="store_true", help="Karras (rho=7) spacing of noise levels")
    r.add_argument("--zero-terminal-snr", action="store_true",
                   help="rescale the schedule so the last step is pure noise (Lin et al. 2024)")
    r.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale, 0..30; 1 = plain conditional; default: the model's "
                        "own (1 for the emoji models, 4 for emoji-ldm, the preset's for Stable Diffusion)")
    r.add_argument("--seed", type=int, default=0, help="random seed, 0..2^63-1: same seed, same picture")
    r.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"which denoiser: {', '.join(MODELS)}; or a Stable Diffusion folder / .safetensors "
                        "file (the env var DIFFUSION_VIZ_MODEL sets the app's)")
    r.add_argument("--out", default="diffusion.gif", help="output file: .gif, .mp4 or .png")
    r.add_argument("--fps", type=int, default=12, help="frames per second for GIF/MP4")
    m = sub.add_parser(
        "memorize",
        help="memorize vs generalize: the exact denoiser next to the trained UNet, as a PNG",
        description="Same prompt, seed and sampler for the exact emoji denoiser (it can only give back "
        "training emoji) and the small trained UNet (it makes new, blurry mixes). Writes one PNG, a row per "
        "prompt: exact sample | its nearest training emoji | UNet sample | its nearest training emoji.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from .memorize import SHEET_PROMPTS

    m.add_argument("prompts", nargs="*", default=SHEET_PROMPTS, help="one or more prompts, e.g. \"cat face\" rocket")
    m.add_argument("--seed", type=int, default=0, help="random seed: same seed, same static for both models")
    m.add_argument("--steps", type=int, default=50, help="DDIM steps, 1..200")
    m.add_argument("--guidance", type=float, default=3.0,
                   help="classifier-free guidance for the UNet (the exact model needs none)")
    m.add_argument("--out", default="memorize_vs_generalize.png", help="output PNG")
    d = sub.add_parser(
        "download",
        help="download a Stable Diffusion preset once, so the app can offer it offline",
        description="Download a Stable Diffusion checkpoint (a preset such as sd15, or a hub id allowed by "
        "DIFFUSION_VIZ_ALLOW_ANY_MODEL) into the Hugging Face cache. The app never downloads on a student's "
        "click unless DIFFUSION_VIZ_ALLOW_DOWNLOADS=1; offer it with DIFFUSION_VIZ_MODELS=sd15.",
    )
    d.add_argument("checkpoint", help="preset name (sd15, sd21, sdxl, sd-turbo, sdxl-turbo) or hub id")
    def run_options(p, prompt="", out="experiment.png"):
        p.add_argument("--prompt", default=prompt, help="what to draw; empty = unconditional")
        p.add_argument("--steps", type=int, default=50, help="number of sampling steps")
        p.add_argument("--scheduler", default="ddim", choices=list(SCHEDULERS), help="the sampler")
        p.add_argument("--schedule", default="cosine", choices=list(SCHEDULES), help="noise schedule")
        p.add_argument("--seed", type=int, default=0, help="random seed")
        p.add_argument("--model", default=DEFAULT_MODEL, help=f"which denoiser: {', '.join(MODELS)}")
        p.add_argument("--out", default=out, help="output file: .png (a sheet) or .gif (all columns, step by step)")

    rt = sub.add_parser(
        "round-trip", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="noise a photo to several levels, then denoise each from there (SDEdit)",
        description="Noise a photo (or a training emoji) in one jump to each level t with the forward formula "
        "(the seed draws the noise), then let the model denoise from there. One column per level.")
    rt.add_argument("--photo", default=None, help="a photo file (default: the bundled example photo)")
    rt.add_argument("--emoji", default=None, help="start from this training emoji instead, e.g. cat")
    rt.add_argument("--levels", default="200,400,600,800,999", help="comma-separated timesteps, 0..999")
    run_options(rt, out="round_trip.png")
    wd = sub.add_parser(
        "when-decided", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="switch the prompt (or the noise) part-way through a run: when is the picture decided?",
        description="Same seed: prompt A for the first k steps, prompt B after (--mode switch), or prompt A "
        "throughout with fresh noise from another seed after step k (--mode reseed; ddpm or euler_a).")
    wd.add_argument("--prompt-b", default="rocket", help="the prompt after the switch")
    wd.add_argument("--mode", default="switch", choices=["switch", "reseed"])
    wd.add_argument("--fractions", default="0,0.1,0.25,0.5,0.75,1", help="where to switch, as fractions of the run")
    run_options(wd, prompt="cat", out="when_decided.png")
    sg = sub.add_parser(
        "seed-grid", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="one prompt from several seeds, side by side",
        description="The same prompt from up to 8 seeds; for the exact emoji model, how often the prior's "
        "favourite wins.")
    sg.add_argument("--count", type=int, default=8, help="how many seeds, from --seed on (1..8)")
    run_options(sg, prompt="animal", out="seed_grid.png")
    scn = sub.add_parser(
        "scenes", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="generate captioned emoji scenes (the miniature latent model's data) as a PNG grid",
        description="One or two emoji at named places and sizes on a named background, with a caption; "
        "seeded, so the same seed gives the same scenes. --split heldout gives the object pairs never "
        "used in training. Prints one caption per scene, in grid order (rows, left to right).")
    scn.add_argument("--count", type=int, default=16, help="how many scenes (1..1024)")
    scn.add_argument("--seed", type=int, default=0, help="random seed")
    scn.add_argument("--split", default="train", choices=["train", "heldout"])
    scn.add_argument("--nudge", type=int, default=0,
                     help="move each of a pair's objects up to this many pixels from its slot (0..3)")
    scn.add_argument("--centre-nudge", type=int, default=0, help="move a lone object up to this many pixels (0..6)")
    scn.add_argument("--shade", type=int, default=0, help="shift the background colour up to this many levels")
    scn.add_argument("--out", default="scenes.png", help="output PNG (a grid, 4x upscaled)")
    tr = sub.add_parser(
        "train",
        help="train (or resume, or export) the tiny emoji UNet",
        description="Train the text-conditioned emoji UNet from a JSON config; resumes from the run "
        "folder's checkpoint. --export writes its EMA weights for the app.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from .training.unet import add_arguments

    add_arguments(tr)
    from .training import ldm, vae

    for name, stage, what in (("train-vae", vae, "stage 1: the VAE (pictures <-> 16x16x4 latents)"),
                              ("train-ldm", ldm, "stage 2: the latent UNet, on the exported VAE's latents")):
        sp = sub.add_parser(name, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                            help=f"train emoji-ldm, {what}",
                            description=f"Train (or resume) emoji-ldm, {what}, on generated captioned scenes; "
                            "resumes from the run folder's checkpoint; --export writes the EMA weights.")
        stage.add_arguments(sp)
    return parser


def render(args) -> str:
    from PIL import Image
    from tqdm import tqdm

    from .models.registry import get_model
    from .render import image_to_rgb, write_output
    from .runtime import configure_torch_threads
    from .sampling import Frame, SampleSettings, Trajectory, iter_frames, planned_frame_count

    configure_torch_threads()
    model = get_model(args.model)
    info = MODELS.get(args.model)
    own = {"steps": 50, "scheduler": "ddim", "guidance": 1.0, **getattr(model, "defaults", {})}
    pick = lambda key: own[key] if getattr(args, key) is None else getattr(args, key)  # noqa: E731
    settings = SampleSettings(
        prompt=args.prompt, steps=pick("steps"), scheduler=pick("scheduler"),
        schedule=args.schedule or (info.default_schedule if info else "scaled_linear"), guidance=pick("guidance"),
        seed=args.seed, karras=args.karras, zero_terminal_snr=args.zero_terminal_snr,
    ).validated()
    count = getattr(model, "planned_frame_count", planned_frame_count)

    frames, final = [], None
    with tqdm(total=count(settings.scheduler, settings.steps), desc="denoising", unit="step",
              file=sys.stderr) as bar:
        for item in iter_frames(model, settings):
            if isinstance(item, Frame):
                frames.append(item)
                bar.update(1)
            else:
                final = item
    to_rgb = getattr(model, "to_rgb", image_to_rgb)  # latent models: a cheap linear preview
    # latent models: the finished picture is the VAE's decode of the last latent (as in the app), in the
    # animation's last frame and beside it as a PNG
    final_rgb = model.decode(final) if hasattr(model, "decode") and final is not None else None
    path = write_output(Trajectory(frames, final, settings.__dict__), args.out, to_rgb=to_rgb, fps=args.fps,
                        final_rgb=final_rgb)
    if final_rgb is not None:
        final_path = path.with_name(path.stem + "-final.png")
        Image.fromarray(final_rgb).save(final_path)
        print(f"wrote {final_path}")
    return str(path)


def memorize(args) -> str:
    from .memorize import check_out, run_many, write_sheet
    from .runtime import configure_torch_threads

    check_out(args.out)  # before the sampling, not after it
    configure_torch_threads()
    rows = run_many(args.prompts, seed=args.seed, steps=args.steps, guidance=args.guidance)
    for prompt, results in rows:
        for r in results:
            print(f"{prompt!r}, {r['model']}: nearest {r['nearest']} (RMS {r['nearest_rms']:.3f}): "
                  f"{'a copy' if r['copy'] else 'new picture'}")
    return str(write_sheet(rows, args.out))


def _numbers(text: str, kind, what: str) -> list:
    from .errors import InvalidInputError

    try:
        return [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError as e:
        raise InvalidInputError(f"{what} is a comma-separated list of numbers, got {text!r}.") from e


def experiment(args) -> str:
    """round-trip, when-decided, seed-grid: run the columns, print what each ends on, write the file."""
    from pathlib import Path

    from .data import nearest_emoji
    from .errors import InvalidInputError
    from .images import load_image
    from .models.registry import get_model
    from .render import image_to_rgb, write_columns
    from .runtime import configure_torch_threads
    from .sampling import SampleSettings

    if Path(args.out).suffix.lower() not in (".png", ".gif"):
        raise InvalidInputError(f"Output must end in .png or .gif, got {args.out!r}.")
    configure_torch_threads()
    model = get_model(args.model)
    settings = SampleSettings(prompt=args.prompt, steps=args.steps, scheduler=args.scheduler, schedule=args.schedule,
                              seed=args.seed).validated()
    align = "fraction"
    if args.command == "round-trip":
        from .round_trip import round_trip, training_emoji

        if args.emoji:
            rgb = training_emoji(model, args.emoji)
        else:
            photo = args.photo or str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "landscape.png")
            rgb = load_image(photo)
        rt = round_trip(model, rgb, settings, _numbers(args.levels, int, "--levels"))
        runs, align = rt.runs, "step"
        titles = [f"t={s.timestep:g} abar={s.alpha_bar:.3g} ({100 * s.alpha_bar:.3g} % power) skips {s.step}"
                  for s in rt.starts]
    elif args.command == "when-decided":
        from .when_decided import when_decided

        ks, runs = when_decided(model, settings, args.prompt_b, _numbers(args.fractions, float, "--fractions"),
                                args.mode)
        what = f"then {args.prompt_b!r}" if args.mode == "switch" else "then new noise"
        titles = [f"{args.prompt!r} for {k} steps, {what}" for k in ks]
    else:
        from .seed_grid import seed_grid, tally

        from .validation import check_int

        seeds = [settings.seed + i for i in range(max(0, check_int("--count", args.count)))]
        runs = seed_grid(model, settings, seeds)
        t = tally(model, settings.prompt, runs)
        titles = [f"seed {s}" for s in seeds]
        if t and "favourite" in t:
            print(f"prior: {t['favourite']} {100 * t['prior']:.0f} %; it won {t['wins']} of {len(seeds)} seeds")
    for title, run in zip(titles, runs):
        near = nearest_emoji(run.final)
        print(f"{title}: " + (f"nearest training emoji {near.name} (RMS {near.rms:.3f})" if near else "done"))
    to_rgb = getattr(model, "to_rgb", image_to_rgb)
    return str(write_columns(runs, titles, args.out, to_rgb=to_rgb, align=align))


def scenes(args) -> str:
    """Write a grid of generated scenes; print their captions."""
    import math
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from .errors import InvalidInputError
    from .scenes import Variation, render, scenes as make_scenes
    from .validation import check_int

    count = check_int("--count", args.count)
    if not 1 <= count <= 1024:
        raise InvalidInputError(f"--count is 1..1024, got {count}.")
    if Path(args.out).suffix.lower() != ".png":
        raise InvalidInputError(f"Output must end in .png, got {args.out!r}.")
    variation = Variation(check_int("--nudge", args.nudge), check_int("--centre-nudge", args.centre_nudge),
                          check_int("--shade", args.shade))
    items = make_scenes(count, seed=args.seed, split=args.split, variation=variation)
    cols = min(8, count)
    rows = math.ceil(count / cols)
    grid = np.full((rows * 64, cols * 64, 3), 255, np.uint8)
    for k, scene in enumerate(items):
        r, c = divmod(k, cols)
        grid[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = render(scene)
        print(scene.caption)
    Image.fromarray(grid).resize((cols * 256, rows * 256), Image.NEAREST).save(args.out)
    return args.out


def download(args) -> str:
    """Fetch a Stable Diffusion preset (or hub id / folder) into the local Hugging Face cache, so the app
    can offer it without downloading on a student's click."""
    from .models.sd_loading import download_checkpoint

    return f"{args.checkpoint} is on disk: {download_checkpoint(args.checkpoint)}"


def main(argv: list[str] | None = None) -> int:
    import os

    # The command line is the user's own request: it may download a checkpoint it is asked to use.
    os.environ.setdefault("DIFFUSION_VIZ_ALLOW_DOWNLOADS", "1")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "download":
            print(download(args))
        elif args.command == "render":
            print(f"wrote {render(args)}")
        elif args.command == "train":
            from .training.unet import run

            return run(args)
        elif args.command in ("train-vae", "train-ldm"):
            from .training import ldm, vae

            return (vae if args.command == "train-vae" else ldm).run(args)
        elif args.command == "memorize":
            print(f"wrote {memorize(args)}")
        elif args.command == "scenes":
            print(f"wrote {scenes(args)}")
        elif args.command in ("round-trip", "when-decided", "seed-grid"):
            print(f"wrote {experiment(args)}")
    except DiffusionVizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
