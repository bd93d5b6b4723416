import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusion_viz.runtime import configure_torch_threads  # noqa: E402

configure_torch_threads()


@pytest.fixture(scope="session")
def emoji_model():
    from diffusion_viz.models.emoji_exact import exact_emoji_model

    return exact_emoji_model(64)


@pytest.fixture(scope="session")
def emoji_model_32():
    from diffusion_viz.models.emoji_exact import exact_emoji_model

    return exact_emoji_model(32)
