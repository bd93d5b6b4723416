"""Every combination a user can pick, through the library loop: sampler x schedule x Karras x zero-SNR.

Each run must end, have the planned number of frames, record the noise level the scheduler really used
(the same number the plots show), and finish on a clean picture. With the exact denoiser a faithful
sampler ends on one training emoji; a multistep sampler with too few steps may end on a blend (that is the
sampler's error, not the denoiser's), so those are checked with more steps.
"""

import itertools
import math

import numpy as np
import pytest

from diffusion_viz.data import nearest_emoji
from diffusion_viz.errors import UnsupportedOptionError
from diffusion_viz.sampling import (
    SCHEDULERS,
    SampleSettings,
    karras_schedulers,
    make_scheduler,
    planned_frame_count,
    sample,
    start_scheduler,
)
from diffusion_viz.schedules import SCHEDULES, get_schedule, karras_sigmas

KARRAS = set(karras_schedulers())
COMBOS = [(sampler, schedule, karras, zero_snr)
          for sampler, schedule in itertools.product(SCHEDULERS, SCHEDULES)
          for karras in ((False, True) if sampler in KARRAS else (False,))
          for zero_snr in (False, True)]
STEPS = 4
# Multistep samplers extrapolate from earlier noise estimates: with 4 steps they end between emoji
# (PNDM 0.15-0.34 RMS from the nearest one). They are checked at the steps where they settle.
STEPS_TO_SETTLE = {"pndm": 50, "lms": 10}


def test_the_matrix_covers_every_option_the_cli_and_app_offer():
    assert len(COMBOS) == len(SCHEDULERS) * len(SCHEDULES) * 2 + len(KARRAS) * len(SCHEDULES) * 2
    assert KARRAS == {"euler", "heun", "lms", "dpmpp_2m", "unipc"}


@pytest.mark.parametrize("sampler", sorted(set(SCHEDULERS) - KARRAS))
def test_karras_on_a_sampler_without_it_is_a_clear_refusal(emoji_model_32, sampler):
    with pytest.raises(UnsupportedOptionError, match="Karras"):
        sample(emoji_model_32, SampleSettings(prompt="cat", steps=2, scheduler=sampler, karras=True))


