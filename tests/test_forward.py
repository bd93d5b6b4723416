"""Forward noising: statistics, shared noise across schedules, one pixel's arithmetic."""

import math

import numpy as np
import pytest

from diffusion_viz.errors import InvalidInputError
from diffusion_viz.forward import (
    add_noise, explain_pixel, make_noise, noise_with_schedules, to_model_space, to_pixels,
)
from diffusion_viz.schedules import get_schedule


def test_pixel_mapping():
    assert to_model_space(np.array([0, 255]))[0] == -1.0 and to_model_space(np.array([255]))[0] == 1.0
    np.testing.assert_array_equal(to_pixels(np.array([-3.0, -1.0, 0.0, 1.0, 7.0])), [0, 0, 128, 255, 255])


@pytest.mark.parametrize("abar", [0.999, 0.5, 0.02])
def test_noising_statistics(abar):
    x0 = np.full((200_000,), 0.6, dtype=np.float32)
    x_t = add_noise(x0, abar, make_noise(x0.shape, seed=1))
    assert x_t.mean() == pytest.approx(math.sqrt(abar) * 0.6, abs=0.01)
    assert x_t.std() == pytest.approx(math.sqrt(1 - abar), rel=0.01)


def test_variance_is_preserved_for_unit_variance_data():
    x0 = make_noise((100_000,), seed=2)  # a "signal" with variance 1
    x_t = add_noise(x0, 0.3, make_noise(x0.shape, seed=3))
    assert x_t.var() == pytest.approx(1.0, rel=0.02)


def test_shared_noise_across_schedules():
    x0 = to_model_space(np.random.default_rng(0).integers(0, 256, (16, 16, 3)))
    eps = make_noise(x0.shape, seed=5)
    schedules = [get_schedule(n) for n in ("linear", "cosine", "scaled_linear")]
    frames = noise_with_schedules(x0, schedules, 400, eps)
    for s, x_t in zip(schedules, frames):
        ab = s.alphas_cumprod[400]
        np.testing.assert_allclose((x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab), eps, atol=1e-4)
    with pytest.raises(InvalidInputError):
        noise_with_schedules(x0, schedules, 1000, eps)


def test_noise_is_unbounded_and_leaves_the_display_range():
    x_t = add_noise(np.ones(10_000, dtype=np.float32), 0.5, make_noise((10_000,), seed=0))
    assert (np.abs(x_t) > 1).mean() > 0.2 and np.abs(x_t).max() > 2.5


def test_reference_pixel_example():
    """shared/reference: abar=0.5, x0=(-1,-0.059,1), eps=(0.5,-1,0.3) -> x_t=(-0.354,-0.749,0.919)."""
    p = explain_pixel((0, 120, 255), 0.5, (0.5, -1.0, 0.3))
    np.testing.assert_allclose(p.x0, (-1.0, 120 / 127.5 - 1, 1.0), atol=1e-6)
    np.testing.assert_allclose(p.x_t, (-0.354, -0.749, 0.919), atol=1e-3)
    assert p.clipped == (False, False, False)
    assert p.displayed == tuple(int(round((v + 1) * 127.5)) for v in p.x_t)
    text = "\n".join(p.lines())
    assert "127.5" in text and "0.707" in text and "-0.749" in text


def test_pixel_arithmetic_reports_clipping():
    p = explain_pixel((255, 255, 0), 0.9, (2.0, -0.1, -3.0))
    assert p.clipped == (True, False, True) and p.displayed[0] == 255 and p.displayed[2] == 0
    assert "clipped: R, B" in p.lines()[-1]
    with pytest.raises(InvalidInputError):
        explain_pixel((256, 0, 0), 0.5, (0, 0, 0))
