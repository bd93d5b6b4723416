"""What the app shows only for Stable Diffusion models, without gradio (tested directly).

A model counts as "Stable Diffusion" by what it can do, not by its name: it has ``decode`` (the VAE),
``to_rgb`` (the cheap linear latent preview) and ``tokens`` (the CLIP tokenizer). For such a model:

- every step streams through the cheap linear preview (``logic.player_column`` uses the model's ``to_rgb``);
- the step the viewer is looking at is decoded with the full VAE on request (``decode_step``), from a
  small store of recent runs (``RunStore``); the final image is decoded at the end of every run;
- the latent channels themselves (``latent_channels_image``) come with that request;
- the prompt's tokens (with the 77-token window) and a compact look at the text embedding;
- the same seed at several guidance scales (``guidance_images``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import validation
from ..errors import InvalidInputError
from ..sampling import SampleSettings, Trajectory

GUIDANCE_SCALES = (1.0, 3.0, 7.5, 12.0)
MAX_GUIDANCE_SCALES = 6


def is_sd(model) -> bool:
    """True for a latent model with a VAE decoder and a CLIP tokenizer (duck-typed)."""
    return all(callable(getattr(model, name, None)) for name in ("decode", "to_rgb", "tokens"))


# ---- runs kept for decode-on-demand ----------------------------------------------------------------
def run_id(model_name: str, settings: dict) -> str:
    """A run is fully determined by its model and settings (sampling is deterministic per seed)."""
    key = json.dumps([model_name, settings], sort_keys=True, default=str)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class StoredRun:
    model_name: str
    model: object
    trajectory: Trajectory


class RunStore:
    """The last few Stable Diffusion runs, by id, so a click can decode any of their steps.

    Frames keep references to the step's latents only (4x64x64 float32 = 64 KB each for SD 1.5), so a
    30-step run with guidance is ~8 MB; ``capacity`` runs are kept, the oldest dropped first.
    """

    def __init__(self, capacity: int = 8, recipes: int = 4096):
        self.capacity, self.recipes = capacity, recipes
        self._runs: OrderedDict[str, StoredRun] = OrderedDict()
        # Runs are deterministic: an evicted run (or one replayed from the result cache) is sampled
        # again from its recipe, a few hundred bytes each.
        self._recipes: OrderedDict[str, tuple[str, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, model_name: str, model, trajectory: Trajectory) -> str:
        rid = run_id(model_name, trajectory.settings)
        with self._lock:
            self._runs[rid] = StoredRun(model_name, model, trajectory)
            self._runs.move_to_end(rid)
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)
            self._recipes[rid] = (model_name, dict(trajectory.settings))
            self._recipes.move_to_end(rid)
            while len(self._recipes) > self.recipes:
                self._recipes.popitem(last=False)
        return rid

    def get(self, rid: str, load_model=None) -> StoredRun:
        """The run with id ``rid``; sampled again (with ``load_model(name)``) if only its recipe is left."""
        rid = str(rid or "")
        with self._lock:
            run = self._runs.get(rid)
            if run is not None:
                self._runs.move_to_end(rid)
            recipe = self._recipes.get(rid)
        if run is not None:
            return run
        if recipe is None or load_model is None:
            raise InvalidInputError("That run is no longer kept on the server (or none was made yet). "
                                    "Press Generate with a Stable Diffusion model, then decode a step.")
        from ..sampling import sample

        model_name, settings = recipe
        model = load_model(model_name)
        traj = sample(model, SampleSettings(**settings))
        self.remember(model_name, model, traj)
        return StoredRun(model_name, model, traj)

    def __len__(self) -> int:
        return len(self._runs)


RUNS = RunStore()


# ---- pictures ------------------------------------------------------------------------------------
def final_image(model, latent) -> np.ndarray:
    """The finished picture: the full VAE decode for SD models, the model's own preview otherwise."""
    if is_sd(model):
        return model.decode(latent)
    to_rgb = getattr(model, "to_rgb", None)
    if callable(to_rgb):
        return to_rgb(latent)
    from ..render import image_to_rgb

    return image_to_rgb(latent)


def channels_image(model, latent) -> np.ndarray:
    fn = getattr(model, "latent_channels_image", None)
    if callable(fn):
        return fn(latent)
    from ..models.latent_preview import latent_channels_image

    return latent_channels_image(latent)


