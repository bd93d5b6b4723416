"""A tiny emoji-ldm export (random-ish weights, one training step per stage): what the real training writes
to assets/emoji_ldm, in seconds, so the loader, the registry and the app can be tested on it."""

from pathlib import Path

from diffusion_viz.models.emoji_ldm import TEXT_DIM

TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                block_out_channels=(8, 8, 8), layers_per_block=1, norm_num_groups=4)
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                 mid_block_type="UNetMidBlock2DCrossAttn", block_out_channels=(8, 16), layers_per_block=1,
                 cross_attention_dim=TEXT_DIM, attention_head_dim=4, norm_num_groups=4)


def export_tiny_vae(root: Path) -> Path:
    from diffusion_viz.training import vae as tv

    tv.train(root / "vae-run", tv.VAEConfig(batch=2, vae=TINY_VAE), max_steps=2, log=lambda *_: None)
    tv.export(root / "vae-run", root / "vae")
    return root / "vae"


def export_tiny_emoji_ldm(root: Path, steps: int = 1) -> Path:
    """root/model: vae.safetensors, vae.json, unet.safetensors, ldm.json, as `train-ldm --export` writes."""
    from diffusion_viz.training import ldm as tl

    vae_dir = export_tiny_vae(Path(root))
    cfg = tl.LDMConfig(batch=2, warmup=1, vae_dir=str(vae_dir), unet=TINY_UNET)
    tl.train(Path(root) / "ldm-run", cfg, max_steps=steps, log=lambda *_: None)
    tl.export(Path(root) / "ldm-run", Path(root) / "model")
    return Path(root) / "model"
