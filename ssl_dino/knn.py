"""Weighted k-NN classification of frozen features, the DINO protocol (facebookresearch/dino ``eval_knn.py``).

Train and test features are L2-normalised; each test sample takes its k most cosine-similar train samples, which
vote for their labels with weight ``exp(similarity / T)``; the class with the largest summed weight is the
prediction. Compared with the reference: test samples are processed in chunks of a fixed size (the reference cuts
the test set into 100 chunks and crashes below 100 samples), so memory is bounded by ``chunk_size x bank size``
similarities at any scale; top-5 counts only classes that received a vote (so it is right when k < 5 or with fewer
than 5 classes, dino#89); one similarity pass serves every k.

Command line (``--help`` for all options)::

    python -m ssl_dino.knn --checkpoint out/teacher.pth --data digits
    accelerate launch -m ssl_dino.knn --checkpoint dino.pth --data /data/imagenet --nb-knn 20
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from resmlp.cli import command

DEFAULT_CHUNK_SIZE = 256
DEFAULT_KS = (10, 20, 100, 200)


@torch.no_grad()
def knn_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[int, tuple[float, float]]:
    """``{k: (top1, top5)}`` in percent for every k, from one similarity pass.

    The bank stays on the device of ``train_features`` (CPU is fine); test chunks are moved there. A k larger than
    the bank is clipped to the bank size with a warning; the result is still keyed by the k asked for. Peak extra
    memory is about ``chunk_size * len(train_features)`` similarities; the bank is not copied (unless it must be
    converted to float32).
    """
    _check_inputs(train_features, train_labels, test_features, test_labels, ks, temperature, chunk_size)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    for name, labels in (("train_labels", train_labels), ("test_labels", test_labels)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, num_classes={num_classes}), got [{labels.min()}, {labels.max()}]")
    bank_size = train_features.shape[0]
    clipped = {k: min(k, bank_size) for k in ks}
    for k, used in clipped.items():
        if used < k:
            warnings.warn(f"k={k} is larger than the bank of {bank_size} train features; using k={used}", stacklevel=2)
    device = train_features.device
    # Normalise through a vector of inverse norms applied to the similarities, not a normalised copy of the bank:
    # the bank is by far the largest tensor (77 MB for 50,000 x 384, 2 GB for ImageNet at ResMLP-S width).
    bank = train_features.float()  # no copy when already float32
    inverse_norms = bank.norm(dim=1).clamp_min(1e-12).reciprocal()
    bank_labels = train_labels.to(device=device, dtype=torch.long)
    k_max = max(clipped.values())
    top = min(5, num_classes)
    correct = {k: [0, 0] for k in ks}
    for start in range(0, test_features.shape[0], chunk_size):
        queries = F.normalize(test_features[start : start + chunk_size].to(device=device, dtype=torch.float32), dim=1)
        targets = test_labels[start : start + chunk_size].to(device=device, dtype=torch.long)
        similarity, neighbours = (queries @ bank.t()).mul_(inverse_norms).topk(k_max, dim=1, largest=True, sorted=True)
        votes = similarity.div_(temperature).exp_()
        neighbour_labels = bank_labels[neighbours]
        for k in ks:
            used = clipped[k]
            scores = votes.new_zeros(queries.shape[0], num_classes)
            scores.scatter_add_(1, neighbour_labels[:, :used], votes[:, :used])
            top_scores, top_classes = scores.topk(top, dim=1)
            # A class without any vote is not a prediction, whatever its rank among the zeros.
            hits = (top_classes == targets[:, None]) & (top_scores > 0)
            correct[k][0] += int(hits[:, 0].sum())
            correct[k][1] += int(hits.any(dim=1).sum())
    total = test_features.shape[0]
    return {k: (100.0 * c1 / total, 100.0 * c5 / total) for k, (c1, c5) in correct.items()}


def knn_classifier(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (percent) of weighted k-NN with ``k`` neighbours and temperature ``temperature``.

    Same arguments and results as DINO's ``knn_classifier``, for any number of test samples. Features need not be
    normalised beforehand.
    """
    return knn_evaluate(
        train_features,
        train_labels,
        test_features,
        test_labels,
        [k],
        temperature,
        num_classes,
        chunk_size=chunk_size,
    )[k]


def _check_inputs(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    ks: Sequence[int],
    temperature: float,
    chunk_size: int,
) -> None:
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"features must be (samples, dim) with the same dim, got train {tuple(train_features.shape)} and "
            f"test {tuple(test_features.shape)}"
        )
    if train_labels.shape != (train_features.shape[0],) or test_labels.shape != (test_features.shape[0],):
        raise ValueError(
            f"need one label per feature row: train {tuple(train_labels.shape)} for {train_features.shape[0]} rows, "
            f"test {tuple(test_labels.shape)} for {test_features.shape[0]} rows"
        )
    if train_features.shape[0] == 0 or test_features.shape[0] == 0:
        raise ValueError("k-NN needs at least one train and one test sample")
    if not ks or min(ks) < 1:
        raise ValueError(f"every k must be at least 1, got {list(ks)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")


@command("ssl_dino.knn")
def main(argv: Sequence[str] | None = None) -> dict[int, tuple[float, float]]:
    """The ``python -m ssl_dino.knn`` command; returns ``{k: (top1, top5)}`` on the main process, ``{}`` elsewhere."""
    from .eval_cli import evaluation_parser, features_for, write_results

    parser = evaluation_parser("Weighted k-NN evaluation of frozen features (the DINO protocol).", "ssl_dino.knn")
    parser.add_argument("--nb-knn", type=int, nargs="+", default=list(DEFAULT_KS), help="k values (20 is reported)")
    parser.add_argument("--temperature", type=float, default=0.07, help="vote temperature T in exp(sim / T)")
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="test samples per similarity chunk (memory)"
    )
    parser.add_argument(
        "--bank-device", choices=("cpu", "cuda"), default="cpu", help="where the feature bank and the similarities live"
    )
    args = parser.parse_args(argv)
    if args.bank_device == "cuda" and not torch.cuda.is_available():
        parser.error("--bank-device cuda: no CUDA device is visible; use --bank-device cpu")
    if min(args.nb_knn) < 1 or args.temperature <= 0 or args.chunk_size < 1:
        parser.error("--nb-knn values and --chunk-size must be >= 1, --temperature > 0")
    bundle = features_for(args)
    if bundle is None:  # not the main process: features were gathered there
        return {}
    train_x, train_y, test_x, test_y, num_classes = bundle
    train_x, train_y = train_x.to(args.bank_device), train_y.to(args.bank_device)  # queries follow the bank
    for k in args.nb_knn:
        if k > len(train_x):
            print(f"note: k={k} is larger than the {len(train_x)} train features; it is clipped to {len(train_x)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clipping note above says it once, in the command's words
        results = knn_evaluate(
            train_x, train_y, test_x, test_y, args.nb_knn, args.temperature, num_classes, chunk_size=args.chunk_size
        )
    for k, (top1, top5) in results.items():
        print(f"{k}-NN classifier result: Top1: {top1:.2f}, Top5: {top5:.2f}")
    write_results(args.results, {f"k{k}": {"top1": top1, "top5": top5} for k, (top1, top5) in results.items()})
    return results


if __name__ == "__main__":
    main()
