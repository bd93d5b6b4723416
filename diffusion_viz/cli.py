"""The ``diffusion-viz`` command: render a denoising run to a GIF, MP4 or PNG contact sheet; put the
exact denoiser next to the trained UNet (``memorize``); train the UNet."""

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
    r.add_argument("--steps", type=int, default=50, help="number of sampling steps, 1..1000")
    r.add_argument("--scheduler", default="ddim", choices=list(SCHEDULERS),
                   help="the sampler that turns predictions into the next x_t")
    r.add_argument("--schedule", default=None, choices=list(SCHEDULES),
                   help="noise schedule (how fast signal is destroyed); default: the model's own")
    r.add_argument("--karras", action="store_true", help="Karras (rho=7) spacing of noise levels")
    r.add_argument("--zero-terminal-snr", action="store_true",
                   help="rescale the schedule so the last step is pure noise (Lin et al. 2024)")
    r.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale, 0..30; 1 = plain conditional")
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
    tr = sub.add_parser(
        "train",
        help="train (or resume, or export) the tiny emoji UNet",
        description="Train the text-conditioned emoji UNet from a JSON config; resumes from the run "
        "folder's checkpoint. --export writes its EMA weights for the app.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from .train import add_arguments

    add_arguments(tr)
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
    settings = SampleSettings(
        prompt=args.prompt, steps=args.steps, scheduler=args.scheduler,
        schedule=args.schedule or (info.default_schedule if info else "scaled_linear"), guidance=args.guidance,
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
    path = write_output(Trajectory(frames, final, settings.__dict__), args.out, to_rgb=to_rgb, fps=args.fps)
    if hasattr(model, "decode"):  # latent models: the full VAE decode of the finished latent, beside it
        final_path = path.with_name(path.stem + "-final.png")
        Image.fromarray(model.decode(final)).save(final_path)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            print(f"wrote {render(args)}")
        elif args.command == "train":
            from .train import run

            return run(args)
        elif args.command == "memorize":
            print(f"wrote {memorize(args)}")
    except DiffusionVizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
