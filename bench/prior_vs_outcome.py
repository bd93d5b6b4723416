"""How often does a run end on the prior's favourite? The exact denoiser is exact; the sampler is not.

Prompt "animal": the prior puts 0.71 on the dog. Over 300 seeds (0..299), count the runs that end on the
dog for a few sampler settings. Prints the shares quoted in the README. ~1 minute on 2 cores.

    python bench/prior_vs_outcome.py [--seeds 300]
"""

from __future__ import annotations

import argparse

from diffusion_viz.data import nearest_emoji
from diffusion_viz.models.emoji_exact import exact_emoji_model
from diffusion_viz.runtime import configure_torch_threads
from diffusion_viz.sampling import SampleSettings, sample

SETTINGS = [("ddim", 5, "cosine"), ("ddim", 50, "cosine"), ("ddim", 50, "scaled_linear")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--prompt", default="animal")
    args = parser.parse_args()
    configure_torch_threads()
    model = exact_emoji_model(64)
    favourite, prior = model.top_matches(args.prompt, 1)[0]
    print(f"prompt {args.prompt!r}: prior favourite {favourite} with prior {prior:.2f}")
    name = favourite.split(" ", 1)[1]
    for sampler, steps, schedule in SETTINGS:
        hits = sum(nearest_emoji(sample(model, SampleSettings(prompt=args.prompt, steps=steps, scheduler=sampler,
                                                                schedule=schedule, seed=seed),
                                        capture=False).final).name == name
                   for seed in range(args.seeds))
        print(f"{sampler} {steps} steps, {schedule}: {hits}/{args.seeds} = {100 * hits / args.seeds:.1f} % end on it")


if __name__ == "__main__":
    main()
