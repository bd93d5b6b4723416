"""The capture loop: x0/eps consistency with each scheduler's own numbers, frame counts, determinism."""

import math

import numpy as np
import pytest
import torch

from diffusion_viz.errors import InvalidInputError, PromptTooLongError, UnknownNameError, UnsupportedOptionError
from diffusion_viz.sampling import (
    SCHEDULERS,
    Frame,
    SampleSettings,
    iter_frames,
    make_scheduler,
    planned_frame_count,
    sample,
)
from diffusion_viz.schedules import get_schedule

# Schedulers that report their own x0 estimate, and where (shared/reference/diffusion-science.md).
OWN_X0 = {
    "ddpm": "pred_original_sample", "ddim": "pred_original_sample", "euler": "pred_original_sample",
    "euler_a": "pred_original_sample", "heun": "pred_original_sample", "lms": "pred_original_sample",
    "dpmpp_2m": "model_outputs", "unipc": "model_outputs",
}


class SmoothDenoiser:
    """A cheap, smooth stand-in network: predicts eps from x_t with a fixed nonlinear map."""

    sample_shape = (3, 8, 8)

    def __init__(self, prediction_type="epsilon"):
        self.prediction_type = prediction_type

    def encode_prompt(self, prompt):
        return 0.3 if prompt else 0.0

    def predict(self, x_t, t, alpha_bar, cond):
        return torch.tanh(0.5 * x_t + cond) * math.sqrt(1 - alpha_bar) + 0.1 * math.sqrt(alpha_bar)


def spy_scheduler(name, prediction_type):
    """A real scheduler whose step() records the scheduler's own x0 estimate."""
    sch = make_scheduler(name, get_schedule("cosine"), prediction_type)
    seen = []
    step = sch.step

    def recording_step(model_output, t, sample, **kw):
        out = step(model_output, t, sample, **kw)
        if OWN_X0.get(name) == "pred_original_sample":
            seen.append(out.pred_original_sample.clone())
        elif OWN_X0.get(name) == "model_outputs":
            seen.append(sch.model_outputs[-1].clone())
        return out

    sch.step = recording_step
    return sch, seen


def vp_x0(frame):
    return frame.x0


