"""Benchmark (not a test): the seq2seq ResMLP against fairseq's transformer on the built-in language pair, at
matched size and budget. Reports test BLEU, training words/s and generation sentences/s, and checks the goals
(BLEU within one point of the transformer or above, training >= 1.2x its words/s, generation at least its speed).

    python -m bench.seq2seq --out-dir outputs/bench/seq2seq

Each model is trained once for BLEU (same data, updates, token budget, optimiser, schedule, loss and beam). Speed is
then measured again in alternating rounds (ResMLP, transformer, ResMLP, ...: short training runs and full test-set
translations), so a machine shared with other jobs slows both alike; medians are reported.
"""

from __future__ import annotations

if not __package__:
    raise SystemExit("run this as `python -m bench.seq2seq`: as a script, this file would shadow the seq2seq package")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

from seq2seq.comparison import (  # noqa: E402
    CONTENDERS,
    Budget,
    make_synthetic_data,
    results_table,
    train,
    train_and_evaluate,
    training_speed,
    translate,
)


def alternating_speed_rounds(
    contenders: dict[str, list[str]], data_dir: Path, work_dir: Path, budget: Budget, rounds: int, updates: int
) -> dict[str, tuple[float, float]]:
    """Median (training words/s, generation sentences/s) per contender over ``rounds`` alternating rounds."""
    trial = dataclasses.replace(budget, max_update=updates)
    words: dict[str, list[float]] = {name: [] for name in contenders}
    sentences: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, arch_args in contenders.items():
            log, _ = train(
                f"{name}-speed", arch_args + ["--no-save", "--disable-validation"], data_dir, work_dir, trial
            )
            words[name].append(training_speed(log))
            sentences[name].append(translate(name, data_dir, work_dir, budget)[1].sentences_per_second)
    return {name: (statistics.median(words[name]), statistics.median(sentences[name])) for name in contenders}


def goals(resmlp_bleu: float, transformer_bleu: float, speeds: dict[str, tuple[float, float]]) -> list[str]:
    """The issue's three goals, each with its numbers and whether it is met."""
    (r_words, r_sentences), (t_words, t_sentences) = speeds["resmlp"], speeds["transformer"]
    checks = [
        (
            f"BLEU {resmlp_bleu:.2f} vs {transformer_bleu:.2f} (goal: >= transformer - 1)",
            resmlp_bleu >= transformer_bleu - 1,
        ),
        (f"training words/s ratio {r_words / t_words:.2f}x (goal: >= 1.2x)", r_words >= 1.2 * t_words),
        (f"generation sentences/s ratio {r_sentences / t_sentences:.2f}x (goal: >= 1x)", r_sentences >= t_sentences),
    ]
    return [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in checks]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="outputs/bench/seq2seq")
    parser.add_argument("--train-size", type=int, default=20000, help="training sentence pairs")
    parser.add_argument("--test-size", type=int, default=1000, help="test sentence pairs")
    parser.add_argument("--vocab-size", type=int, default=400, help="joint sentencepiece vocabulary")
    parser.add_argument("--updates", type=int, default=1000, help="training updates for each model")
    parser.add_argument("--speed-rounds", type=int, default=3, help="alternating speed rounds (0: skip)")
    parser.add_argument("--speed-updates", type=int, default=100, help="updates per speed-round training run")
    parser.add_argument("--resmlp-extra", default="", help="extra fairseq-train flags for ResMLP (ablations)")
    args = parser.parse_args(argv)

    work_dir = Path(args.out_dir)
    sizes = {"train": args.train_size, "valid": 300, "test": args.test_size}
    data_dir = make_synthetic_data(work_dir, sizes, vocab_size=args.vocab_size)
    contenders = dict(CONTENDERS)
    contenders["resmlp"] = contenders["resmlp"] + shlex.split(args.resmlp_extra)
    budget = Budget(max_update=args.updates)

    results = {name: train_and_evaluate(name, arch, data_dir, work_dir, budget) for name, arch in contenders.items()}
    lines = [
        f"Built-in pair {sizes}, {budget.max_update} updates of {budget.max_tokens} tokens, beam {budget.beam}.",
        "",
        "One training run each (BLEU; words/s is that run's median):",
        "",
        results_table(list(results.values())),
    ]
    speeds = {name: (r.train_words_per_second, r.generation.sentences_per_second) for name, r in results.items()}
    if args.speed_rounds:
        speeds = alternating_speed_rounds(contenders, data_dir, work_dir, budget, args.speed_rounds, args.speed_updates)
        lines += ["", f"Speed, median of {args.speed_rounds} alternating rounds:", ""]
        lines += ["| model | train words/s | generation sentences/s |", "|---|---:|---:|"]
        lines += [f"| {name} | {w:,.0f} | {s:,.1f} |" for name, (w, s) in speeds.items()]
    lines += ["", "Goals:", *goals(results["resmlp"].bleu, results["transformer"].bleu, speeds)]
    report = "\n".join(lines)
    (work_dir / "results.md").write_text(report + "\n", encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