def decode_step(model, frames, index) -> dict:
    """Full VAE decode of one step: predicted x0 and x_t, plus their latent channels as grey tiles.

    ``frames``: a trajectory's frames (or a Trajectory); ``index``: the frame's position in the run
    (``Frame.index``, which the player sends, also after thinning long runs).
    """
    if isinstance(frames, Trajectory):
        frames = frames.frames
    if not frames:
        raise InvalidInputError("This run has no steps to decode.")
    i = validation._as_int("Step", index)
    by_index = {f.index: f for f in frames}
    if i not in by_index:
        raise InvalidInputError(f"Step index must be between 0 and {len(frames) - 1}, got {i}.")
    f = by_index[i]
    return {
        "index": i,
        "step": i + 1,
        "steps": len(frames),
        "t": float(f.timestep),
        "alpha_bar": float(f.alpha_bar),
        "x0": model.decode(f.x0),
        "x_t": model.decode(f.x_t),
        "x0_channels": channels_image(model, f.x0),
        "x_t_channels": channels_image(model, f.x_t),
        "x0_preview": model.to_rgb(f.x0),
    }


def decode_caption(result: dict) -> str:
    ab = result["alpha_bar"]
    return (f"**Step {result['step']} of {result['steps']}** (t = {result['t']:.0f}, ᾱ = {ab:.3f}: the "
            f"clean latent is scaled by sqrt(ᾱ) = {math.sqrt(max(ab, 0.0)):.3f} in x<sub>t</sub>). "
            "Left: the model's guess of the clean latent, "
            "through the full VAE decoder. Next: what the model sees (x<sub>t</sub>) through the same "
            "decoder. Grey tiles: the 4 latent channels themselves (black = −3, white = +3).")


# ---- text ----------------------------------------------------------------------------------------
def conditioning_info(model, prompt: str) -> dict:
    """What an SD model reads from the prompt: its tokens, and the ones past the window (77 for CLIP)."""
    prompt = validation.check_prompt(prompt)
    view = model.tokens(prompt or "x")  # the encoder's window and start/end marks, also for ""
    names = {"max_length": int(view.max_length), "encoder": getattr(view, "encoder", "CLIP"),
             "start": getattr(view, "start", "<start>"), "end": getattr(view, "end", "<end>")}
    if not prompt:
        return {"kind": "unconditional", "prompt": "", **names}
    return {"kind": "tokens", "prompt": prompt, "tokens": list(view.tokens), "dropped": list(view.dropped),
            "truncated": bool(view.truncated), **names}


def _tok(t: str) -> str:
    t = t.replace("`", "ˋ").replace("|", "¦")
    return f"`{t}`" if t.strip() else "`␣`"


def tokens_markdown(info: dict) -> str:
    """The tokens as the text encoder reads them; tokens past the window are flagged, struck through."""
    start, end, enc = info.get("start", "<start>"), info.get("end", "<end>"), info.get("encoder", "CLIP")
    if info["kind"] == "unconditional":
        return (f"**Empty prompt:** the text encoder ({enc}) still produces {info.get('max_length', 77)} vectors "
                f"(`{start}`, `{end}` and padding tokens); with guidance this is the “no prompt” side.")
    room = info["max_length"] - 2
    used = len(info["tokens"])
    out = [f"**The tokens the text encoder ({enc}) reads** ({used} of {room} places; "
           f"the other 2 of {info['max_length']} are `{start}` and `{end}`):", "",
           " · ".join(_tok(t) for t in info["tokens"])]
    if info["truncated"]:
        n = len(info["dropped"])
        out += ["", f"⚠️ **Too long: {n} token{'s' if n != 1 else ''} past the {info['max_length']}-token "
                    "window are silently dropped** (Stable Diffusion does the same) and have no effect on the "
                    "picture: ",
                " · ".join(f"~~{_tok(t)}~~" for t in info["dropped"])]
    return "\n".join(out)


