"""Command-line pieces shared by ``ssl_dino.knn`` and ``ssl_dino.linear``: load a backbone, embed both splits once.

Both commands run in one process (``python -m``) or under ``accelerate launch`` with several: data are sharded by
``accelerator.prepare``, features gathered without duplicates, and the evaluation itself runs on the main process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .backbone import native_input_size
from .data import build_dataset, eval_transform, num_classes_of
from .features import extract_features, load_features, save_features
from .pretrained import load_backbone

Bundle = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


def evaluation_parser(description: str) -> argparse.ArgumentParser:
    """The options every evaluation command shares (model, data, feature dump)."""
    parser = argparse.ArgumentParser(description=description)
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", help="checkpoint file (DINO, resmlp, deit or timm layout)")
    model.add_argument(
        "--checkpoint-key", default=None, help="container entry to read: teacher (default for DINO files) or student"
    )
    model.add_argument("--arch", help="resmlp preset or timm model; needed for timm and for --random-init")
    model.add_argument("--random-init", action="store_true", help="evaluate --arch at random initialisation")
    model.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="digits", help="'digits' (built-in) or a folder root with train/ and val/")
    data.add_argument(
        "--img-size", type=int, default=None, help="input size for --random-init or timm (default: the preset's)"
    )
    data.add_argument(
        "--crop-ratio", type=float, default=None, help="centre-crop ratio (default 0.875 as DINO; 1.0 for digits)"
    )
    data.add_argument("--batch-size", type=int, default=64, help="images per process per batch")
    data.add_argument("--num-workers", type=int, default=0, help="data loading workers per process")
    feats = parser.add_argument_group("features")
    feats.add_argument("--dump-features", metavar="DIR", help="save the extracted features and labels to DIR")
    feats.add_argument("--load-features", metavar="DIR", help="evaluate features dumped earlier (no model, no data)")
    parser.add_argument("--results", metavar="PATH", help="also write the results as JSON to PATH")
    return parser


def features_for(args: argparse.Namespace) -> Bundle | None:
    """``(train_x, train_y, test_x, test_y, num_classes)`` on the main process, None on the others."""
    if args.load_features:
        return load_features(args.load_features)
    from accelerate import Accelerator  # only the command needs it, not the library functions

    if args.checkpoint is None and not args.random_init:
        raise SystemExit("error: pass --checkpoint PATH, or --random-init --arch NAME (or --load-features DIR)")
    accelerator = Accelerator()
    torch.manual_seed(args.seed)
    backbone = load_backbone(
        None if args.random_init else args.checkpoint, arch=args.arch, key=args.checkpoint_key, img_size=args.img_size
    ).to(accelerator.device)
    img_size = _input_size(backbone, args.img_size)
    crop_ratio = args.crop_ratio if args.crop_ratio is not None else (1.0 if args.data == "digits" else 0.875)
    transform = eval_transform(img_size, crop_ratio=crop_ratio)
    splits = {}
    for split in ("train", "val"):
        dataset = build_dataset(args.data, split, transform, img_size=img_size)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers
        )
        splits[split] = extract_features(backbone, accelerator.prepare(loader), accelerator=accelerator)
    num_classes = num_classes_of(dataset)
    if not accelerator.is_main_process:
        return None
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["val"]
    accelerator.print(f"features: train {tuple(train_x.shape)}, val {tuple(test_x.shape)}, {num_classes} classes")
    if args.dump_features:
        save_features(args.dump_features, train_x, train_y, test_x, test_y, num_classes=num_classes)
        accelerator.print(f"features dumped to {args.dump_features}")
    return train_x, train_y, test_x, test_y, num_classes


def write_results(path: str | None, results: dict) -> None:
    """Write ``results`` as JSON to ``path`` when given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2) + "\n")


def _input_size(backbone: torch.nn.Module, requested: int | None) -> int:
    """The square input side: the backbone's fixed size, else the requested one, else 224."""
    native = native_input_size(backbone)
    if native is None:
        return requested or 224
    if native[0] != native[1]:
        raise ValueError(f"evaluation uses square crops; the backbone takes {native[0]}x{native[1]}")
    return native[0]
