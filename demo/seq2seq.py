"""``make demo`` stage: train ``resmlp_tiny`` on the built-in language pair, translate its test split, and print BLEU
beside fairseq's ``transformer_tiny`` of matched size trained with the same budget.

Usage: ``python -m demo.seq2seq --out-dir outputs/demo/seq2seq`` (about 1-3 minutes on 2 CPU cores). Every step runs
the real fairseq tools (``fairseq-preprocess``, ``fairseq-train``, ``fairseq-generate``); the exact commands are in
``docs/seq2seq.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.seq2seq_compare import CONTENDERS, Budget, make_synthetic_data, results_table, train_and_evaluate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="outputs/demo/seq2seq", help="data, checkpoints and results.md")
    parser.add_argument("--train-size", type=int, default=6000, help="training sentence pairs")
    parser.add_argument("--updates", type=int, default=300, help="training updates for each model (the budget)")
    args = parser.parse_args(argv)
    # One thread per fairseq process unless the caller chose: the models are tiny, and on a shared machine
    # oversubscribed OpenMP threads spin and slow every job (here: 4x slower training at load 8 on 2 cores).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    start = time.perf_counter()
    work_dir = Path(args.out_dir)
    sizes = {"train": args.train_size, "valid": 200, "test": 300}
    print(f"[seq2seq demo] built-in language pair {sizes}, sentencepiece + fairseq-preprocess ...", flush=True)
    data_dir = make_synthetic_data(work_dir, sizes, vocab_size=400)
    budget = Budget(max_update=args.updates)
    results = []
    for contender in CONTENDERS:
        flags = " ".join(contender.arch_args)
        print(f"[seq2seq demo] fairseq-train {flags} --lr {contender.lr} ({budget.max_update} updates) ...", flush=True)
        results.append(train_and_evaluate(contender, data_dir, work_dir, budget))
    table = results_table(results)
    (work_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    print(f"\nTest BLEU after {budget.max_update} updates of {budget.max_tokens} tokens, beam {budget.beam}:\n")
    print(table)
    print(f"\n[seq2seq demo] done in {time.perf_counter() - start:.0f}s; table saved to {work_dir / 'results.md'}")


if __name__ == "__main__":
    main()
