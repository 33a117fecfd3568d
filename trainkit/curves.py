"""A PNG of the training curves, drawn from ``metrics.jsonl`` at the end of a run (matplotlib, headless Agg).

Left panel: top-1 and top-5 accuracy (percent) against epoch; right panel: evaluation loss and, when logged,
``train_loss``. Any other numeric key present in every record is ignored; the file is the source of truth::

    plot_curves(output_dir / "metrics.jsonl", output_dir / "curves.png", title="resmlp_tiny on digits")
"""

from __future__ import annotations

import os
from pathlib import Path

from .metrics import read_jsonl


def plot_curves(metrics_path: str | os.PathLike, png_path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Draw accuracy and loss curves from ``metrics_path`` into ``png_path``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    records = read_jsonl(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path} holds no evaluation records; nothing to plot (was evaluation ever run?)")
    epochs = [r.get("epoch", i) for i, r in enumerate(records)]

    def series(key: str) -> list[float]:
        return [r[key] if isinstance(r.get(key), (int, float)) else float("nan") for r in records]

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key in ("top1", "top5"):
        acc_ax.plot(epochs, series(key), marker="o", markersize=3, label=key)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="evaluation accuracy")
    acc_ax.grid(alpha=0.3)
    acc_ax.legend()
    loss_ax.plot(epochs, series("loss"), marker="o", markersize=3, label="eval loss")
    if any("train_loss" in r for r in records):
        loss_ax.plot(epochs, series("train_loss"), marker="o", markersize=3, label="train loss")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()
    if title:
        fig.suptitle(title)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
