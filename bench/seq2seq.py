"""Benchmark (not a test): the seq2seq ResMLP against fairseq's transformer on the built-in language pair, at
matched size and budget. Reports test BLEU, training words/s and generation sentences/s, and checks the goals
(BLEU within one point of the transformer or above, training >= 1.2x its words/s, generation at least its speed).

    python -m bench.seq2seq --out-dir outputs/bench/seq2seq

Every model trains with the same data, updates, token budget, optimiser, schedule, loss and beam search, once per
peak learning rate of the same grid; each model's rate is chosen on validation loss (never on the test set) and
its test BLEU reported. "Matched size" is matched dimensions as in the paper (d, FFN, layers: ResMLP then has fewer
parameters, since token mixing is smaller than self-attention); a ResMLP with 3 + 3 layers matches the transformer's
parameter count instead. Each fairseq process uses one thread (OMP_NUM_THREADS=1 unless set). Speed is measured
again in alternating rounds (one model, then the other, ...), so that a machine shared with other jobs slows both
alike; medians are reported.
"""

from __future__ import annotations

if not __package__:
    raise SystemExit("run this as `python -m bench.seq2seq`: as a script, this file would shadow the seq2seq package")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

from .seq2seq_compare import (  # noqa: E402
    CONTENDERS,
    Budget,
    Contender,
    RunResult,
    make_synthetic_data,
    results_table,
    train,
    train_and_evaluate,
    training_speed,
    translate,
)

MATCHED_PARAMETERS = Contender(
    "resmlp-3+3", ("--arch", "resmlp_tiny", "--encoder-layers", "3", "--decoder-layers", "3"), 0
)


def tune_learning_rate(
    contender: Contender, grid: list[float], data_dir: Path, work_dir: Path, budget: Budget
) -> tuple[RunResult, list[RunResult]]:
    """Train at every rate of ``grid``; returns the run with the lowest validation loss, and all runs."""
    runs = [train_and_evaluate(dataclasses.replace(contender, lr=lr), data_dir, work_dir, budget) for lr in grid]
    return min(runs, key=lambda r: r.best_valid_loss), runs


def alternating_speed_rounds(
    contenders: list[Contender], data_dir: Path, work_dir: Path, budget: Budget, rounds: int, updates: int
) -> dict[str, tuple[float, float]]:
    """Median (training words/s, generation sentences/s) per contender over ``rounds`` alternating rounds."""
    trial = dataclasses.replace(budget, max_update=updates)
    words: dict[str, list[float]] = {c.name: [] for c in contenders}
    sentences: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(rounds):
        for contender in contenders:
            speed_run = dataclasses.replace(contender, name=f"{contender.name}-speed")
            log, _ = train(speed_run, data_dir, work_dir, trial, ("--no-save", "--disable-validation"))
            words[contender.name].append(training_speed(log))
            sentences[contender.name].append(translate(contender, data_dir, work_dir, budget)[1].sentences_per_second)
    return {name: (statistics.median(words[name]), statistics.median(sentences[name])) for name in words}


def goals(name: str, bleu: dict[str, float], speeds: dict[str, tuple[float, float]]) -> list[str]:
    """The issue's three goals for ResMLP model ``name`` against the transformer."""
    (r_words, r_sentences), (t_words, t_sentences) = speeds[name], speeds["transformer"]
    checks = [
        (
            f"BLEU {bleu[name]:.2f} vs {bleu['transformer']:.2f} (goal: >= its - 1)",
            bleu[name] >= bleu["transformer"] - 1,
        ),
        (f"training words/s {r_words / t_words:.2f}x (goal: >= 1.2x)", r_words >= 1.2 * t_words),
        (f"generation sentences/s {r_sentences / t_sentences:.2f}x (goal: >= 1x)", r_sentences >= t_sentences),
    ]
    return [f"- {name}: {'met' if ok else 'NOT met'}: {text}" for text, ok in checks]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="outputs/bench/seq2seq")
    parser.add_argument("--train-size", type=int, default=10000, help="training sentence pairs")
    parser.add_argument("--test-size", type=int, default=500, help="test sentence pairs")
    parser.add_argument("--vocab-size", type=int, default=400, help="joint sentencepiece vocabulary")
    parser.add_argument("--updates", type=int, default=300, help="training updates of every run")
    parser.add_argument("--lr-grid", default="0.005,0.01,0.02", help="peak learning rates tried for every model")
    parser.add_argument("--speed-rounds", type=int, default=3, help="alternating speed rounds (0: skip)")
    parser.add_argument("--speed-updates", type=int, default=40, help="updates of each speed-round training run")
    args = parser.parse_args(argv)
    # One thread per fairseq process unless the caller chose: stable numbers on a machine shared with other jobs.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    work_dir = Path(args.out_dir)
    sizes = {"train": args.train_size, "valid": 300, "test": args.test_size}
    data_dir = make_synthetic_data(work_dir, sizes, vocab_size=args.vocab_size)
    budget = Budget(max_update=args.updates)
    grid = [float(lr) for lr in args.lr_grid.split(",")]

    chosen: dict[str, RunResult] = {}
    every_run: list[RunResult] = []
    for contender in (*CONTENDERS, MATCHED_PARAMETERS):
        chosen[contender.name], runs = tune_learning_rate(contender, grid, data_dir, work_dir, budget)
        every_run += runs
    lines = [
        f"Built-in pair {sizes}, {budget.max_update} updates of {budget.max_tokens} tokens, beam {budget.beam};",
        f"peak lr chosen on validation loss from {grid}.",
        "",
        "Chosen runs:",
        "",
        results_table(list(chosen.values())),
        "",
        "Every run:",
        "",
        results_table(every_run),
    ]
    speeds = {name: (r.train_words_per_second, r.generation.sentences_per_second) for name, r in chosen.items()}
    if args.speed_rounds:
        contenders = [r.contender for r in chosen.values()]
        speeds = alternating_speed_rounds(contenders, data_dir, work_dir, budget, args.speed_rounds, args.speed_updates)
        lines += ["", f"Speed, median of {args.speed_rounds} alternating rounds:", ""]
        lines += ["| model | train words/s | generation sentences/s |", "|---|---:|---:|"]
        lines += [f"| {name} | {w:,.0f} | {s:,.1f} |" for name, (w, s) in speeds.items()]
    bleu = {name: r.bleu for name, r in chosen.items()}
    lines += ["", "Goals:", *goals("resmlp", bleu, speeds), *goals(MATCHED_PARAMETERS.name, bleu, speeds)]
    report = "\n".join(lines)
    (work_dir / "results.md").write_text(report + "\n", encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
