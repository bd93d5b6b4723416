"""Loading Stable Diffusion checkpoints: presets, device/dtype choice, one load per process, clear errors.

Sources, in the order they are recognised:
  - a preset name from presets.toml ("sd15", "sdxl", ...) -> its hub id;
  - a local folder in diffusers format (``pipe.save_pretrained``) -> ``from_pretrained(folder)``;
  - a local ``.safetensors`` file -> ``from_single_file`` (diffusers fetches the matching configs from
    the hub on first use unless ``config=`` names a local diffusers folder);
  - any other hub id "org/name", only when the operator sets DIFFUSION_VIZ_ALLOW_ANY_MODEL=1.
Never ``trust_remote_code``, never pickle (.ckpt/.bin) weights. Every failure is a ``ModelLoadError``
whose message says what to do.

Environment: DIFFUSION_VIZ_MODEL (a preset, folder or file for the app/CLI), DIFFUSION_VIZ_MODELS (presets
the app offers, registry.py), DIFFUSION_VIZ_DEVICE (cuda/mps/cpu), DIFFUSION_VIZ_DTYPE (float16/bfloat16/
float32), DIFFUSION_VIZ_CPU_OFFLOAD=1, DIFFUSION_VIZ_ALLOW_ANY_MODEL=1, DIFFUSION_VIZ_ALLOW_DOWNLOADS=1 (a
checkpoint that is not on disk yet may be downloaded; the CLI allows it, the app only when the operator
says so).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError, UnknownNameError

PRESETS_FILE = Path(__file__).with_name("presets.toml")
SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Preset:
    name: str
    repo: str
    description: str
    family: str
    width: int
    height: int
    steps: int
    guidance: float
    scheduler: str
    vram_gb: float
    download_gb: float
    variant: str = ""


@functools.lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    with open(PRESETS_FILE, "rb") as f:
        raw = tomllib.load(f)
    return {name: Preset(name=name, **fields) for name, fields in raw.items()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def downloads_allowed() -> bool:
    """May a checkpoint that is not on disk be downloaded now? Only with DIFFUSION_VIZ_ALLOW_DOWNLOADS=1
    (the ``diffusion-viz`` command sets it for itself: there the user asked for it)."""
    return _env_flag("DIFFUSION_VIZ_ALLOW_DOWNLOADS")


def env_model() -> str | None:
    """The checkpoint the operator asked for with DIFFUSION_VIZ_MODEL (preset, folder or file), if any."""
    return os.environ.get("DIFFUSION_VIZ_MODEL", "").strip() or None


def looks_like_checkpoint(name: str) -> bool:
    """True for something load_pipeline might load that is not a registered model name."""
    if not isinstance(name, str) or not name:
        return False
    return name in load_presets() or os.sep in name or name.endswith(".safetensors") or \
        name.startswith((".", "~")) or bool(_HUB_ID.match(name)) or Path(name).exists()


# ---- device and dtype ------------------------------------------------------------------------------
def pick_device(requested: str | None = None):
    """CUDA > MPS > CPU, unless asked (argument or DIFFUSION_VIZ_DEVICE)."""
    import torch

    requested = requested or os.environ.get("DIFFUSION_VIZ_DEVICE") or None
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was requested but no CUDA GPU is visible to PyTorch.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("MPS was requested but is not available on this machine.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device, requested=None):
    """fp16 on GPUs (half the memory, tensor cores), fp32 on CPU (fp16 matmuls are slow or missing there)."""
    import torch

    requested = requested or os.environ.get("DIFFUSION_VIZ_DTYPE") or None
    if isinstance(requested, str):
        names = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
                 "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
        if requested not in names:
            raise UnknownNameError("dtype", requested, names)
        return names[requested]
    if requested is not None:
        return requested
    return torch.float32 if device.type == "cpu" else torch.float16


# ---- resolving a name ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    kind: str  # "hub", "folder" or "file"
    location: str
    preset: Preset | None = None


def resolve(name_or_path: str, allow_any_id: bool | None = None) -> Source:
    """Decide what a name means, before touching the network or the disk-heavy loaders."""
    presets = load_presets()
    if allow_any_id is None:
        allow_any_id = _env_flag("DIFFUSION_VIZ_ALLOW_ANY_MODEL")
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UnknownNameError("model", name_or_path, presets)
    name = name_or_path.strip()
    if name in presets:
        return Source("hub", presets[name].repo, presets[name])
    path = Path(name).expanduser()
    if path.is_dir():
        return Source("folder", str(path))
    if path.is_file():
        if path.suffix == ".safetensors":
            return Source("file", str(path))
        raise ModelLoadError(
            f"{path.name}: only .safetensors checkpoints are loaded. .ckpt/.bin files are Python pickles "
            "that can run arbitrary code; convert the checkpoint to .safetensors first."
        )
    by_repo = {p.repo: p for p in presets.values()}
    if name in by_repo:
        return Source("hub", name, by_repo[name])
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")) and not path.suffix == ".safetensors":
        if allow_any_id:
            return Source("hub", name)
        raise ModelLoadError(
            f"{name!r} is not one of the preset checkpoints ({', '.join(presets)}). The operator can allow "
            "any hub id with DIFFUSION_VIZ_ALLOW_ANY_MODEL=1, or point to a local folder or .safetensors file."
        )
    raise ModelLoadError(
        f"Checkpoint {name!r} not found: it is neither a preset ({', '.join(presets)}) nor an existing "
        "folder or .safetensors file."
    )


# ---- loading ---------------------------------------------------------------------------------------
def _chain(exc: BaseException):
    while exc is not None:  # diffusers re-raises hub errors as a plain OSError "from" the real cause
        yield exc
        exc = exc.__cause__ or exc.__context__


def _friendly_error(exc: BaseException, source: Source) -> ModelLoadError:
    """Tell offline, missing, gated and out-of-memory apart: each needs a different fix."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = source.location
    chain = list(_chain(exc))
    text = " <- ".join(f"{type(e).__name__}: {e}" for e in chain)
    low = text.lower()
    has = lambda *types: any(isinstance(e, types) for e in chain)  # noqa: E731
    if has(GatedRepoError):
        msg = f"{where} is gated on the Hugging Face hub: accept its licence there and log in (hf auth login)."
    elif has(RepositoryNotFoundError):
        msg = f"{where} does not exist on the Hugging Face hub (or is private)."
    elif has(MemoryError) or "out of memory" in low or "outofmemory" in low:
        msg = (f"Not enough memory to load {where}. Try DIFFUSION_VIZ_CPU_OFFLOAD=1 on a small GPU, a "
               "smaller preset (sd15, sd-turbo), or free memory used by other programs.")
    elif source.kind == "hub" and (has(LocalEntryNotFoundError, ConnectionError, TimeoutError) or any(
            s in low for s in ("offline", "connect", "name resolution", "name or service"))):
        msg = (f"Could not download {where}: the machine seems to be offline and the files are not in the "
               "local Hugging Face cache. Connect once to download it, or use a local folder.")
    elif source.kind == "folder":
        msg = f"{where} is not a complete diffusers checkpoint folder (model_index.json plus component folders)."
    else:
        msg = f"Could not load {where}."
    return ModelLoadError(f"{msg} (Details: {text[:400]})")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine gets its answer in seconds, not after minutes of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_hub_access(source: Source) -> None:
    from diffusers import DiffusionPipeline

    if source.kind != "hub":
        return
    try:  # already downloaded? Then the network is not needed to start.
        DiffusionPipeline.load_config(source.location, local_files_only=True)
        return
    except Exception:
        pass
    size = f" (about {source.preset.download_gb:g} GB)" if source.preset else ""
    if not downloads_allowed():
        name = source.preset.name if source.preset else source.location
        raise ModelLoadError(
            f"{name} is not downloaded on this server yet{size}. Downloading it is the operator's choice: "
            f"run `diffusion-viz download {name}` once, or start the app with DIFFUSION_VIZ_ALLOW_DOWNLOADS=1."
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"Cannot download {source.location}{size}: huggingface.co is not reachable (offline?) and the "
            "checkpoint is not in the local Hugging Face cache. Connect once to download it, copy a "
            "downloaded folder here and pass its path, or use the built-in emoji models."
        )


