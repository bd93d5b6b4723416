"""Schedules against independent formulas, the reference numbers and diffusers' own implementations."""

import math

import numpy as np
import pytest
import torch
from diffusers.schedulers.scheduling_ddpm import betas_for_alpha_bar, rescale_zero_terminal_snr

from diffusion_viz.errors import UnknownNameError
from diffusion_viz.sampling import SCHEDULERS, make_scheduler
from diffusion_viz.schedules import MAX_BETA, SCHEDULES, get_schedule, karras_sigmas

T = 1000


def zero_crossing(schedule):
    return int(np.argmax(schedule.log_snr < 0))


@pytest.mark.parametrize(
    "name, abar_last, crossing, share_below_1pct",
    [("linear", 4.04e-5, 259, 0.33), ("scaled_linear", 4.66e-3, 354, 0.07), ("cosine", 2.4e-9, 496, 0.07)],
)
def test_reference_numbers(name, abar_last, crossing, share_below_1pct):
    s = get_schedule(name)
    assert s.alphas_cumprod[-1] == pytest.approx(abar_last, rel=0.02)
    assert abs(zero_crossing(s) - crossing) <= 1
    assert np.mean(s.alphas_cumprod < 0.01) == pytest.approx(share_below_1pct, abs=0.01)


def test_linear_and_scaled_linear_match_closed_forms():
    lin = get_schedule("linear")
    abar = 1.0
    for t in range(T):  # a plain loop, independent of numpy's cumprod
        abar *= 1 - (1e-4 + (0.02 - 1e-4) * t / (T - 1))
    assert lin.alphas_cumprod[-1] == pytest.approx(abar, rel=1e-10)
    sl = get_schedule("scaled_linear")
    mid = (math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * 500 / (T - 1)) ** 2
    assert sl.betas[500] == pytest.approx(mid, rel=1e-12)
    assert math.sqrt(sl.alphas_cumprod[-1]) == pytest.approx(0.068, abs=5e-4)  # SD never reaches pure noise


def test_cosine_matches_nichol_dhariwal_and_diffusers():
    s = get_schedule("cosine")
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):  # unclipped region: alpha_bar_t = f((t+1)/T) / f(0)
        assert s.alphas_cumprod[t] == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas.max() == pytest.approx(0.999)
    reference = betas_for_alpha_bar(T, alpha_transform_type="cosine").numpy()
    np.testing.assert_allclose(s.betas, reference, rtol=1e-5)


def test_sigmoid_is_chen_not_geodiff():
    s = get_schedule("sigmoid")
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    for t in (99, 499, 899):
        u = (t + 1) / T
        gamma = (sig(3) - sig(6 * u - 3)) / (sig(3) - sig(-3))
        assert s.alphas_cumprod[t] == pytest.approx(gamma, rel=1e-9)
    assert s.alphas_cumprod[-1] == pytest.approx(1e-9)
    assert abs(zero_crossing(s) - 499) <= 1  # symmetric around the middle
    geodiff = torch.sigmoid(torch.linspace(-6, 6, T)).numpy() * (0.02 - 1e-4) + 1e-4  # diffusers' "sigmoid"
    assert not np.allclose(s.betas, geodiff, rtol=0.1)


