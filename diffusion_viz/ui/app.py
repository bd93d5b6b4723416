"""The whole app: five tabs and a classroom-mode switch. ``build_app()`` returns the gr.Blocks.

Public API (stable names, documented in docs/API.md): ``/generate``, ``/forward_noise``,
``/forward_plots``, ``/compare`` and ``/memorize``. Example::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    player, image, summary, *_ = client.predict("cat", 50, 0, 1.0, "ddim", "cosine", "emoji-exact",
                                                api_name="/generate")
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr

from ..models.registry import DEFAULT_MODEL, get_model
from . import compare_tab, denoise_tab, explain, forward_tab, logic, memorize_tab, theme

TITLE = "diffusion-viz: how a diffusion model makes a picture"


def warm_up(model_name: str = DEFAULT_MODEL) -> None:
    """Load the default model and its text encoder before the first click (~8 s once per process)."""
    model = get_model(model_name)
    if hasattr(model, "top_matches"):
        model.top_matches(logic.DEFAULTS["prompt"])
    settings = logic.make_settings(logic.DEFAULTS["prompt"], 3, 0, 1.0, "ddim", "cosine")
    for _ in logic.stream_run(model, settings):  # first-call costs (scheduler, torch kernels) paid now
        pass


# the expensive events: one pool
SAMPLING_HANDLERS = ("generate", "make_downloads", "compare_ui", "compare", "sd_guidance", "memorize_ui", "memorize")


@dataclass(frozen=True)
class Serving:
    """How many requests run at once, how many may wait, and how many torch threads each gets.

    CPU (the default): 2 sampling runs at once on a 2-core machine with 1 torch thread each. A run of
    the exact emoji model is ~0.15-0.3 s of sampling plus ~0.3-0.6 s of GIF/MP4 writing (one thread),
    so two runs keep both cores busy; more runs, or more threads per run, only oversubscribe the cores
    and make every user wait longer. One GPU: 1 run at a time (a Stable Diffusion run fills the GPU;
    two at once just share it and risk running out of memory), with all CPU threads for the rest.
    """

    sampling: int  # concurrent generate/compare runs (one pool shared by every button that samples)
    light: int  # concurrent cheap events (forward noising, plots)
    queue_size: int  # waiting requests beyond which a user is told the queue is full
    torch_threads: int
    gpu: bool

    @classmethod
    def from_env(cls) -> "Serving":
        cores = os.cpu_count() or 1
        gpu = _cuda_available()
        default = 1 if gpu else max(1, min(2, cores))
        sampling = _env_int("DIFFUSION_VIZ_CONCURRENCY", default)
        threads = _env_int("DIFFUSION_VIZ_THREADS", cores if gpu else max(1, cores // sampling))
        return cls(sampling=sampling, light=max(2, sampling * 2), torch_threads=threads, gpu=gpu,
                   queue_size=_env_int("DIFFUSION_VIZ_QUEUE_SIZE", 100))


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


def _cuda_available() -> bool:
    if os.environ.get("DIFFUSION_VIZ_DEVICE", "").lower() == "cpu":
        return False
    import torch

    return bool(torch.cuda.is_available())


def configure_queue(demo: gr.Blocks, serving: Serving | None = None) -> gr.Blocks:
    """Put every sampling event (Generate, quick prompts, dice, next seed, Compare, Memorize) in one
    pool of ``serving.sampling`` workers, so thirty clicks queue up instead of oversubscribing the CPU;
    cheap events get their own, larger pool. Waiting users see their queue position (gradio's status
    tracker shows "queue: 3/12" on the output; gradio_client's Job.status() has rank and queue_size).
    """
    serving = serving or Serving.from_env()
    for fn in demo.fns.values():
        name = getattr(getattr(fn, "fn", None), "__name__", "")
        if name in SAMPLING_HANDLERS:
            fn.concurrency_id, fn.concurrency_limit = "sampling", serving.sampling
    return demo.queue(default_concurrency_limit=serving.light, max_size=serving.queue_size)


def build_app() -> gr.Blocks:
    # delete_cache: every 10 min, remove uploads and outputs older than 30 min from gradio's temp cache
    # (and all of them when the server stops), so a classroom's photos do not pile up on disk.
    with gr.Blocks(title=TITLE, delete_cache=_delete_cache()) as demo:
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
            with gr.Tab("4 · Memorize vs generalize", id="memorize", elem_id="dv-tab-memorize"):
                memorize_tab.build()
            with gr.Tab("5 · How it works", id="how", elem_id="dv-tab-how"):
                gr.Markdown(explain.HOW_IT_WORKS, elem_classes=["dv-help"])
        classroom.change(None, classroom, None, js=theme.TOGGLE_CLASSROOM_JS)
        f_noise, f_in, f_out, f_plots, p_in, p_out = fwd["load"]
        demo.load(f_noise, f_in, f_out, api_visibility="private").then(
            f_plots, p_in, p_out, api_visibility="private")
    return demo


def _delete_cache() -> tuple[int, int]:
    age = _env_int("DIFFUSION_VIZ_CACHE_AGE_S", 1800)
    return (max(60, age // 3), age)


def launch_kwargs() -> dict:
    """Everything launch() needs besides host and port: theme, CSS, JS, file access.

    Files: gradio serves its own temp cache (uploads and outputs of this app) plus ``allowed_paths``,
    which is only the example photos. Uploads are capped at DIFFUSION_VIZ_MAX_UPLOAD_MB (default 10).
    """
    # show_error: gradio's own input checks (a number sent as text...) reach the user as their message
    # instead of "the app raised an exception"; handlers' own errors are already friendly gr.Errors.
    # run_history off: gradio would copy every streamed update (megabytes of frames) into the browser's
    # localStorage, JSON-encoding the whole history again on each message. That stalled the page for
    # 0.3-0.7 s per run and grew with every run; on a shared classroom computer it would also keep
    # one pupil's runs for the next.
    return dict(css=theme.CSS, js=theme.HEAD_JS, theme=gr.themes.Soft(), show_error=True, run_history=False,
                allowed_paths=[str(logic.EXAMPLES_DIR)],
                max_file_size=f"{_env_int('DIFFUSION_VIZ_MAX_UPLOAD_MB', 10)}mb")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_server(port: int | None = None, host: str = "127.0.0.1", warm: bool = True):
    """Launch in this process without blocking (tests, benchmark, screenshots). Returns (demo, url)."""
    if warm:
        warm_up()
    demo = configure_queue(build_app())
    port = port or free_port(host)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    return demo, f"http://{host}:{port}/"
