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


# ---- real-browser tests: Debian chromium, headless -------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def launch_chromium(playwright, *extra_args):
    """Debian chromium with the flags every browser test uses (plus e.g. a fake webcam's)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
