"""The whole app: four tabs and a classroom-mode switch. ``build_app()`` returns the gr.Blocks.

Public API (stable names, documented in docs/API.md): ``/generate``, ``/forward_noise``,
``/forward_plots`` and ``/compare``. Example::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    player, image, summary, *_ = client.predict("cat", 50, 0, 1.0, "ddim", "cosine", "emoji-exact",
                                                api_name="/generate")
"""

from __future__ import annotations

import gradio as gr

from ..models.registry import DEFAULT_MODEL, get_model
from . import compare_tab, denoise_tab, explain, forward_tab, logic, theme

TITLE = "diffusion-viz: how a diffusion model makes a picture"


def warm_up(model_name: str = DEFAULT_MODEL) -> None:
    """Load the default model and its text encoder before the first click (~8 s once per process)."""
    model = get_model(model_name)
    if hasattr(model, "top_matches"):
        model.top_matches(logic.DEFAULTS["prompt"])
    settings = logic.make_settings(logic.DEFAULTS["prompt"], 3, 0, 1.0, "ddim", "cosine")
    for _ in logic.stream_run(model, settings):  # first-call costs (scheduler, torch kernels) paid now
        pass


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(f"# {TITLE}", elem_classes=["dv-title"])
            classroom = gr.Checkbox(False, label="🎓 Classroom mode (big)", elem_id="dv-classroom",
                                    scale=0, min_width=220)
        with gr.Tabs():
            with gr.Tab("1 · Denoise", id="denoise", elem_id="dv-tab-denoise"):
                denoise_tab.build()
            with gr.Tab("2 · Forward noising", id="forward", elem_id="dv-tab-forward"):
                fwd = forward_tab.build()
            with gr.Tab("3 · Compare", id="compare", elem_id="dv-tab-compare"):
                compare_tab.build()
            with gr.Tab("4 · How it works", id="how", elem_id="dv-tab-how"):
                gr.Markdown(explain.HOW_IT_WORKS, elem_classes=["dv-help"])
        classroom.change(None, classroom, None, js=theme.TOGGLE_CLASSROOM_JS)
        f_noise, f_in, f_out, f_plots, p_in, p_out = fwd["load"]
        demo.load(f_noise, f_in, f_out, api_visibility="private").then(
            f_plots, p_in, p_out, api_visibility="private")
    return demo


def launch_kwargs() -> dict:
    """Everything launch() needs besides host and port: theme, CSS, JS, file access."""
    return dict(css=theme.CSS, js=theme.HEAD_JS, theme=gr.themes.Soft(),
                allowed_paths=[str(logic.EXAMPLES_DIR)])


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_server(port: int | None = None, host: str = "127.0.0.1", warm: bool = True):
    """Launch in this process without blocking (tests, benchmark, screenshots). Returns (demo, url)."""
    if warm:
        warm_up()
    demo = build_app()
    port = port or free_port(host)
    demo.queue(default_concurrency_limit=2).launch(server_name=host, server_port=port, prevent_thread_lock=True,
                                                   quiet=True, **launch_kwargs())
    return demo, f"http://{host}:{port}/"
