"""Safe by default for a class: a Stable Diffusion checkpoint's safety checker runs on every full decode;
a flagged run shows a picture that says it was hidden, for the finished picture and every step's preview;
the switch is a server setting (DIFFUSION_VIZ_SAFETY_CHECKER=0), not a control on the page."""

import json

import numpy as np
import pytest
import torch

from diffusion_viz.models import registry
from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
from diffusion_viz.models.stable_diffusion import HIDDEN_TEXT, StableDiffusionDenoiser, hidden_picture
from diffusion_viz.ui import atlas
from diffusion_viz.ui.cache import RESULTS

SIZE = 8


class FlagEverything:
    """Stands in for diffusers' StableDiffusionSafetyChecker: every picture is flagged (and blackened)."""

    def __init__(self):
        self.calls = 0


@pytest.fixture()
def flagged_model(monkeypatch):
    pipe = tiny_sd_pipeline(sample_size=SIZE)
    checker = FlagEverything()
    pipe.safety_checker = checker

    def run_safety_checker(image, device, dtype):
        checker.calls += 1
        return torch.zeros_like(image), [True] * image.shape[0]

    monkeypatch.setattr(pipe, "run_safety_checker", run_safety_checker)
    model = StableDiffusionDenoiser(pipe, "tiny-checked")
    before = dict(registry.MODELS)
    registry.MODELS["tiny-checked"] = registry.ModelInfo("tiny-checked", "a tiny SD with a checker", "scaled_linear",
                                                         lambda: model)
    RESULTS.clear()
    yield model, checker
    registry.MODELS.clear()
    registry.MODELS.update(before)
    RESULTS.clear()


def test_a_flagged_run_hides_the_finished_picture_and_every_step(flagged_model):
    from diffusion_viz.ui import denoise_tab

    model, checker = flagged_model
    outs = list(denoise_tab.generate("a cat", 4, 0, 7.5, "ddim", "scaled_linear", "tiny-checked"))
    # nothing was shown before the checker saw the finished picture: the player got no frames
    assert all(not isinstance(o[0], str) for o in outs[:-1])
    player, final, summary, _, status, _ = outs[-1]
    assert checker.calls >= 1 and summary["hidden_by_safety_checker"] is True
    assert "hidden" in status and "safety checker" in status
    np.testing.assert_array_equal(final, hidden_picture(2 * SIZE, 2 * SIZE))
    col = json.loads(player)["columns"][0]
    pics = atlas.decode_column(col["strips"], [f["alpha_bar"] for f in col["frames"]])
    notice = hidden_picture(SIZE, SIZE)
    for panel in ("x_t", "x0", "eps"):
        assert pics[panel].shape[0] == 4 and (pics[panel] == notice).all(), panel
    # a step decoded on demand is checked as well
    from diffusion_viz.ui import sd_view

    step = sd_view.decode_step(model, sd_view.RUNS.get(json.loads(player)["run"]).trajectory, 1)
    np.testing.assert_array_equal(step["x0"], hidden_picture(2 * SIZE, 2 * SIZE))


def test_the_notice_says_what_happened():
    big = hidden_picture(256, 256)
    assert big.shape == (256, 256, 3) and (big < 100).any() and (big > 200).any()  # dark text on light grey
    assert "safety checker" in HIDDEN_TEXT


def test_the_operator_can_turn_it_off(flagged_model, monkeypatch):
    from diffusion_viz.ui import denoise_tab

    model, checker = flagged_model
    monkeypatch.setenv("DIFFUSION_VIZ_SAFETY_CHECKER", "0")
    assert not model.safety_checked
    *_, last = list(denoise_tab.generate("a cat", 3, 1, 1.0, "ddim", "scaled_linear", "tiny-checked"))
    assert checker.calls == 0 and "hidden_by_safety_checker" not in last[2]


def test_emoji_models_need_none():
    """The emoji models can only draw their 1,361 emoji (or blends): no checker to run."""
    from diffusion_viz.models.registry import get_model

    assert not any(hasattr(get_model(n), "safety_checked") for n in ("emoji-exact", "emoji-exact-32", "emoji-unet"))
