"""Memorize vs generalize for a set of prompts (the model card's samples.png). Kept for old links: it is
``diffusion-viz memorize`` (without prompts it uses eight default ones). One PNG, rows = prompts:

    exact sample | its nearest training emoji | UNet sample | its nearest training emoji

    python scripts/memorize_vs_generalize.py "cat face" "red apple" rocket --seed 0 --out compare.png
"""

from __future__ import annotations

import sys

from diffusion_viz.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["memorize", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
