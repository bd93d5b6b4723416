"""Side-by-side columns: identical to separate runs, but with fewer model calls."""

import numpy as np
import pytest

from diffusion_viz.compare import sample_columns
from diffusion_viz.errors import InvalidInputError
from diffusion_viz.sampling import SampleSettings, sample

COLUMNS = [
    SampleSettings(prompt="rocket", steps=12, scheduler="ddim", schedule="cosine", seed=4),
    SampleSettings(prompt="rocket", steps=12, scheduler="euler_a", schedule="linear", seed=4),
    SampleSettings(prompt="rocket", steps=7, scheduler="heun", schedule="sigmoid", seed=4),
    SampleSettings(prompt="rocket", steps=12, scheduler="dpmpp_2m", schedule="cosine", seed=4, guidance=3.0),
]


class CountingModel:
    def __init__(self, model):
        self.model, self.calls = model, 0
        self.sample_shape, self.prediction_type = model.sample_shape, model.prediction_type
        self.supports_batched_alpha_bar = True

    def encode_prompt(self, prompt):
        return self.model.encode_prompt(prompt)

    def predict(self, *args):
        self.calls += 1
        return self.model.predict(*args)


def test_columns_equal_separate_runs(emoji_model_32):
    counting = CountingModel(emoji_model_32)
    together = sample_columns(counting, COLUMNS)
    separate = [sample(emoji_model_32, s) for s in COLUMNS]
    for a, b in zip(together, separate):
        assert len(a.frames) == len(b.frames)
        np.testing.assert_allclose(a.final, b.final, atol=1e-3)
        np.testing.assert_allclose(a.frames[len(a.frames) // 2].x0, b.frames[len(b.frames) // 2].x0, atol=1e-3)
    separate_calls = sum(len(t.frames) for t in separate) + len(separate[3].frames)  # CFG column: 2 per step
    # One call per prompt per step: "rocket" for all columns, plus "" for the guided one.
    assert counting.calls == 13 + 12 < separate_calls


def test_column_count_is_limited(emoji_model_32):
    """The library's ceiling (8); a server allows fewer (limits.LIMITS.columns, tested with the app)."""
    from diffusion_viz.compare import MAX_COLUMNS

    with pytest.raises(InvalidInputError, match="8 columns"):
        sample_columns(emoji_model_32, (COLUMNS * 3)[:MAX_COLUMNS + 1])
