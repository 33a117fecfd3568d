"""Command-line pieces shared by ``ssl_dino.knn`` and ``ssl_dino.linear``: load a backbone, embed both splits once.

Both commands run in one process (``python -m``) or under ``accelerate launch`` with several: data are sharded by
``accelerator.prepare``, features gathered without duplicates, and the evaluation itself runs on the main process.
``--data`` takes the data grammar shared with every other command (``trainkit.data``); bad input is one line on
stderr (``resmlp.cli``), status 2 for a wrong option and 1 for a file or folder that cannot be used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import resmlp
from resmlp.cli import UsageError, UserError, add_debug_flag
from trainkit.data import GRAMMAR
from trainkit.preflight import check_output_dir

from .backbone import native_input_size
from .data import build_dataset, eval_transform, num_classes_of
from .features import extract_features, load_features, save_features
from .pretrained import load_backbone

SKIP_FLAG = "--skip-corrupt-images"

Bundle = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


def evaluation_parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The options every evaluation command shares (model, data, feature dump)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", help="checkpoint file (DINO, resmlp, deit or timm layout)")
    model.add_argument(
        "--checkpoint-key", default=None, help="container entry to read: teacher (default for DINO files) or student"
    )
    model.add_argument("--arch", help="resmlp preset or timm model; needed for timm and for --random-init")
    model.add_argument("--random-init", action="store_true", help="evaluate --arch at random initialisation")
    model.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="digits", help=f"{GRAMMAR}; train/ is the k-NN bank, val/ the queries")
    data.add_argument(SKIP_FLAG, action="store_true", help="leave unreadable images out (counted) instead of stopping")
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
    add_debug_flag(parser)
    return parser


def features_for(args: argparse.Namespace) -> Bundle | None:
    """``(train_x, train_y, test_x, test_y, num_classes)`` on the main process, None on the others."""
    if args.load_features:
        return load_features(args.load_features)
    from accelerate import Accelerator  # only the command needs it, not the library functions

    if args.checkpoint is None and not args.random_init:
        raise UsageError("pass --checkpoint PATH, or --random-init --arch NAME (or --load-features DIR)")
    if args.random_init and args.arch is None:
        raise UsageError("--random-init needs --arch NAME (a resmlp preset or a timm model)")
    if not args.random_init and resmlp.zoo.is_tag(args.checkpoint):  # released weights by name: fetch them
        args.checkpoint = str(resmlp.zoo.resolve_checkpoint(args.checkpoint))
    if not args.random_init and Path(args.checkpoint).is_dir():
        args.checkpoint, args.checkpoint_key = _file_in_checkpoint_folder(Path(args.checkpoint), args.checkpoint_key)
    if not args.random_init and not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint not found: {args.checkpoint}; pass an existing file (e.g. a DINO run's model.pth)")
    for target in (args.results and Path(args.results).parent, args.dump_features):
        if target:  # before the features are extracted, not after
            check_output_dir(target, subfolders=())
    accelerator = Accelerator()
    torch.manual_seed(args.seed)
    try:
        backbone = load_backbone(
            None if args.random_init else args.checkpoint,
            arch=args.arch,
            key=args.checkpoint_key,
            img_size=args.img_size,
        ).to(accelerator.device)
    except KeyError as err:  # an unknown --arch: the message lists the choices
        raise UsageError(f"--arch: {err.args[0]}") from None
    img_size = _input_size(backbone, args.img_size)
    crop_ratio = args.crop_ratio if args.crop_ratio is not None else (1.0 if args.data == "digits" else 0.875)
    transform = eval_transform(img_size, crop_ratio=crop_ratio)
    splits = {}
    options = {"skip_corrupt_images": args.skip_corrupt_images, "skip_option": SKIP_FLAG, "where": "--data"}
    skipped = 0
    for split in ("train", "val"):
        dataset = build_dataset(args.data, split, transform, img_size=img_size, evaluation=True, **options)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers
        )
        splits[split] = extract_features(backbone, accelerator.prepare(loader), accelerator=accelerator)
        skipped += len(dataset) - len(splits[split][1])
    num_classes = num_classes_of(dataset)
    if not accelerator.is_main_process:
        return None
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["val"]
    accelerator.print(f"features: train {tuple(train_x.shape)}, val {tuple(test_x.shape)}, {num_classes} classes")
    if skipped:
        accelerator.print(f"left out {skipped} unreadable image(s) ({SKIP_FLAG})")
    if args.dump_features:
        save_features(args.dump_features, train_x, train_y, test_x, test_y, num_classes=num_classes)
        accelerator.print(f"features dumped to {args.dump_features}")
    return train_x, train_y, test_x, test_y, num_classes


def _file_in_checkpoint_folder(folder: Path, key: str | None) -> tuple[str, None]:
    """A ``checkpoints/step_N`` folder of ``ssl_dino.train``: the teacher (default) or, with key ``student``, the
    student (its backbone; the projection head is dropped when loading)."""
    files = {"teacher": folder / "teacher.safetensors", "student": folder / "model.safetensors"}
    if not (folder / "position.json").is_file() or not files["teacher"].is_file():
        raise UserError(f"--checkpoint {folder} is a folder, not a DINO checkpoint folder; pass the checkpoint file")
    if key not in (None, *files):
        raise UserError(f"--checkpoint-key {key!r}: a DINO checkpoint folder holds 'teacher' (default) and 'student'")
    return str(files[key or "teacher"]), None


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
        raise UserError(f"evaluation uses square crops; the backbone takes {native[0]}x{native[1]}")
    return native[0]
