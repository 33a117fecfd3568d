"""Looking inside a ResMLP: the paper's figures 2 and 3 (Touvron et al., arXiv 2105.03404, Fig. 2, 3, B.1, B.2).

Figure 2 shows, for each layer, the rows of the token-mixing matrix A that belong to the central patches, each
row reshaped to the patch grid: the weights with which one output patch reads every input patch. Figure 3 plots
per-layer sparsity, the share of weights whose magnitude is below 5% of the matrix's largest magnitude, for A and
for the channel MLP's B (fc1) and C (fc2). ``plot_model`` draws both into one PNG; ``python -m resmlp.viz`` (or
the ``resmlp-viz`` console script) does it for a checkpoint.

Only torch is imported at module import time; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, load_weights, read_checkpoint
from .cli import UsageError, UserError, add_debug_flag, run_main
from .config import ResMLPConfig
from .factory import create_model
from .model import ResMLP
from .registry import list_models
from .zoo import is_tag, resolve_checkpoint, split_name

DEFAULT_PRESET = "resmlp_s12"
SPARSITY_KEYS = ("token_mixing", "mlp_fc1", "mlp_fc2")
_COLOUR_QUANTILE = 0.99
_SPARSITY_LABELS = {"token_mixing": "token mixing A", "mlp_fc1": "MLP fc1 (B)", "mlp_fc2": "MLP fc2 (C)"}


def _check_layer(model: nn.Module, layer: int) -> int:
    depth = len(model.blocks)
    if not -depth <= layer < depth:
        raise IndexError(f"layer {layer} does not exist; this model has {depth} layers (0 to {depth - 1})")
    return layer % depth


def central_patches(grid: tuple[int, int], central: int) -> tuple[list[int], int, int]:
    """Token indices of the central ``central x central`` patches of a (rows, cols) grid, row-major.

    The block shrinks to the grid along any side shorter than ``central``. Returns ``(indices, block_rows,
    block_cols)``.
    """
    if central < 1:
        raise ValueError(f"central must be a positive number of patches, got {central}")
    rows, cols = grid
    block_rows, block_cols = min(central, rows), min(central, cols)
    top, left = (rows - block_rows) // 2, (cols - block_cols) // 2
    indices = [(top + r) * cols + left + c for r in range(block_rows) for c in range(block_cols)]
    return indices, block_rows, block_cols


def check_has_mixing_matrix(model: ResMLP) -> None:
    """Refuse a model whose token mixing is not the N x N matrix these figures draw (an ablation variant)."""
    mixer = getattr(getattr(model, "config", None), "token_mixer", "linear")
    if mixer != "linear":
        raise ValueError(
            f"this model mixes tokens with token_mixer={mixer!r}, which has no N x N token-mixing matrix to draw; "
            "the figures exist for token_mixer='linear' (any norm, act or pooling)"
        )


def token_mixing_rows(model: ResMLP, layer: int, central: int = 6) -> torch.Tensor:
    """Rows of layer ``layer``'s token-mixing matrix A for the central patches, each reshaped to the grid.

    Returns a ``(K_rows * K_cols, rows, cols)`` tensor (``K x K`` on grids of at least ``K`` patches per side);
    entry ``i`` is ``A[p_i].reshape(rows, cols)`` for the ``i``-th central patch ``p_i`` in row-major order, i.e.
    how much output patch ``p_i`` takes from every input patch.
    """
    check_has_mixing_matrix(model)
    index = _check_layer(model, layer)
    rows, cols = model.config.grid_size
    patches, _, _ = central_patches((rows, cols), central)
    matrix = model.blocks[index].token_mix.op.mixing_matrix().detach().float().cpu()
    return matrix[patches].reshape(len(patches), rows, cols)


def sparsity(weight: torch.Tensor, threshold: float = 0.05) -> float:
    """Share of entries with ``|w| < threshold * max|w|``, the paper's sparsity measure (Fig. 3, 5% threshold).

    An all-zero matrix counts as fully sparse.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold is a fraction of the largest weight, in (0, 1]; got {threshold}")
    if weight.numel() == 0:
        raise ValueError("cannot measure the sparsity of an empty tensor")
    magnitude = weight.detach().abs().float()
    peak = magnitude.max()
    if peak == 0:
        return 1.0
    return (magnitude < threshold * peak).float().mean().item()