@pytest.mark.parametrize("sampler, schedule, karras, zero_snr", COMBOS)
def test_every_combination_runs_and_records_the_schedulers_noise_levels(emoji_model_32, sampler, schedule, karras,
                                                                        zero_snr):
    sched = get_schedule(schedule, zero_terminal_snr=zero_snr)
    for prompt in ("cat", ""):
        settings = SampleSettings(prompt=prompt, steps=STEPS, scheduler=sampler, schedule=schedule, karras=karras,
                                  zero_terminal_snr=zero_snr)
        traj = sample(emoji_model_32, settings)
        frames = traj.frames
        assert len(frames) == planned_frame_count(sampler, STEPS)
        assert traj.final is not None and traj.final.shape == (3, 32, 32) and np.isfinite(traj.final).all()

        ab = np.array([f.alpha_bar for f in frames])
        # Sampling starts at the schedule's noisiest training step (trailing spacing), Karras or not:
        # the first frame's alpha_bar is the one the plots show for t = T-1.
        assert frames[0].timestep == 999
        assert ab[0] == pytest.approx(sched.alphas_cumprod[-1], rel=5e-3)
        assert np.all(np.diff(ab) >= 0)  # noise only goes down (Heun repeats a level)
        for f in frames:
            # every number the player and the API show, from the alpha_bar the scheduler used
            assert f.sigma == pytest.approx(math.sqrt((1 - f.alpha_bar) / f.alpha_bar))
            assert f.snr == pytest.approx(f.alpha_bar / (1 - f.alpha_bar))
            assert f.log_snr == pytest.approx(math.log(f.alpha_bar / (1 - f.alpha_bar)))
            # where that level lies in training steps, on the same schedule the plots draw
            assert sched.alpha_bar(f.level) == pytest.approx(f.alpha_bar, rel=5e-3)
            if not karras:  # training steps exactly: level = the integer timestep
                assert f.level == pytest.approx(f.timestep, abs=1e-3)
                assert f.alpha_bar == pytest.approx(sched.alphas_cumprod[int(f.timestep)], rel=5e-3)
        if karras and sampler != "heun":  # Karras et al. eq. 5, from the schedule's own sigma range
            # diffusers takes sigma_min from the least noisy *spaced* timestep in Euler/LMS (T/N - 1 with
            # trailing spacing) and from the first training step in DPM-Solver++/UniPC.
            lo = sched.sigmas[0] if sampler in ("dpmpp_2m", "unipc") else sched.sigmas[1000 // STEPS - 1]
            hi = sched.sigmas[-1]
            np.testing.assert_allclose([f.sigma for f in frames], karras_sigmas(lo, hi, STEPS), rtol=3e-3)

        # the scheduler ends on the clean picture: sigma 0, or alpha_bar 1 for DDIM/PNDM/DDPM
        end = start_scheduler(make_scheduler(sampler, sched, karras=karras), STEPS)
        if hasattr(end, "sigmas"):
            assert float(end.sigmas[-1]) == 0.0
        elif hasattr(end, "final_alpha_cumprod"):
            assert float(end.final_alpha_cumprod) == 1.0

        if sampler not in STEPS_TO_SETTLE:
            assert nearest_emoji(traj.final).rms < 0.02, "a faithful sampler ends on one training emoji"


@pytest.mark.parametrize("sampler, schedule, karras, zero_snr",
                         [c for c in COMBOS if c[0] in STEPS_TO_SETTLE])
def test_multistep_samplers_end_on_a_training_emoji_with_enough_steps(emoji_model_32, sampler, schedule, karras,
                                                                      zero_snr):
    settings = SampleSettings(prompt="cat", steps=STEPS_TO_SETTLE[sampler], scheduler=sampler, schedule=schedule,
                              karras=karras, zero_terminal_snr=zero_snr)
    assert nearest_emoji(sample(emoji_model_32, settings).final).rms < 0.02


def test_pndm_few_steps_ends_on_a_blend_not_a_crash(emoji_model_32):
    """The lesson behind STEPS_TO_SETTLE: the denoiser is exact, the 4-step multistep sampler is not."""
    settings = SampleSettings(prompt="", steps=4, scheduler="pndm", schedule="linear")
    assert nearest_emoji(sample(emoji_model_32, settings).final).rms > 0.1


def test_pndm_laplace_ends_on_the_clean_emoji(emoji_model):
    """Issue: PNDM stopped at the first training step's alpha_bar (0.957 for laplace), 0.185 RMS of noise."""
    settings = SampleSettings(prompt="cat", steps=50, scheduler="pndm", schedule="laplace")
    traj = sample(emoji_model, settings)
    assert nearest_emoji(traj.final).rms < 0.02
    assert traj.frames[-1].alpha_bar == pytest.approx(get_schedule("laplace").alphas_cumprod[19], rel=1e-3)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "unipc"])
@pytest.mark.parametrize("schedule, zero_snr", [("cosine", False), ("sigmoid", False), ("laplace", False),
                                                 ("scaled_linear", True)])
def test_karras_with_repeated_timesteps_starts_at_the_first_level(emoji_model_32, sampler, schedule, zero_snr):
    """Issue: Karras levels near the top round to 999, 999, 998...; diffusers' lookup picked the second 999,
    started one step late and crashed (IndexError / AssertionError). 50 steps, as a user would."""
    sched = get_schedule(schedule, zero_terminal_snr=zero_snr)
    settings = SampleSettings(prompt="cat", steps=50, scheduler=sampler, schedule=schedule, karras=True,
                              zero_terminal_snr=zero_snr)
    traj = sample(emoji_model_32, settings)
    ts = [f.timestep for f in traj.frames]
    assert len(ts) == 50 and ts[:2] == [999.0, 999.0]  # the rounded timesteps do repeat
    assert traj.frames[0].alpha_bar == pytest.approx(sched.alphas_cumprod[-1], rel=5e-3)
    assert traj.frames[1].level < 999 and traj.frames[1].alpha_bar > traj.frames[0].alpha_bar
    assert nearest_emoji(traj.final).rms < 0.02