def embedding_image(model, prompt: str, dims: int = 64, scale: int = 4) -> tuple[np.ndarray, str]:
    """The text embedding as a small heatmap: one column per token slot (77), one row per feature
    (the first ``dims``); red positive, blue negative. Nearest-neighbour upscaled by ``scale``."""
    view = model.embedding_view(prompt, dims=dims)
    heat = np.ascontiguousarray(np.asarray(view["heatmap"]).transpose(1, 0, 2))  # (dims, 77, 3)
    heat = np.repeat(np.repeat(heat, scale, axis=0), scale, axis=1)
    slots, width = view["shape"]
    norms = np.asarray(view["norms"])
    info = conditioning_info(model, prompt)
    n_real = len(info.get("tokens", [])) + 2  # <start>, the tokens, <end>
    start, end = info.get("start", "<start>"), info.get("end", "<end>")
    caption = (f"**The prompt as numbers:** {slots} token slots × {width} features each (showing the first "
               f"{min(dims, width)}). Columns left to right: `{start}`, your {n_real - 2} token(s), `{end}`, "
               "then padding. Red = positive, blue = negative. The UNet attends to all "
               f"{slots} slots, padding included. Vector length: `{start}` {norms[0]:.1f}, "
               f"mean of the others {norms[1:].mean():.1f}.")
    return heat, caption


# ---- guidance comparison -------------------------------------------------------------------------
def check_scales(scales) -> list[float]:
    if isinstance(scales, str):
        scales = [s for s in scales.replace(";", ",").split(",") if s.strip()]
    scales = [validation.check_guidance(s) for s in (scales or [])]
    if not scales:
        raise InvalidInputError("Give at least one guidance scale to compare.")
    if len(scales) > MAX_GUIDANCE_SCALES:
        raise InvalidInputError(f"Compare at most {MAX_GUIDANCE_SCALES} guidance scales, got {len(scales)}.")
    return scales


def guidance_images(model, settings: SampleSettings, scales=GUIDANCE_SCALES,
                    should_stop=None) -> list[tuple[float, np.ndarray]]:
    """The same prompt and seed at each guidance scale: [(scale, decoded final picture), ...]."""
    from ..errors import Stopped
    from ..models.stable_diffusion import compare_guidance

    if not is_sd(model):
        raise InvalidInputError("The guidance comparison is for Stable Diffusion models; pick one first.")
    finals = compare_guidance(model, settings, check_scales(scales), should_stop=should_stop)
    if any(final is None for _, final in finals):
        raise Stopped("Stopped before every guidance scale finished.")
    return [(scale, model.decode(final)) for scale, final in finals]


# ---- explanations --------------------------------------------------------------------------------
def terminal_signal(model) -> float | None:
    """sqrt(ᾱ_T): the fraction of the picture still left at the checkpoint's last training step."""
    try:
        abar = model.make_scheduler("ddim").alphas_cumprod[-1]
        return float(math.sqrt(float(abar)))
    except Exception:  # noqa: BLE001 - an explanation must never break the page
        return None


def schedule_note(model) -> str:
    s = terminal_signal(model)
    tail = f" Its last training step still keeps sqrt(ᾱ_T) = {s:.3f} of the signal: never pure noise." if s else ""
    return "Does not apply: Stable Diffusion runs its checkpoint's own training schedule." + tail


def explanation_markdown(model) -> str:
    """What is different about a latent model, shown while it is selected."""
    s = terminal_signal(model)
    lines = [f"**Latent diffusion.** {model.latent_explanation()}"]
    if s is not None:
        lines.append(f"Its training schedule never reaches pure noise: at the last training step "
                     f"sqrt(ᾱ_T) = {s:.3f} of the signal is left, yet sampling starts from pure noise.")
    lines.append("Press **Decode this step with the VAE** to see the step you are looking at through the "
                 "full decoder (slower: seconds per picture on a CPU for a real checkpoint).")
    return "\n\n".join(lines)


def prompt_info(model) -> str:
    """The prompt box's hint for a latent model: how many tokens its text encoder reads."""
    view = model.tokens("x")
    return (f"What to draw. {getattr(view, 'encoder', 'CLIP')} reads at most {view.max_length - 2} tokens; "
            "the rest is dropped (flagged below).")


def defaults(model) -> dict:
    d = dict(getattr(model, "defaults", None) or {})
    return {"steps": int(d.get("steps", 30)), "guidance": float(d.get("guidance", 7.5)),
            "scheduler": str(d.get("scheduler", "ddim"))}