def test_laplace_is_alpha_bar_not_diffusers_alpha():
    s = get_schedule("laplace")
    for t in (99, 300, 499, 700, 899):
        u = (t + 1) / T
        lam = -0.5 * np.sign(0.5 - u) * math.log(1 - 2 * abs(u - 0.5))
        assert s.log_snr[t] == pytest.approx(lam, abs=1e-9)
    # diffusers' laplace alpha_bar_fn returns alpha = sqrt(abar): its cumulative product is a different curve.
    diffusers_version = np.cumprod(1 - betas_for_alpha_bar(T, alpha_transform_type="laplace").numpy().astype(np.float64))
    assert abs(diffusers_version[499] - s.alphas_cumprod[499]) > 0.1


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_zero_terminal_snr_rescale(name):
    base, z = get_schedule(name), get_schedule(name, zero_terminal_snr=True)
    # In theory alpha_bar_T = 0 (beta_T = 1). float32 samplers cannot take beta = 1, so the last beta is
    # the largest float32 below 1: alpha_bar_T = alpha_bar_{T-1} * 2**-24, at most 3e-9 (a signal amplitude below 6e-5: pure noise).
    assert z.betas[-1] == MAX_BETA == 1 - 2.0**-24
    assert z.alphas_cumprod[-1] == pytest.approx(z.alphas_cumprod[-2] * 2.0**-24, rel=1e-6)
    assert 0 < z.alphas_cumprod[-1] < 3e-9
    assert z.alphas_cumprod[0] == pytest.approx(base.alphas_cumprod[0], rel=1e-9)
    a, b = np.sqrt(base.alphas_cumprod), np.sqrt(z.alphas_cumprod)
    expected = (a - a[-1]) * a[0] / (a[0] - a[-1])  # Lin et al. 2024, Alg. 1
    np.testing.assert_allclose(b[:-1], expected[:-1], atol=1e-9)
    if name != "laplace":  # diffusers' own rescale on float32 betas agrees (but for the capped last beta)
        ref = rescale_zero_terminal_snr(torch.tensor(base.betas, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(z.betas[:-1], ref[:-1], atol=1e-6)


@pytest.mark.parametrize("zero_snr", [False, True])
def test_every_schedule_reaches_every_scheduler_as_trained_betas(zero_snr):
    """One truth for alpha_bar: what a sampler computes from our betas (float32) is what we plot, at every
    step including the last (sigmoid's last step, 3e-6 of the one before, rounds by 0.25 %)."""
    for schedule_name in SCHEDULES:
        schedule = get_schedule(schedule_name, zero_terminal_snr=zero_snr)
        for scheduler_name in SCHEDULERS:
            sch = make_scheduler(scheduler_name, schedule)
            np.testing.assert_allclose(sch.alphas_cumprod.double().numpy(), schedule.alphas_cumprod, rtol=5e-3)
            assert sch.config.clip_sample is False if "clip_sample" in sch.config else True


def test_laplace_last_step_is_capped_where_float32_would_make_it_zero():
    s = get_schedule("laplace")
    # the clip (1e-9) would need beta = 1 - 2.3e-8, which is 1.0 in float32 (alpha_bar 0, sigma infinite)
    assert np.float32(1.0 - 1e-9 / s.alphas_cumprod[-2]) == 1.0
    assert s.alphas_cumprod[-1] == pytest.approx(s.alphas_cumprod[-2] * 2.0**-24, rel=1e-9)
    assert s.alphas_cumprod[0] == pytest.approx(0.957, abs=5e-4)  # the first step is already noisy


def test_karras_sigmas_formula_and_diffusers():
    sig = karras_sigmas(0.03, 80.0, 10)
    assert sig[0] == pytest.approx(80.0) and sig[-1] == pytest.approx(0.03)
    assert np.all(np.diff(sig) < 0)
    i = 4
    expected = (80 ** (1 / 7) + i / 9 * (0.03 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sig[i] == pytest.approx(expected)
    schedule = get_schedule("scaled_linear")
    sch = make_scheduler("euler", schedule, karras=True)
    sch.set_timesteps(10)
    # diffusers takes the Karras range from the spaced timesteps: with "trailing" spacing and 10 steps the
    # least noisy one is t = 99, the noisiest t = 999.
    sigmas = schedule.sigmas
    np.testing.assert_allclose(sch.sigmas[:-1].numpy(), karras_sigmas(sigmas[99], sigmas[999], 10), rtol=1e-4)


def test_alpha_bar_interpolates_in_log_snr():
    s = get_schedule("linear")
    assert s.alpha_bar(10) == s.alphas_cumprod[10]
    mid = s.alpha_bar(10.5)
    lam = lambda ab: math.log(ab / (1 - ab))  # noqa: E731
    assert lam(mid) == pytest.approx((lam(s.alphas_cumprod[10]) + lam(s.alphas_cumprod[11])) / 2)


def test_unknown_schedule_is_a_typed_error():
    with pytest.raises(UnknownNameError, match="cosine"):
        get_schedule("cosin")
