"""k-NN evaluation time and memory: ``ssl_dino.knn`` against DINO's reference ``knn_classifier`` formula.

A bank of 50,000 x 384 random features (ResMLP-S width) and 10,000 queries over 1,000 classes, on the CPU with a
fixed thread count. Each measurement runs in its own fresh process so its peak memory is its own: the figure is the
peak resident memory of the process minus its resident memory just before the call (the features and labels are
already in memory then, and the kernel's peak mark is reset, so it is the evaluation's own working memory).
Methods:

- ``ours k=20``: ``ssl_dino.knn.knn_classifier`` (normalises the inputs itself, chunks of ``--chunk-size`` queries);
- ``ours k=10,20,100,200``: ``knn_evaluate`` with DINO's four k from one similarity pass;
- ``reference k=20`` and ``reference k=10,20,100,200``: DINO's formula (100 chunks, one-hot vote matrix), on features
  normalised beforehand as ``eval_knn.py`` does (not timed), once per k.

Usage, from the repository root::

    python -m bench.knn --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

import torch
import torch.nn.functional as F

KS = (10, 20, 100, 200)


def reference_knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes=1000):
    """facebookresearch/dino eval_knn.knn_classifier (with the min(5, k) top-5 fix), verbatim in substance."""
    top1, top5, total = 0.0, 0.0, 0
    train_features = train_features.t()
    num_test_images, num_chunks = test_labels.shape[0], 100
    imgs_per_chunk = num_test_images // num_chunks
    retrieval_one_hot = torch.zeros(k, num_classes).to(train_features.device)
    for idx in range(0, num_test_images, imgs_per_chunk):
        features = test_features[idx : min((idx + imgs_per_chunk), num_test_images), :]
        targets = test_labels[idx : min((idx + imgs_per_chunk), num_test_images)]
        batch_size = targets.shape[0]
        similarity = torch.mm(features, train_features)
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        retrieval_one_hot.resize_(batch_size * k, num_classes).zero_()
        retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(T).exp_()
        probs = torch.sum(
            torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes), distances_transform.view(batch_size, -1, 1)),
            1,
        )
        _, predictions = probs.sort(1, True)
        correct = predictions.eq(targets.data.view(-1, 1))
        top1 = top1 + correct.narrow(1, 0, 1).sum().item()
        top5 = top5 + correct.narrow(1, 0, min(5, k)).sum().item()
        total += targets.size(0)
    return top1 * 100.0 / total, top5 * 100.0 / total


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so set-up allocations do not count as the call's peak."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(method: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Run one method in this (fresh) process and report (seconds, extra peak bytes, {k: top1})."""
    from ssl_dino.knn import knn_evaluate

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(args.bank, args.dim, generator=generator)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    bank_labels = torch.randint(0, args.classes, (args.bank,), generator=generator)
    query_labels = torch.randint(0, args.classes, (args.queries,), generator=generator)
    ks = [20] if method.endswith("k=20") else list(KS)
    if method.startswith("reference"):
        bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)  # eval_knn.py does this beforehand
    _reset_peak()
    before = _rss_bytes()
    start = time.perf_counter()
    if method.startswith("ours"):
        results = knn_evaluate(
            bank, bank_labels, queries, query_labels, ks, 0.07, args.classes, chunk_size=args.chunk_size
        )
    else:
        results = {
            k: reference_knn_classifier(bank, bank_labels, queries, query_labels, k, 0.07, args.classes) for k in ks
        }
    seconds = time.perf_counter() - start
    peak = _peak_bytes()
    queue.put((seconds, max(peak - before, 0), {k: top1 for k, (top1, _) in results.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bank", type=int, default=50_000, help="train features")
    parser.add_argument("--queries", type=int, default=10_000, help="test features")
    parser.add_argument("--dim", type=int, default=384, help="feature width")
    parser.add_argument("--classes", type=int, default=1000, help="number of classes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--chunk-size", type=int, default=None, help="our chunk size (default: the library's)")
    args = parser.parse_args()
    if args.chunk_size is None:
        from ssl_dino.knn import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE
    methods = ["ours k=20", "reference k=20", "ours k=10,20,100,200", "reference k=10,20,100,200"]
    ctx = mp.get_context("spawn")
    print(
        f"bank {args.bank} x {args.dim}, {args.queries} queries, {args.classes} classes, {args.threads} threads, "
        f"our chunk {args.chunk_size} queries, torch {torch.__version__}"
    )
    print("| method | seconds | peak extra memory (MiB) | top-1 (random labels, %) |")
    print("|---|---|---|---|")
    top1s = {}
    for method in methods:
        queue = ctx.Queue()
        worker = ctx.Process(target=_measure, args=(method, args, queue))
        worker.start()
        seconds, peak, top1 = queue.get()
        worker.join()
        top1s[method] = top1
        shown = ", ".join(f"{v:.2f}" for v in top1.values())
        print(f"| {method} | {seconds:.2f} | {peak / 2**20:.0f} | {shown} |")
    same = all(top1s[f"ours {s}"] == top1s[f"reference {s}"] for s in ("k=20", "k=10,20,100,200"))
    print(f"top-1 identical between ours and the reference: {same}")


if __name__ == "__main__":
    main()
