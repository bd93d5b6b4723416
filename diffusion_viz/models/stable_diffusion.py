"""Real Stable Diffusion (1.x, 2.x, XL, Turbo) through diffusers, as a ``Denoiser`` for the capture loop.

Stable Diffusion does not denoise pixels: it denoises a small latent (4 x 64 x 64 for 512 x 512), which
the VAE decoder turns into a picture at the end. The UNet is called exactly as diffusers'
StableDiffusionPipeline / StableDiffusionXLPipeline call it, and the checkpoint's own scheduler config
is used, so a captured run gives the same latent as the plain pipeline for the same seed.

Tensors cross the loop on the CPU in float32 (the loop's convention); ``predict`` moves them to the
model's device and dtype and back, 64 KB per step for SD 1.x.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError, UnsupportedOptionError
from ..sampling import SCHEDULERS, SampleSettings, iter_frames
from ..validation import check_choice, check_prompt
from .latent_preview import latent_channels_image, latent_to_rgb, preview_offset


@dataclass(frozen=True)
class SDConditioning:
    """What the UNet needs about a prompt. SDXL adds a pooled text vector and size/crop "time ids"."""

    prompt: str
    embeds: torch.Tensor  # (1, 77, D) per-token text features the UNet attends to
    pooled: torch.Tensor | None = None  # SDXL: (1, 1280)
    time_ids: torch.Tensor | None = None  # SDXL: (1, 6) original size, crop top-left, target size


@dataclass(frozen=True)
class TokenView:
    """The prompt as the text encoder sees it. CLIP reads at most 77 tokens, including start and end;
    emoji-ldm's MiniLM reads 16 ([CLS] and [SEP] are its start and end)."""

    tokens: list[str]  # the tokens that are used, without <start>/<end>
    dropped: list[str]  # tokens past the limit: silently ignored by Stable Diffusion
    max_length: int  # 77
    encoder: str = "CLIP"  # the text encoder's name, for explanations
    start: str = "<start>"  # how the start and end tokens are shown
    end: str = "<end>"

    @property
    def truncated(self) -> bool:
        return bool(self.dropped)


