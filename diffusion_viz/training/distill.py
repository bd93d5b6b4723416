"""Stage 3 of emoji-ldm (optional): a smaller, faster UNet that learns from the trained one.

    diffusion-viz train-ldm --teacher runs/teacher --layers-per-block 1 --out runs/ldm-small

Block removal + knowledge distillation, as BK-SDM did for Stable Diffusion (Kim et al. 2023, "BK-SDM:
A Lightweight, Fast, and Cheap Version of Stable Diffusion"):

1. The student is the teacher's architecture with fewer resnet + attention pairs per block (the
   resolutions, channels and cross-attention at 16x16 and 8x8 stay), and optionally without the
   mid block (``--no-mid-block``: the up path then starts from the down path's last output, as
   BK-SDM-Small does).
2. It starts from the teacher's weights: each kept pair copies the teacher's pair at the same place
   (``student_from_teacher``). In an up block the last pair is kept, since it is the one that reads
   the down path's first skip (the conv_in features) and writes the block's output.
3. It then learns the ordinary noise-prediction loss plus the distance to the teacher's own prediction
   for the same noisy latent, timestep and caption (output-level distillation):

       || eps - student(z_t) ||^2  +  kd_weight * || teacher(z_t) - student(z_t) ||^2

   The teacher's prediction is a low-variance target (the true noise is one random draw consistent with
   z_t; the teacher's is its estimate of the mean), so the student recovers in far fewer steps than
   training from scratch would take.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

_BLOCK_PAIR = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$")


def pruned_config(config: dict, layers_per_block: int, mid_block: bool = True) -> dict:
    """The teacher's UNet config with ``layers_per_block`` resnet + attention pairs per down block (one
    more per up block, as diffusers builds them); without its mid block if ``mid_block`` is False."""
    if not 1 <= layers_per_block <= int(config.get("layers_per_block", 2)):
        raise ValueError(f"layers_per_block must be 1..{config.get('layers_per_block', 2)} (the teacher's), "
                         f"not {layers_per_block}")
    return dict(config, layers_per_block=int(layers_per_block),
                **({} if mid_block else {"mid_block_type": None}))


def teacher_key(student_key: str, student_layers: int, teacher_layers: int) -> str:
    """Which teacher weight a student weight starts from. Down blocks keep their first pairs; up blocks
    (``layers + 1`` pairs each) keep their first pairs and their last one."""
    m = _BLOCK_PAIR.match(student_key)
    if not m:
        return student_key
    kind, block, part, j, rest = m.groups()
    j = int(j)
    if kind == "up_blocks" and j == student_layers:  # the up block's last pair -> the teacher's last
        j = teacher_layers
    return f"{kind}.{block}.{part}.{j}.{rest}"


@torch.no_grad()
def student_from_teacher(student: torch.nn.Module, teacher: torch.nn.Module) -> list[str]:
    """Copy the kept pairs (and everything outside the blocks) from teacher to student. Raises
    ValueError if a student weight has no teacher weight of the same shape. Returns the teacher's
    weights that were left out (the removed pairs)."""
    s_layers, t_layers = student.config.layers_per_block, teacher.config.layers_per_block
    t_state = teacher.state_dict()
    used, new = set(), {}
    for key, value in student.state_dict().items():
        source = teacher_key(key, s_layers, t_layers)
        if source not in t_state or t_state[source].shape != value.shape:
            raise ValueError(f"student weight {key} {tuple(value.shape)} has no teacher weight {source} of that shape")
        new[key] = t_state[source].clone()
        used.add(source)
    student.load_state_dict(new)
    return sorted(set(t_state) - used)


def distill_loss(student, teacher, z_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                 noise: torch.Tensor, kd_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (loss, task MSE, distillation MSE): the task is the noise, the distillation target the
    teacher's prediction for the same inputs."""
    with torch.no_grad():
        target = teacher(z_t, t, encoder_hidden_states=context).sample
    pred = student(z_t, t, encoder_hidden_states=context).sample
    task = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
    kd = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
    return task + kd_weight * kd, task, kd
