"""The Gradio app. Layout per tab lives here; computation lives in ``logic`` (no gradio needed)."""

from .app import build_app, launch_kwargs, warm_up

__all__ = ["build_app", "launch_kwargs", "warm_up"]