def layer_sparsity(model: ResMLP, threshold: float = 0.05) -> dict[str, list[float]]:
    """Per-layer sparsity of the token-mixing matrix A and of the channel MLP's fc1 (B) and fc2 (C) weights."""
    check_has_mixing_matrix(model)
    out: dict[str, list[float]] = {key: [] for key in SPARSITY_KEYS}
    for block in model.blocks:
        mlp = block.channel_mix.op
        out["token_mixing"].append(sparsity(block.token_mix.op.mixing_matrix(), threshold))
        out["mlp_fc1"].append(sparsity(mlp.fc1.weight, threshold))
        out["mlp_fc2"].append(sparsity(mlp.fc2.weight, threshold))
    return out


def _mosaic(images: torch.Tensor, block_rows: int, block_cols: int, gap: int = 1) -> torch.Tensor:
    """Tile ``(K_r * K_c, h, w)`` images into one image, separated by NaN lines (drawn blank)."""
    _, height, width = images.shape
    out = torch.full((block_rows * (height + gap) - gap, block_cols * (width + gap) - gap), float("nan"))
    for i, image in enumerate(images):
        top, left = (i // block_cols) * (height + gap), (i % block_cols) * (width + gap)
        out[top : top + height, left : left + width] = image
    return out


def default_title(model: ResMLP) -> str:
    """A one-line description of the architecture, used when no title is given."""
    cfg = model.config
    rows, cols = cfg.grid_size
    return f"ResMLP d{cfg.embed_dim}, depth {cfg.depth}, patch {cfg.patch_size}, {rows}x{cols} patches"


def plot_model(
    model: ResMLP,
    out_path: str | os.PathLike,
    *,
    layers: list[int] | None = None,
    central: int = 6,
    threshold: float = 0.05,
    title: str | None = None,
) -> Path:
    """Draw the token-mixing rows of ``layers`` (default: all) and the per-layer sparsity curves into one PNG.

    Each layer panel tiles the rows of A for the central patches (see ``token_mixing_rows``), in a red/blue
    colour map symmetric around zero whose range is that layer's 99th percentile of |w| (larger weights
    saturate). Below, the sparsity of A, fc1 and fc2 per layer (``layer_sparsity``). Layer indices are 0-based,
    negative ones count from the end. Returns the path written.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ValueError(f"out_path must be a .png file, got {out_path}; for example {out_path.with_suffix('.png')}")
    depth = len(model.blocks)
    selected = sorted({_check_layer(model, i) for i in (range(depth) if layers is None else layers)})
    if not selected:
        raise ValueError("layers is empty; pass at least one layer index or None for all layers")
    _, block_rows, block_cols = central_patches(model.config.grid_size, central)
    rows, cols = model.config.grid_size
    curves = layer_sparsity(model, threshold)

    # A Figure with its own Agg canvas, never pyplot: no GUI backend and no global state is touched.
    ncols = min(len(selected), 6)
    nrows = math.ceil(len(selected) / ncols)
    width = max(2.6 * ncols + 0.8, 7.0)
    fig = Figure(figsize=(width, 2.75 * nrows + 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title or default_title(model), fontsize=12)
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")  # NaN: the lines between tiles
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.75 * nrows, 3.0])
    for k, layer in enumerate(selected):
        ax = top.add_subplot(nrows, ncols, k + 1)
        images = token_mixing_rows(model, layer, central)
        # Clip at a high percentile, not the maximum: late layers have a large spike at the patch itself that
        # would otherwise wash out the diffuse response around it (paper Fig. 2, the last layers).
        scale = images.abs().flatten().quantile(_COLOUR_QUANTILE).item() or images.abs().max().item() or 1.0
        shown = ax.imshow(_mosaic(images, block_rows, block_cols).numpy(), cmap=cmap, vmin=-scale, vmax=scale)
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        top.colorbar(shown, ax=ax, shrink=0.8, format="%.2g", extend="both").ax.tick_params(labelsize=7)
    caption = (
        f"Each tile is one row of A (one patch of the central {block_rows}x{block_cols} block, row-major) reshaped "
        f"to the {rows}x{cols} patch grid: how that output patch weighs every input patch. Red > 0 > blue; colour "
        f"scale per layer, clipped at the {100 * _COLOUR_QUANTILE:g}th percentile of |w|."
    )
    top.supxlabel(textwrap.fill(caption, width=int(15 * width)), fontsize=8, color="0.3")

    ax = bottom.add_subplot()
    for key, marker in zip(SPARSITY_KEYS, "os^"):
        ax.plot(range(depth), [100 * s for s in curves[key]], marker=marker, label=_SPARSITY_LABELS[key])
    ax.set_xlabel("layer")
    ax.set_ylabel(f"sparsity (%)\n|w| < {threshold:g} max|w|")
    ax.set_ylim(0, 100)
    ax.set_xticks(range(depth))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("per-layer sparsity", fontsize=10)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png", dpi=110)
    return out_path


def load_model(checkpoint: str | os.PathLike, preset: str | None = None) -> ResMLP:
    """Model from ``checkpoint``: built from the file's own config when it carries one and no preset is named,
    otherwise ``create_model(preset or "resmlp_s12", checkpoint=...)`` (official, timm and DINO files)."""
    if preset is None:
        state_dict, stored = read_checkpoint(checkpoint)
        if stored is not None:
            model = ResMLP(ResMLPConfig.from_dict(stored))
            load_weights(model, state_dict)
            return model
    return create_model(preset or DEFAULT_PRESET, checkpoint=checkpoint)


def _parse_layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated integers like 0,5,11, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``resmlp-viz`` command line."""
    parser = argparse.ArgumentParser(
        prog="resmlp-viz",
        description="Draw a ResMLP's token-mixing rows and per-layer weight sparsity (paper Fig. 2 and 3).",
    )
    parser.add_argument("--checkpoint", help="weights to inspect (ours, official deit, timm or DINO files)")
    parser.add_argument(
        "--model",
        help=f"preset name; needed for files without a config (default: {DEFAULT_PRESET}, or the file's own config)",
    )
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--layers", type=_parse_layers, help="layer indices to draw, e.g. 0,5,11 (default: all)")
    parser.add_argument("--central", type=int, default=6, help="central KxK patches whose rows are drawn (6)")
    parser.add_argument("--threshold", type=float, default=0.05, help="sparsity threshold, fraction of max (0.05)")
    parser.add_argument("--sparsity-json", help="also write the per-layer sparsity to this JSON file")
    add_debug_flag(parser)
    return parser


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.model is not None and args.model not in list_models():
        raise UsageError(f"unknown preset {args.model!r}; choose one of: {', '.join(list_models())}")
    if args.checkpoint is not None and is_tag(args.checkpoint):  # released weights by name: fetch them
        args.model = args.model or split_name(args.checkpoint)[0]
        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    if args.checkpoint is not None and Path(args.checkpoint).is_dir():
        raise UsageError(f"--checkpoint {args.checkpoint} is a directory; pass the checkpoint file inside it")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint file not found: {args.checkpoint}")
    if args.central < 1:
        raise UsageError(f"--central must be a positive number of patches, got {args.central}")
    if not 0.0 < args.threshold <= 1.0:
        raise UsageError(f"--threshold is a fraction of the largest weight, in (0, 1]; got {args.threshold}")
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out must be a .png file, got {args.out}")
    if args.checkpoint is None:
        name = args.model or DEFAULT_PRESET
        model = create_model(name)
        title = f"{name}: RANDOM INIT (no --checkpoint), for comparison only"
    else:
        try:
            model = load_model(args.checkpoint, args.model)
        except (ValueError, KeyError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise UserError(f"{args.checkpoint}: {str(err).strip(chr(39) + chr(34))}") from None
        title = f"{default_title(model)}  |  {Path(args.checkpoint).name}"
    model.eval()
    try:
        out = plot_model(
            model, args.out, layers=args.layers, central=args.central, threshold=args.threshold, title=title
        )
    except (IndexError, ValueError, KeyError) as err:  # a layer index or option the model does not have
        raise UsageError(str(err).strip("'\"")) from None
    if args.sparsity_json:
        record = {"title": title, "threshold": args.threshold, **layer_sparsity(model, args.threshold)}
        Path(args.sparsity_json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m resmlp.viz`` and ``resmlp-viz``; returns the exit status.

    Bad input is one line on stderr (``resmlp.cli``): status 2 for a wrong option, 1 for a checkpoint that cannot
    be used; ``--debug`` shows the traceback.
    """
    try:
        return run_main(_main, sys.argv[1:] if argv is None else argv, prog="resmlp-viz")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
