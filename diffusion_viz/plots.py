"""Matplotlib figures for the lesson: schedules, pixel histograms, where a sampler's steps fall.

Figures use large fonts and thick lines so they read on a projector. The Agg backend is forced:
the server has no screen. Figures are plain ``matplotlib.figure.Figure`` objects, not pyplot ones:
pyplot keeps every figure it makes until it is closed, which on a server is a leak per request.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .schedules import Schedule  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
plt.rcParams.update({"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "lines.linewidth": 2.5})


def schedule_plot(schedules: list[Schedule], t: int | None = None, figsize=(9, 3.6)):
    """alpha-bar (the share of signal power left) and log-SNR against t, one line per schedule, a marker at t."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax_ab, ax_snr = fig.subplots(1, 2)
    for k, s in enumerate(schedules):
        c = COLORS[k % len(COLORS)]
        steps = np.arange(s.num_train_timesteps)
        ax_ab.plot(steps, s.alphas_cumprod, color=c, label=s.label)
        log_snr = np.clip(s.log_snr, -25, 25)
        ax_snr.plot(steps, log_snr, color=c, label=s.label)
        if t is not None:
            ax_ab.plot([t], [s.alphas_cumprod[t]], "o", color=c, markersize=9)
            ax_snr.plot([t], [log_snr[t]], "o", color=c, markersize=9)
    if t is not None:
        for ax in (ax_ab, ax_snr):
            ax.axvline(t, color="grey", linestyle=":", linewidth=1.5)
    ax_ab.set(title="signal power left: ᾱ (alpha-bar)", xlabel="training step t", ylim=(-0.02, 1.02))
    ax_snr.set(title="log signal-to-noise ratio", xlabel="training step t", ylabel="log SNR")
    ax_snr.axhline(0, color="black", linewidth=0.8)
    ax_ab.legend(fontsize=10, loc="upper right")
    for ax in (ax_ab, ax_snr):
        ax.grid(alpha=0.3)
    return fig


def histogram_plot(arrays: dict[str, np.ndarray], figsize=(9, 3.2), bins: int = 80):
    """Histogram of pixel values; the [-1, 1] range a screen can show is shaded."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    values = [np.asarray(a, dtype=np.float32).ravel() for a in arrays.values()]
    hi = max(1.5, float(max(np.abs(v).max() for v in values)))
    edges = np.linspace(-hi, hi, bins + 1)
    ax.axvspan(-1, 1, color="#ffe08a", alpha=0.5, label="displayable range [-1, 1]")
    for k, (name, v) in enumerate(zip(arrays, values)):
        outside = float(np.mean(np.abs(v) > 1.0)) * 100
        ax.hist(v, bins=edges, histtype="step", color=COLORS[k % len(COLORS)], linewidth=2,
                label=f"{name} ({outside:.0f}% outside)")
    ax.set(title="pixel values (each colour channel)", xlabel="value", ylabel="count")
    ax.legend(fontsize=10, loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def log_snr_steps_plot(columns: list[tuple[str, list[float]]], figsize=(9, 3.0)):
    """One row per run: a dot at each step's log-SNR. Shows where samplers spend their steps."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for k, (name, log_snrs) in enumerate(columns):
        v = np.clip(np.asarray(log_snrs, dtype=np.float64), -25, 25)
        ax.plot(v, np.full(len(v), k), "o", color=COLORS[k % len(COLORS)], markersize=6)
    ax.set_yticks(range(len(columns)), [name for name, _ in columns])
    ax.set_ylim(-0.7, len(columns) - 0.3)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(title="where each run's steps fall (left: noisy, right: clean)", xlabel="log SNR")
    ax.grid(axis="x", alpha=0.3)
    return fig
