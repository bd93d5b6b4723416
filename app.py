"""Start the diffusion-viz web app: ``python app.py`` then open http://127.0.0.1:7860.

Where it listens, first match wins:

1. ``--host`` / ``--port`` on the command line;
2. ``DIFFUSION_VIZ_HOST`` / ``DIFFUSION_VIZ_PORT`` (this app's own settings, e.g. the Docker image);
3. ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (set by Hugging Face Spaces and the gradio CLI:
   a Space needs 0.0.0.0:7860, or it is unreachable);
4. 127.0.0.1:7860: this machine only (``--host 0.0.0.0`` shows it to a classroom network).

Serving settings (concurrency, queue size, upload cap, result cache) come from environment variables:
see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os

# numpy's BLAS (OpenBLAS) starts a thread per core for every matrix product and keeps them spinning;
# with several requests running at once that burned ~80 ms of CPU per run on 2 cores. The server runs
# requests side by side instead (DIFFUSION_VIZ_CONCURRENCY): one BLAS thread each. Must be set before
# numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def _setting(*names: str) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def address(argv=None) -> tuple[str, int]:
    """(host, port) by the precedence above; a port that is not a number 1..65535 is a clear error."""
    parser = argparse.ArgumentParser(description="Run the diffusion-viz teaching app.")
    parser.add_argument("--host", help="address to listen on (0.0.0.0: every network interface)")
    parser.add_argument("--port", help="port to listen on (default 7860)")
    args = parser.parse_args(argv)
    host = args.host or _setting("DIFFUSION_VIZ_HOST", "GRADIO_SERVER_NAME") or DEFAULT_HOST
    raw_port = args.port or _setting("DIFFUSION_VIZ_PORT", "GRADIO_SERVER_PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw_port)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        parser.error(f"port must be a whole number from 1 to 65535, got {raw_port!r}")
    return host, port


def main(argv=None) -> None:
    host, port = address(argv)

    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.models.registry import DEFAULT_MODEL
    from diffusion_viz.ui.app import Serving, build_app, configure_queue, launch_kwargs, warm_up
    from diffusion_viz.ui.run_route import install

    serving = Serving.from_env()
    configure_torch_threads(serving.torch_threads)
    if serving.processes:  # Denoise's runs in worker processes: they start (and warm up) beside the server
        from diffusion_viz.ui import sampling_pool

        sampling_pool.start(serving.processes, serving.torch_threads, warm_model=DEFAULT_MODEL)
    warm_up()
    demo = configure_queue(build_app(), serving)
    print(f"diffusion-viz: listening on http://{host}:{port}", flush=True)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, **launch_kwargs())
    install(demo.app, serving.queue_size)  # the player's own route for its frames (ui/run_route.py)
    demo.block_thread()


if __name__ == "__main__":
    main()