@pytest.mark.parametrize("name", list(OWN_X0))
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_x0_matches_scheduler_own_estimate(name, prediction_type):
    sch, seen = spy_scheduler(name, prediction_type)
    frames = [f for f in iter_frames(SmoothDenoiser(prediction_type), SampleSettings(prompt="x", steps=8, seed=3),
                                      scheduler=sch) if isinstance(f, Frame)]
    assert len(seen) == len(frames)
    for frame, own in zip(frames, seen):
        np.testing.assert_allclose(frame.x0, own[0].numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_frame_satisfies_the_forward_identity(name):
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) eps must hold for the recorded triple (also PNDM, no own x0)."""
    traj = sample(SmoothDenoiser(), SampleSettings(steps=6, scheduler=name, seed=1))
    for f in traj.frames:
        rebuilt = math.sqrt(f.alpha_bar) * f.x0 + math.sqrt(1 - f.alpha_bar) * f.eps
        np.testing.assert_allclose(rebuilt, f.x_t, atol=1e-4)


@pytest.mark.parametrize("name, steps, expected", [
    ("ddim", 10, 10), ("ddpm", 10, 10), ("euler", 10, 10), ("euler_a", 10, 10), ("lms", 10, 10),
    ("dpmpp_2m", 10, 10), ("unipc", 10, 10), ("heun", 10, 19), ("pndm", 10, 11), ("ddim", 1, 1),
])
def test_frame_counts(name, steps, expected):
    traj = sample(SmoothDenoiser(), SampleSettings(steps=steps, scheduler=name))
    assert len(traj.frames) == expected == planned_frame_count(name, steps)
    assert [f.index for f in traj.frames] == list(range(expected))


class WideDenoiser(SmoothDenoiser):
    sample_shape = (3, 64, 64)


@pytest.mark.parametrize("name", ["euler", "ddim", "dpmpp_2m"])
def test_first_step_is_the_noisiest_training_step_and_noise_is_standard_normal(name):
    traj = sample(WideDenoiser(), SampleSettings(steps=10, scheduler=name, schedule="linear", seed=0))
    first = traj.frames[0]
    assert first.timestep == pytest.approx(999)
    assert first.alpha_bar == pytest.approx(get_schedule("linear").alphas_cumprod[999], rel=1e-3)
    # The model-input x_t is variance preserving: ~N(0, 1) whatever the scheduler's internal scaling.
    assert abs(first.x_t.mean()) < 0.03 and first.x_t.std() == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("name", ["ddpm", "euler_a", "ddim"])
def test_deterministic_for_a_seed(name):
    a = sample(SmoothDenoiser(), SampleSettings(steps=5, scheduler=name, seed=7))
    b = sample(SmoothDenoiser(), SampleSettings(steps=5, scheduler=name, seed=7))
    c = sample(SmoothDenoiser(), SampleSettings(steps=5, scheduler=name, seed=8))
    np.testing.assert_array_equal(a.final, b.final)
    assert not np.allclose(a.final, c.final)


def test_capture_off_gives_the_same_result():
    settings = SampleSettings(prompt="cat", steps=6, scheduler="dpmpp_2m", seed=2, guidance=3.0)
    full = sample(SmoothDenoiser(), settings)
    items = list(iter_frames(SmoothDenoiser(), settings, capture=False))
    assert len(items) == 1
    np.testing.assert_array_equal(items[0], full.final)


def test_classifier_free_guidance_is_recorded_and_combined():
    traj = sample(SmoothDenoiser(), SampleSettings(prompt="cat", steps=4, guidance=4.0))
    for f in traj.frames:
        assert f.eps_cond is not None and f.eps_uncond is not None
        np.testing.assert_allclose(f.eps, f.eps_uncond + 4.0 * (f.eps_cond - f.eps_uncond), atol=1e-5)
    plain = sample(SmoothDenoiser(), SampleSettings(prompt="cat", steps=4, guidance=1.0))
    assert plain.frames[0].eps_cond is None


def test_stop_callback_cancels_between_steps():
    calls = []
    stop = lambda: len(calls) >= 3  # noqa: E731
    frames = []
    for item in iter_frames(SmoothDenoiser(), SampleSettings(steps=20), should_stop=stop):
        calls.append(item)
        frames.append(item)
    assert len(frames) == 3 and all(isinstance(f, Frame) for f in frames)


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m"])
def test_zero_terminal_snr_runs_finite(scheduler, emoji_model_32):
    traj = sample(emoji_model_32, SampleSettings(prompt="rocket", steps=10, scheduler=scheduler,
                                                 zero_terminal_snr=True, seed=0))
    assert np.isfinite(traj.final).all()
    assert traj.frames[0].alpha_bar < 1e-6


@pytest.mark.parametrize("bad, error", [
    (dict(steps=0), InvalidInputError), (dict(steps=1001), InvalidInputError), (dict(steps="ten"), InvalidInputError),
    (dict(steps=2.5), InvalidInputError), (dict(steps=True), InvalidInputError),
    (dict(guidance=float("nan")), InvalidInputError), (dict(guidance=float("inf")), InvalidInputError),
    (dict(guidance=-0.1), InvalidInputError), (dict(guidance=30.5), InvalidInputError),
    (dict(seed=-1), InvalidInputError), (dict(seed=2**63), InvalidInputError),
    (dict(seed=float("nan")), InvalidInputError),
    (dict(prompt="a" * 1001), PromptTooLongError), (dict(prompt=123), InvalidInputError),
    (dict(scheduler="dpm"), UnknownNameError), (dict(schedule="cosin"), UnknownNameError),
    (dict(scheduler="ddim", karras=True), UnsupportedOptionError),
])
def test_bad_input_raises_typed_errors(bad, error):
    with pytest.raises(error) as info:
        list(iter_frames(SmoothDenoiser(), SampleSettings(**bad)))
    assert isinstance(info.value, ValueError) and str(info.value)


def test_limits_are_inclusive():
    ok = SampleSettings(prompt="a" * 1000, steps=1000, guidance=30, seed=2**63 - 1).validated()
    assert ok.steps == 1000 and ok.seed == 2**63 - 1
    assert SampleSettings(steps=1, guidance=0, seed=0).validated().guidance == 0.0