def _check_gpu_memory(device, dtype, preset: Preset | None, cpu_offload: bool) -> None:
    """Refuse early, with advice, rather than fail half-way through moving weights to the GPU."""
    import torch

    if device.type != "cuda" or preset is None or cpu_offload:
        return
    needed = preset.vram_gb * (2 if dtype == torch.float32 else 1)  # presets list fp16 figures
    free, _total = torch.cuda.mem_get_info(device)
    if free < needed * 1e9:
        raise ModelLoadError(
            f"{preset.name} needs about {needed:g} GB of GPU memory, {free / 1e9:.1f} GB is free. "
            "Set DIFFUSION_VIZ_CPU_OFFLOAD=1 (slower, much less GPU memory) or pick a smaller preset."
        )


def _pipeline_class(source: Source):
    import diffusers

    if source.kind == "file":
        from safetensors import safe_open

        try:
            with safe_open(source.location, framework="pt") as f:
                keys = f.keys()
        except Exception as exc:
            raise ModelLoadError(f"{source.location} is not a readable .safetensors file ({exc}).") from exc
        is_xl = any(k.startswith("conditioner.embedders.1.") for k in keys)
        return diffusers.StableDiffusionXLPipeline if is_xl else diffusers.StableDiffusionPipeline
    index = diffusers.DiffusionPipeline.load_config(source.location)  # model_index.json only
    name = index.get("_class_name", "?")
    if name not in SUPPORTED_PIPELINES:
        raise ModelLoadError(
            f"{source.location} is a {name}; diffusion-viz runs {' and '.join(SUPPORTED_PIPELINES)} checkpoints "
            "(SD 1.x, 2.x, XL and their Turbo versions). Flow-matching models (SD3, Flux) are not supported yet."
        )
    return getattr(diffusers, name)


