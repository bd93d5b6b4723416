"""Loss curves of a training run (its loss.csv) as a PNG: the raw loss faint, a moving average on top."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_loss(csv_path: Path, column: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one column; a resumed run appends, so a step may repeat: the last one wins."""
    by_step: dict[int, float] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            by_step[int(row["step"])] = float(row[column])
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def plot_loss(csv_path: Path, png_path: Path, title: str, column: str | list[str] = "loss", window: int = 50) -> Path:
    """One curve per column (e.g. a distilled UNet's noise error "loss" and its distance to the teacher "kd")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [column] if isinstance(column, str) else list(column)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for col, (faint, strong) in zip(columns, [("#9bb7d4", "#1f4e8c"), ("#f2b38a", "#b04a0c")]):
        steps, values = read_loss(csv_path, col)
        ax.plot(steps, values, color=faint, linewidth=0.6, label=f"{col}, per step")
        if len(values) >= window:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, color=strong, linewidth=1.8, label=f"{col}, mean of {window} steps")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(columns[0] if len(columns) == 1 else "mean squared error")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path)
    plt.close(fig)
    return png_path
