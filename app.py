"""Start the diffusion-viz web app: ``python app.py`` then open http://127.0.0.1:7860.

Binds to 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` or DIFFUSION_VIZ_HOST to show it to a
classroom network; ``--port`` or DIFFUSION_VIZ_PORT to move it). Serving settings (concurrency, queue
size, upload cap, result cache) come from environment variables: see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the diffusion-viz teaching app.")
    parser.add_argument("--host", default=os.environ.get("DIFFUSION_VIZ_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DIFFUSION_VIZ_PORT", "7860")))
    args = parser.parse_args(argv)

    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import Serving, build_app, configure_queue, launch_kwargs, warm_up

    serving = Serving.from_env()
    configure_torch_threads(serving.torch_threads)
    warm_up()
    demo = configure_queue(build_app(), serving)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
