"""The player's payload: bytes per run, and the server's time per /generate beyond the sampling itself.

    DIFFUSION_VIZ_THREADS=1 python bench/bench_payload.py [--runs 10]

Bytes: the JSON the player (and an API client) receives for a finished run (ui/atlas.py's strips), for
the default 50-step run at 64 px, an unconditional run, an ancestral sampler (fresh noise each step),
and a tiny random Stable Diffusion with a 64x64 latent (SD 1.5's preview size). Time: the Denoise
handler from click to finished payload (cache off, a new seed each run), minus the same run's sampling
alone; the same for the player's route /dv/run (all its lines); medians over --runs. Goals (issue 15): <= 300 KB at 64 px, <= 400 KB for the SD-size run,
<= 40 ms beyond sampling.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def payload_kb(model, settings, scheduler=None) -> float:
    from diffusion_viz.sampling import sample
    from diffusion_viz.ui import logic
    from diffusion_viz.ui.player import to_value

    traj = sample(model, settings, scheduler=scheduler)
    to_rgb, _ = logic.display_functions(model)
    col = logic.player_column(logic.thin_frames(traj.frames), model, final=logic.png_data_uri(to_rgb(traj.final)))
    return len(to_value(logic.player_payload([col])).encode()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from diffusion_viz.models.registry import get_model
    from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser, scheduler_for
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.sampling import SampleSettings, sample
    from diffusion_viz.ui import denoise_tab
    from diffusion_viz.ui.cache import RESULTS

    configure_torch_threads()
    exact = get_model("emoji-exact")
    print("payload of a finished run (JSON the browser receives):")
    for label, s in [("50 steps DDIM, 'cat', 64 px (default)", SampleSettings(prompt="cat", steps=50)),
                     ("50 steps DDIM, no prompt, 64 px", SampleSettings(prompt="", steps=50)),
                     ("50 steps Euler ancestral, 'cat', 64 px", SampleSettings(prompt="cat", steps=50,
                                                                             scheduler="euler_a")),
                     ("200 steps DDIM, 'cat', 64 px", SampleSettings(prompt="cat", steps=200))]:
        print(f"  {label:44s} {payload_kb(exact, s):7.0f} KB")
    sd = StableDiffusionDenoiser(tiny_sd_pipeline(sample_size=64))
    s = SampleSettings(prompt="a red cat", steps=50, guidance=7.5, schedule="scaled_linear")
    print(f"  {'tiny random SD, 4x64x64 latent, 50 steps':44s} {payload_kb(sd, s, scheduler_for(sd, 'ddim')):7.0f} KB")

    RESULTS.max_bytes = 0  # every run computed
    total, sampling = [], []
    list(denoise_tab.generate("cat", 50, 999, 1.0, "ddim", "cosine", "emoji-exact"))  # warm
    for k in range(args.runs):
        seed = 1000 + k
        t0 = time.perf_counter()
        out = list(denoise_tab.generate("cat", 50, seed, 1.0, "ddim", "cosine", "emoji-exact"))
        t1 = time.perf_counter()
        sample(exact, SampleSettings(prompt="cat", steps=50, seed=seed))
        t2 = time.perf_counter()
        assert out[-1][4].startswith("Done")
        total.append(t1 - t0)
        sampling.append(t2 - t1)
    beyond = [a - b for a, b in zip(total, sampling)]
    print(f"/generate handler, 50 steps, 64 px: {1000 * statistics.median(total):.0f} ms; sampling alone "
          f"{1000 * statistics.median(sampling):.0f} ms; beyond sampling {1000 * statistics.median(beyond):.0f} ms "
          f"(median of {args.runs}; best {1000 * min(beyond):.0f} ms; goal <= 40 ms); beyond / sampling "
          f"{statistics.median(beyond) / statistics.median(sampling):.2f} (a ratio: this machine's speed varies)")

    # The page's player takes its frames from its own route (ui/run_route.py, lean=1 as the page asks):
    # every line it sends, the first picture streamed on its own, and its time beyond sampling (cache off).
    from diffusion_viz.ui.run_route import player_lines

    total, sizes = [], []
    for k in range(args.runs):
        seed = 1000 + k
        t0 = time.perf_counter()
        lines = list(player_lines({"prompt": "cat", "steps": "50", "seed": str(seed), "lean": "1"}))
        total.append(time.perf_counter() - t0)
        sizes.append(sum(len(line.encode()) + 1 for line in lines))
    beyond = [a - b for a, b in zip(total, sampling)]
    print(f"player route /dv/run, 50 steps, 64 px: {statistics.median(sizes) / 1024:.0f} KB in all its lines; "
          f"{1000 * statistics.median(total):.0f} ms; beyond sampling {1000 * statistics.median(beyond):.0f} ms "
          f"(median of {args.runs}; goal <= 40 ms)")


if __name__ == "__main__":
    main()