def _load(source: Source, device, dtype, cpu_offload: bool, config_dir: str | None):
    import torch

    _check_hub_access(source)
    _check_gpu_memory(device, dtype, source.preset, cpu_offload)
    cls = _pipeline_class(source)
    if source.kind == "file":
        kwargs = {"dtype": dtype}
        if config_dir:
            kwargs["config"] = config_dir
        pipe = cls.from_single_file(source.location, **kwargs)
    else:
        kwargs = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": False}
        if source.preset and source.preset.variant and dtype == torch.float16:
            kwargs["variant"] = source.preset.variant
        pipe = cls.from_pretrained(source.location, **kwargs)
    # SDXL's VAE overflows in fp16 (its config says force_upcast): keep just the VAE in fp32.
    if dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
        pipe.vae.to(torch.float32)
    if cpu_offload:
        if device.type == "cpu":
            raise ModelLoadError("CPU offload only makes sense with a GPU; none is in use.")
        try:
            pipe.enable_model_cpu_offload(device=device)
        except (ImportError, ValueError) as exc:
            raise ModelLoadError(f"CPU offload needs the 'accelerate' package: pip install accelerate ({exc}).")
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


_cache: dict[tuple, object] = {}
_lock = threading.Lock()


def load_pipeline(
    name_or_path: str,
    device=None,
    dtype=None,
    allow_any_id: bool | None = None,
    cpu_offload: bool | None = None,
    config_dir: str | None = None,
):
    """The diffusers pipeline for a preset, folder, .safetensors file or (opt-in) hub id; loaded once per
    process and shared. Raises ModelLoadError (or UnknownNameError) with a message for people."""
    source = resolve(name_or_path, allow_any_id)
    device = pick_device(device)
    dtype = pick_dtype(device, dtype)
    if cpu_offload is None:
        cpu_offload = _env_flag("DIFFUSION_VIZ_CPU_OFFLOAD")
    key = (source.kind, source.location, str(device), str(dtype), bool(cpu_offload), config_dir)
    with _lock:  # one load at a time: two requests for the same model must not load it twice
        if key not in _cache:
            try:
                _cache[key] = _load(source, device, dtype, bool(cpu_offload), config_dir)
            except ModelLoadError:
                raise
            except Exception as exc:
                raise _friendly_error(exc, source) from exc
        return _cache[key]


def preset_for(name_or_path: str) -> Preset | None:
    try:
        return resolve(name_or_path, allow_any_id=True).preset
    except ModelLoadError:
        return None


def download_checkpoint(name_or_path: str, allow_any_id: bool | None = None) -> str:
    """Download a preset's (or an allowed hub id's) files into the Hugging Face cache without loading them;
    returns the local folder. What ``diffusion-viz download`` runs, so the app can start offline."""
    from diffusers import DiffusionPipeline

    source = resolve(name_or_path, allow_any_id)
    if source.kind != "hub":
        return source.location  # already on disk
    if not _hub_reachable():
        raise ModelLoadError(f"Cannot download {source.location}: huggingface.co is not reachable from here.")
    kwargs = {"use_safetensors": True}
    if source.preset and source.preset.variant:
        kwargs["variant"] = source.preset.variant
    try:
        return str(DiffusionPipeline.download(source.location, **kwargs))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message for people
        raise _friendly_error(exc, source) from exc
