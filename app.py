"""Start the diffusion-viz web app: ``python app.py`` then open http://127.0.0.1:7860.

Binds to 127.0.0.1 unless told otherwise (``--host 0.0.0.0`` or DIFFUSION_VIZ_HOST to show it to a
classroom network; ``--port`` or DIFFUSION_VIZ_PORT to move it).
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
    from diffusion_viz.ui import build_app, launch_kwargs, warm_up

    configure_torch_threads()
    warm_up()
    demo = build_app()
    demo.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port,
                                                   **launch_kwargs())


if __name__ == "__main__":
    main()
