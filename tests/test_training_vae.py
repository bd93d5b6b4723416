"""emoji-ldm's VAE stage: it learns, and a resumed run continues the same loss curve."""

import csv

import torch

from diffusion_viz.training import vae as tv

TINY = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(16, 16, 16), layers_per_block=1, norm_num_groups=8)


def _losses(run):
    with open(run / "loss.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_resuming_continues_the_same_run(tmp_path):
    cfg = tv.VAEConfig(batch=4, save_every=3, vae=TINY)
    straight, split = tmp_path / "straight", tmp_path / "split"
    tv.train(straight, cfg, max_steps=6, log=lambda *_: None)
    tv.train(split, cfg, max_steps=3, log=lambda *_: None)
    tv.train(split, cfg, max_steps=6, log=lambda *_: None)  # a new process would do exactly this
    a, b = _losses(straight), _losses(split)
    assert [s for s, _ in b] == list(range(1, 7))
    # the same data, the same latent samples, the same optimiser state: the same loss at every step
    for (_, la), (_, lb) in zip(a, b):
        assert abs(la - lb) <= 1e-5 * la


def test_a_few_steps_lower_the_loss_and_export_writes_weights(tmp_path):
    torch.manual_seed(0)
    cfg = tv.VAEConfig(batch=8, save_every=50, vae=TINY, lr=2e-3)
    tv.train(tmp_path / "run", cfg, max_steps=40, log=lambda *_: None)
    losses = [l for _, l in _losses(tmp_path / "run")]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    info = tv.export(tmp_path / "run", tmp_path / "out")
    assert (tmp_path / "out" / "vae.safetensors").stat().st_size > 1000
    assert info["step"] == 40 and info["scaling_factor"] > 0 and 5 < info["psnr_heldout_db"] < 60
    # the better of EMA and raw weights is exported, and its PSNR is the one reported
    assert info["psnr_heldout_db"] == max(info["psnr_heldout_db_ema"], info["psnr_heldout_db_raw"])
    from diffusion_viz.models.emoji_ldm import build_vae

    shipped = build_vae(TINY)
    tv.load_exported(shipped, tmp_path / "out")
    assert abs(tv.psnr(shipped, tv.heldout_batch()) - info["psnr_heldout_db"]) < 0.2  # float16 on disk


def test_decoder_only_keeps_the_latents_and_teaches_the_decoder(tmp_path):
    """--decoder-only: the encoder (so every latent a UNet learned) is bit for bit the warm start's; the
    decoder moves, and its reconstruction error goes down."""
    torch.manual_seed(0)
    base = tv.VAEConfig(batch=8, save_every=50, vae=TINY, lr=2e-3)
    tv.train(tmp_path / "base", base, max_steps=10, log=lambda *_: None)
    tv.export(tmp_path / "base", tmp_path / "exported")
    before = torch.load(tmp_path / "base" / "checkpoint.pt", weights_only=False)

    cfg = tv.VAEConfig(batch=8, save_every=50, vae=TINY, lr=2e-3, decoder_only=True)
    tv.train(tmp_path / "dec", cfg, max_steps=40, init=tmp_path / "exported", log=lambda *_: None)
    after = torch.load(tmp_path / "dec" / "checkpoint.pt", weights_only=False)
    from diffusion_viz.models.emoji_ldm import build_vae

    start = build_vae(TINY)
    tv.load_exported(start, tmp_path / "exported")  # what the fine-tune started from (float16 on disk)
    for name, value in start.state_dict().items():
        if name.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(after["model"][name], value), name
    moved = [n for n, v in start.state_dict().items() if n.startswith("decoder.") and not torch.equal(after["model"][n], v)]
    assert len(moved) > 10
    tuned = build_vae(TINY)
    tuned.load_state_dict(after["model"])
    held = tv.heldout_batch(16)
    assert tv.psnr(tuned, held) > tv.psnr(start, held) + 0.05  # the decoder draws the same latents better (9.35 -> 9.46 dB)
    assert before["config"]["decoder_only"] is False and after["config"]["decoder_only"] is True


def test_the_optional_squared_error_is_added_to_the_loss():
    """--mse-weight w: loss = L1 + KL term + w x MSE, the MSE of the same reconstruction (same seed)."""
    from diffusion_viz.models.emoji_ldm import build_vae

    torch.manual_seed(0)
    vae = build_vae(TINY)
    x = tv.batch_at(0, tv.VAEConfig(batch=2))
    plain, rec, _ = tv.loss_of(vae, x, 1e-6, step=3)
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(generator=torch.Generator().manual_seed(3))).sample
    mse = float(((x_hat - x) ** 2).mean().detach())
    weighted, rec2, _ = tv.loss_of(vae, x, 1e-6, step=3, mse_weight=2.0)
    assert rec2 == rec and mse > 0
    assert abs(weighted.item() - (plain.item() + 2.0 * mse)) < 1e-5