class StableDiffusionDenoiser:
    """Wraps a loaded diffusers SD/SDXL pipeline; implements the Denoiser protocol plus views."""

    def __init__(self, pipe, name: str = "stable-diffusion", height: int | None = None,
                 width: int | None = None, family: str | None = None, defaults: dict | None = None,
                 display_vae=None):
        import diffusers

        self.pipe, self.name = pipe, name
        # None: pictures are decoded by pipe.vae itself; else by this copy of it (use_bfloat16_decoder)
        self.display_vae = display_vae
        self.is_xl = isinstance(pipe, diffusers.StableDiffusionXLPipeline)
        self.family = family or ("sdxl" if self.is_xl else "sd1")
        scale = pipe.vae_scale_factor
        size = pipe.unet.config.sample_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.height, self.width = int(height or size * scale), int(width or size * scale)
        if self.height % scale or self.width % scale or min(self.height, self.width) < scale:
            raise InvalidInputError(f"Width and height must be multiples of {scale}, got {self.width}x{self.height}.")
        self.sample_shape = (pipe.unet.config.in_channels, self.height // scale, self.width // scale)
        self.prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
        self.device = pipe._execution_device
        self.dtype = pipe.unet.dtype
        self.defaults = {"steps": 30, "guidance": 7.5, "scheduler": "ddim", **(defaults or {})}
        self._encode = functools.lru_cache(maxsize=64)(self._encode_uncached)

    def resized(self, height: int, width: int) -> "StableDiffusionDenoiser":
        """The same loaded model at another resolution (shares the weights)."""
        return StableDiffusionDenoiser(self.pipe, self.name, height, width, self.family, self.defaults,
                                       self.display_vae)

    def use_bfloat16_decoder(self) -> None:
        """Decode pictures through a bfloat16 copy of the VAE; ``pipe.vae`` stays float32 for encoding and
        every other use. On a CPU with native bfloat16 (``runtime.native_bfloat16``) the decode takes half
        the time; bfloat16 keeps float32's range (no overflow, unlike float16), and emoji-ldm's pictures
        stay within a few levels of 255 of the float32 decode (tests/test_emoji_ldm.py measures it)."""
        import copy

        display = copy.deepcopy(self.pipe.vae).eval().requires_grad_(False)
        torch.nn.Module.to(display, torch.bfloat16)  # (diffusers' own .to() warns about keeping modules float32)
        self.display_vae = display

    # ---- schedulers ----------------------------------------------------------------------------------
    def make_scheduler(self, name: str, karras: bool = False):
        """Our scheduler ``name`` running the checkpoint's own training schedule and timestep spacing.

        Everything comes from the checkpoint's scheduler config (betas, prediction type, spacing,
        steps_offset), so results match the plain pipeline; only what must change for honest frames is
        overridden: no x0 clipping, PLMS without Runge-Kutta warm-up, DPM-Solver++ 2M.
        """
        check_choice("scheduler", name, SCHEDULERS)
        cls = SCHEDULERS[name]
        accepted = inspect.signature(cls.__init__).parameters
        overrides = {}
        if "clip_sample" in accepted:
            overrides["clip_sample"] = False
        if "skip_prk_steps" in accepted:
            overrides["skip_prk_steps"] = True
        if name == "dpmpp_2m":
            overrides.update(algorithm_type="dpmsolver++", solver_order=2)
        if karras:
            if "use_karras_sigmas" not in accepted:
                raise UnsupportedOptionError(f"Karras sigma spacing is not available for the {name!r} scheduler.")
            overrides["use_karras_sigmas"] = True
        return cls.from_config(self.pipe.scheduler.config, **overrides)

    def planned_frame_count(self, name: str, steps: int) -> int:
        scheduler = self.make_scheduler(name)
        scheduler.set_timesteps(steps)
        return len(scheduler.timesteps)

    # ---- the Denoiser protocol ------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> SDConditioning:
        return self._encode(check_prompt(prompt))

    @torch.no_grad()
    def _encode_uncached(self, prompt: str) -> SDConditioning:
        pipe = self.pipe
        if not self.is_xl:
            embeds, _ = pipe.encode_prompt(prompt, self.device, 1, False)
            return SDConditioning(prompt, embeds)
        embeds, _, pooled, _ = pipe.encode_prompt(prompt, device=self.device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
        if not prompt and pipe.config.force_zeros_for_empty_prompt:
            # SDXL was trained with zeroed text features for dropped captions: that is its "no prompt",
            # and what the pipeline uses as the unconditional side of guidance.
            embeds, pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
        proj = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else pooled.shape[-1]
        size = (self.height, self.width)
        time_ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=embeds.dtype,
                                          text_encoder_projection_dim=int(proj))
        return SDConditioning(prompt, embeds, pooled, time_ids.to(self.device))

    @torch.no_grad()
    def _unet(self, x: torch.Tensor, t: float, embeds, pooled, time_ids) -> torch.Tensor:
        added = {"text_embeds": pooled, "time_ids": time_ids} if self.is_xl else None
        out = self.pipe.unet(x.to(self.device, self.dtype), t, encoder_hidden_states=embeds,
                             added_cond_kwargs=added, return_dict=False)[0]
        return out.to("cpu", torch.float32)

    def predict(self, x_t: torch.Tensor, t: float, alpha_bar: float, cond: SDConditioning) -> torch.Tensor:
        """The UNet's native output (noise, or v for v-prediction checkpoints) for one conditioning."""
        return self._unet(x_t, t, cond.embeds, cond.pooled, cond.time_ids)

    def predict_pair(self, x_t, t: float, alpha_bar: float, uncond: SDConditioning, cond: SDConditioning):
        """(unconditional, conditional) outputs in one batch of two, exactly as the pipeline runs CFG."""
        cat = lambda a, b: None if a is None else torch.cat([a, b])  # noqa: E731
        out = self._unet(torch.cat([x_t, x_t]), t, cat(uncond.embeds, cond.embeds),
                         cat(uncond.pooled, cond.pooled), cat(uncond.time_ids, cond.time_ids))
        return out[:1], out[1:]

    # ---- pictures ------------------------------------------------------------------------------------
    @property
    def display_offset(self) -> list[float]:
        """The preview's zero per RGB channel (the noise is previewed through the same linear map)."""
        return preview_offset(self.family)

    def to_rgb(self, latent) -> np.ndarray:
        """Cheap linear latent -> RGB preview at latent resolution (64x64 for SD 1.5), (H, W, 3) uint8."""
        return latent_to_rgb(latent, self.family)

    def latent_channels_image(self, latent) -> np.ndarray:
        return latent_channels_image(latent)

    @torch.no_grad()
    def decode_checked(self, latent) -> tuple[np.ndarray, bool]:
        """Full VAE decode, as the pipeline does it: (H, W, 3) uint8 and whether the checkpoint's safety
        checker (if it ships one, SD 1.x does) blanked the picture."""
        z = np.asarray(latent, dtype=np.float32)
        image = self._vae_decode(z[None] if z.ndim == 3 else z[:1])
        flagged = False
        if self.safety_checked:
            image, nsfw = self.pipe.run_safety_checker(image, self.device, self.dtype)
            flagged = bool(nsfw and any(nsfw))
        return _to_uint8(image)[0], flagged

    @torch.no_grad()
    def decode_batch(self, latents) -> np.ndarray:
        """The full VAE decode of several latents (N, C, h, w) in one call: (N, H, W, 3) uint8. One batch
        costs about half of N single decodes on a CPU (bench/bench_emoji_ldm.py). Unchecked: for a model
        without a safety checker (emoji-ldm); a checked model decodes one picture at a time."""
        if self.safety_checked:
            raise ValueError("decode_batch skips the safety checker; use decode() for this model")
        return _to_uint8(self._vae_decode(np.ascontiguousarray(latents, dtype=np.float32)))

    def _vae_decode(self, latents: np.ndarray) -> torch.Tensor:
        """(N, C, h, w) latents as the sampler made them -> the VAE's pictures, (N, 3, H, W) in [-1, 1]."""
        vae = self.pipe.vae
        z = torch.as_tensor(latents).to(self.device, vae.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            c = z.shape[1]
            mean = torch.tensor(mean).view(1, c, 1, 1).to(z)
            std = torch.tensor(std).view(1, c, 1, 1).to(z)
            z = z * std / vae.config.scaling_factor + mean
        else:
            z = z / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        decoder = vae if self.display_vae is None else self.display_vae
        return decoder.decode(z.to(decoder.dtype), return_dict=False)[0].to(vae.dtype)

    @torch.no_grad()
    def encode_image(self, rgb) -> np.ndarray:
        """A photo as this model's clean latent x0, as diffusers' img2img pipeline makes it: centre crop to
        the model's aspect, resize, pixels to [-1, 1], the VAE's mean latent, scaled (the inverse of
        ``decode_checked``). (C, h, w) float32."""
        from PIL import Image

        rgb = np.asarray(rgb, dtype=np.uint8)
        h, w = rgb.shape[:2]
        aspect = self.width / self.height
        cw, ch = (min(w, round(h * aspect)), min(h, round(w / aspect)))
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = Image.fromarray(rgb[top:top + ch, left:left + cw]).resize((self.width, self.height), Image.LANCZOS)
        vae = self.pipe.vae
        x = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        z = vae.encode(x.to(self.device, vae.dtype)).latent_dist.mean
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            c = z.shape[1]
            z = (z - torch.tensor(mean).view(1, c, 1, 1).to(z)) * vae.config.scaling_factor / \
                torch.tensor(std).view(1, c, 1, 1).to(z)
        else:
            z = (z - (getattr(vae.config, "shift_factor", None) or 0.0)) * vae.config.scaling_factor
        return z[0].float().cpu().numpy()

    @property
    def safety_checked(self) -> bool:
        """Does every full decode go through the checkpoint's safety checker? Yes when the checkpoint ships
        one (SD 1.x does; SDXL has none in diffusers) unless the operator turned it off
        (DIFFUSION_VIZ_SAFETY_CHECKER=0: a server setting, not a control on the students' page)."""
        return getattr(self.pipe, "safety_checker", None) is not None and safety_checker_on()

    def decode(self, latent) -> np.ndarray:
        """The full VAE decode, or a picture that says it was hidden if the safety checker flagged it."""
        image, flagged = self.decode_checked(latent)
        return hidden_picture(image.shape[0], image.shape[1]) if flagged else image

    def latent_explanation(self) -> str:
        c, h, w = self.sample_shape
        pixels = self.height * self.width * 3
        return (
            f"This model does not denoise the {self.width}x{self.height} picture. It denoises a "
            f"{c}x{h}x{w} latent: {c * h * w:,} numbers, {pixels / (c * h * w):.0f}x fewer than the "
            f"{pixels:,} RGB values. The colour previews are a cheap linear guess from the latent; the VAE "
            "decoder turns the finished latent into pixels."
        )

    # ---- text ----------------------------------------------------------------------------------------
    def tokens(self, prompt: str) -> TokenView:
        """The prompt's tokens and the ones past the window (77 for CLIP), which SD silently drops."""
        tok = self.pipe.tokenizer
        ids = tok(check_prompt(prompt), add_special_tokens=False, truncation=False).input_ids
        room = tok.model_max_length - 2  # <start> and <end> take two of the 77 places
        text = lambda i: tok.decode([i]).strip() or tok.convert_ids_to_tokens(i)  # noqa: E731
        clip = "CLIP" in type(self.pipe.text_encoder).__name__
        marks = ("<start>", "<end>") if clip else (tok.cls_token or "<start>", tok.sep_token or "<end>")
        return TokenView([text(i) for i in ids[:room]], [text(i) for i in ids[room:]], tok.model_max_length,
                         "CLIP" if clip else "MiniLM", *marks)

    def embedding_view(self, prompt: str, dims: int = 64) -> dict:
        """A compact look at the text embedding: per-token vector length and a token x feature heatmap
        (first ``dims`` features; red positive, blue negative), as (77, dims, 3) uint8."""
        e = self.encode_prompt(prompt).embeds[0].float().cpu().numpy()  # (77, D)
        part = e[:, :dims]
        scaled = np.clip(part / (np.abs(part).max() + 1e-8), -1, 1)
        red, blue = np.clip(scaled, 0, 1), np.clip(-scaled, 0, 1)
        heat = np.stack([1 - blue, 1 - np.maximum(red, blue), 1 - red], axis=-1)
        return {"norms": np.linalg.norm(e, axis=1), "heatmap": (heat * 255).astype(np.uint8),
                "shape": tuple(e.shape)}


HIDDEN_TEXT = "This picture was hidden by the safety checker."


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) pictures in [-1, 1] -> (N, H, W, 3) uint8, as the pipeline's image processor rounds."""
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (images * 255).round().astype(np.uint8)


def safety_checker_on() -> bool:
    import os

    return os.environ.get("DIFFUSION_VIZ_SAFETY_CHECKER", "1").strip().lower() not in {"0", "false", "no", "off"}


def hidden_picture(height: int, width: int) -> np.ndarray:
    """A plain grey picture that says it was hidden (instead of the black square diffusers leaves)."""
    from ..render import notice_image

    return notice_image(HIDDEN_TEXT, height, width)


def scheduler_for(model, name: str, karras: bool = False):
    """The scheduler the loop should use for ``model``: the checkpoint's own for SD models, else None
    (None makes ``iter_frames`` build ours from the settings' schedule)."""
    make = getattr(model, "make_scheduler", None)
    return make(name, karras) if make is not None else None


def compare_guidance(denoiser, settings: SampleSettings, scales, scheduler_name: str | None = None,
                     should_stop=None):
    """Final latents for several guidance scales on the same seed: [(scale, (C, H, W) ndarray), ...];
    a run stopped by ``should_stop`` has final None (and the ones after it are not started)."""
    results = []
    for scale in scales:
        if should_stop is not None and should_stop():
            results.append((float(scale), None))
            continue
        s = SampleSettings(**{**settings.validated().__dict__, "guidance": scale})
        scheduler = scheduler_for(denoiser, scheduler_name or s.scheduler, s.karras)
        items = list(iter_frames(denoiser, s, capture=False, scheduler=scheduler, should_stop=should_stop))
        final = items[-1] if items and isinstance(items[-1], np.ndarray) else None
        results.append((float(scale), final))
    return results


@functools.lru_cache(maxsize=4)
def load_denoiser(name_or_path: str) -> StableDiffusionDenoiser:
    """A preset, folder or .safetensors file as a shared denoiser (one load per process)."""
    from .sd_loading import load_pipeline, preset_for

    pipe = load_pipeline(name_or_path)
    preset = preset_for(name_or_path)
    if preset is None:
        return StableDiffusionDenoiser(pipe, name_or_path)
    defaults = {"steps": preset.steps, "guidance": preset.guidance, "scheduler": preset.scheduler}
    return StableDiffusionDenoiser(pipe, preset.name, preset.height, preset.width, preset.family, defaults)


__all__ = ["SDConditioning", "StableDiffusionDenoiser", "TokenView", "compare_guidance", "load_denoiser",
           "scheduler_for"]
