"""Precompute MiniLM embeddings of the emoji names into assets/emoji (run after build_emoji_dataset.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_viz.data import write_name_embeddings  # noqa: E402

if __name__ == "__main__":
    print("wrote", write_name_embeddings())
