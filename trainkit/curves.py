"""A PNG of the training curves, drawn from ``metrics.jsonl`` at the end of a run (matplotlib, headless Agg).

Each panel plots some keys of the records against ``epochs``, the training progress in epochs (0 before the first
step, 1 after the first epoch; records without it are placed at ``epoch + 1``). The default panels are a
classifier's: accuracy (``top1``, ``top5``, the EMA's when logged) and loss (evaluation loss and the training loss,
the mean over the epoch across all processes). Other runs pass their own panels (DINO: its loss, the teacher's
entropy, k-NN accuracy). A key missing from a record is a gap in its line; a key absent from every record is left
out. The file is the source of truth::

    plot_curves(output_dir / "metrics.jsonl", output_dir / "curves.png", title="resmlp_tiny on digits")
    plot_curves(path, png, panels=[Panel("k-NN accuracy", "%", (("knn_top1", "k-NN top-1"),))])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .metrics import read_jsonl


@dataclass(frozen=True)
class Panel:
    """One plot: a title, a y-axis label, and ``(record key, legend label)`` pairs."""

    title: str
    ylabel: str
    lines: tuple[tuple[str, str], ...]


CLASSIFIER_PANELS = (
    Panel(
        "evaluation accuracy",
        "accuracy (%)",
        (("top1", "top-1"), ("top5", "top-5"), ("ema_top1", "EMA top-1"), ("ema_top5", "EMA top-5")),
    ),
    Panel("loss", "loss", (("loss", "evaluation loss"), ("train_loss", "training loss (epoch mean)"))),
)


def _x(record: dict, index: int) -> float:
    if isinstance(record.get("epochs"), (int, float)):
        return float(record["epochs"])
    return float(record.get("epoch", index)) + 1.0


def plot_curves(
    metrics_path: str | os.PathLike,
    png_path: str | os.PathLike,
    *,
    title: str | None = None,
    panels: Sequence[Panel] = CLASSIFIER_PANELS,
) -> Path:
    """Draw ``panels`` from the records of ``metrics_path`` into ``png_path``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    records = read_jsonl(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path} holds no evaluation records; nothing to plot (was evaluation ever run?)")
    xs = [_x(r, i) for i, r in enumerate(records)]

    def series(key: str) -> list[float]:
        return [r[key] if isinstance(r.get(key), (int, float)) else math.nan for r in records]

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), constrained_layout=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for key, label in panel.lines:
            if any(isinstance(r.get(key), (int, float)) for r in records):
                ax.plot(xs, series(key), marker="o", markersize=3, label=label)
        ax.set(xlabel="epochs trained", ylabel=panel.ylabel, title=panel.title)
        ax.set_xlim(left=min(0.0, min(xs)))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
