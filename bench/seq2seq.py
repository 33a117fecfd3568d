"""Benchmark (not a test): the seq2seq ResMLP against fairseq's transformer on the built-in language pair, at matched
width and at matched parameters, with the same budget. Reports test BLEU, training words/s, generation sentences/s,
where a training step's time goes, and the ratios to the transformer against the goals (BLEU within one point or
above, training >= 1.2x its words/s, generation at least its speed).

    python -m bench.seq2seq --out-dir outputs/bench/seq2seq --json outputs/bench/seq2seq/results.json

Every model trains with the same data, updates, token budget, optimiser, schedule, loss, dropout and beam search,
once per peak learning rate of the same grid; each model's rate is chosen on validation loss (never on the test
set) and its test BLEU reported. Matched width is the paper's comparison (d, FFN, layers: ResMLP then has a third
fewer parameters, since token mixing is smaller than self-attention); at matched parameters ResMLP spends the
difference either on depth (3 + 3 layers) or on width (2 + 2 layers, FFN 160), and both are reported.
Speed: every fairseq process runs ``--threads`` threads (``OMP_NUM_THREADS``); the
models take turns in alternating rounds (a 40-update fairseq-train, then a full test-set fairseq-generate, per model
per round), so that a machine shared with other jobs slows all of them alike; medians are reported with the load
average seen before every run. Then ``bench/seq2seq_profile.py`` times fairseq's training step of each model
in-process in CPU time and breaks it down by op (torch.profiler). Results go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

if not __package__:
    raise SystemExit("run this as `python -m bench.seq2seq`: as a script, this file would shadow the seq2seq package")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

from .report import emit_json  # noqa: E402
from .seq2seq_compare import (  # noqa: E402
    RESMLP,
    RESMLP_MATCHED_PARAMETERS,
    RESMLP_MATCHED_PARAMETERS_WIDER,
    TRANSFORMER,
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
from .seq2seq_profile import profile, profile_table  # noqa: E402

COMPARISONS = {
    "matched width": RESMLP.name,
    "matched parameters, deeper": RESMLP_MATCHED_PARAMETERS.name,
    "matched parameters, wider FFN": RESMLP_MATCHED_PARAMETERS_WIDER.name,
}


def tune_learning_rate(
    contender: Contender, grid: list[float], data_dir: Path, work_dir: Path, budget: Budget
) -> tuple[RunResult, list[RunResult]]:
    """Train at every rate of ``grid``; returns the run with the lowest validation loss, and all runs."""
    runs = [train_and_evaluate(dataclasses.replace(contender, lr=lr), data_dir, work_dir, budget) for lr in grid]
    return min(runs, key=lambda r: r.best_valid_loss), runs


def alternating_speed_rounds(
    contenders: list[Contender], data_dir: Path, work_dir: Path, budget: Budget, rounds: int, updates: int
) -> tuple[dict[str, tuple[float, float]], list[float]]:
    """Median (training words/s, generation sentences/s) per contender over ``rounds`` alternating rounds, and the
    1-minute load average before every run."""
    trial = dataclasses.replace(budget, max_update=updates)
    words: dict[str, list[float]] = {c.name: [] for c in contenders}
    sentences: dict[str, list[float]] = {c.name: [] for c in contenders}
    loads = []
    for _ in range(rounds):
        for contender in contenders:
            speed_run = dataclasses.replace(contender, name=f"{contender.name}-speed")
            loads.append(os.getloadavg()[0])
            log, _ = train(speed_run, data_dir, work_dir, trial, ("--no-save", "--disable-validation"))
            words[contender.name].append(training_speed(log))
            loads.append(os.getloadavg()[0])
            sentences[contender.name].append(translate(contender, data_dir, work_dir, budget)[1].sentences_per_second)
    return {name: (statistics.median(words[name]), statistics.median(sentences[name])) for name in words}, loads


def ratios(name: str, bleu: dict[str, float], speeds: dict[str, tuple[float, float]], cpu: dict | None) -> dict:
    """ResMLP model ``name`` against the transformer: the numbers the goals are about."""
    (r_words, r_sentences), (t_words, t_sentences) = speeds[name], speeds[TRANSFORMER.name]
    out = {
        "bleu_difference": bleu[name] - bleu[TRANSFORMER.name],
        "training_words_per_second": r_words / t_words,
        "generation_sentences_per_second": r_sentences / t_sentences,
    }
    if cpu:
        out["training_tokens_per_cpu_second"] = (
            cpu[name]["tokens_per_cpu_second"] / cpu[TRANSFORMER.name]["tokens_per_cpu_second"]
        )
    return out


def goal_lines(comparison: str, name: str, r: dict) -> list[str]:
    checks = [
        (f"BLEU {r['bleu_difference']:+.2f} (goal: >= -1)", r["bleu_difference"] >= -1),
        (
            f"training words/s {r['training_words_per_second']:.2f}x (goal: >= 1.2x)",
            r["training_words_per_second"] >= 1.2,
        ),
        (
            f"generation sentences/s {r['generation_sentences_per_second']:.2f}x (goal: >= 1x)",
            r["generation_sentences_per_second"] >= 1,
        ),
    ]
    return [f"- {comparison} ({name}): {'met' if ok else 'NOT met'}: {text}" for text, ok in checks]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench/seq2seq"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="threads of every fairseq process (OMP_NUM_THREADS)")
    parser.add_argument("--train-size", type=int, default=10000, help="training sentence pairs")
    parser.add_argument("--test-size", type=int, default=500, help="test sentence pairs")
    parser.add_argument("--vocab-size", type=int, default=400, help="joint sentencepiece vocabulary")
    parser.add_argument("--updates", type=int, default=300, help="training updates of every run")
    parser.add_argument("--lr-grid", default="0.005,0.01,0.02", help="peak learning rates tried for every model")
    parser.add_argument("--speed-rounds", type=int, default=3, help="alternating speed rounds (0: skip)")
    parser.add_argument("--speed-updates", type=int, default=40, help="updates of each speed-round training run")
    parser.add_argument("--profile-steps", type=int, default=8, help="in-process profiled training steps (0: skip)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    work_dir = args.out_dir
    sizes = {"train": args.train_size, "valid": 300, "test": args.test_size}
    data_dir = make_synthetic_data(work_dir, sizes, vocab_size=args.vocab_size)
    budget = Budget(max_update=args.updates)
    grid = [float(lr) for lr in args.lr_grid.split(",")]
    contenders = (RESMLP, TRANSFORMER, RESMLP_MATCHED_PARAMETERS, RESMLP_MATCHED_PARAMETERS_WIDER)

    chosen: dict[str, RunResult] = {}
    every_run: list[RunResult] = []
    for contender in contenders:
        chosen[contender.name], runs = tune_learning_rate(contender, grid, data_dir, work_dir, budget)
        every_run += runs
    lines = [
        f"Built-in pair {sizes}, {budget.max_update} updates of {budget.max_tokens} tokens, beam {budget.beam},",
        f"{args.threads} thread(s) per fairseq process; peak lr chosen on validation loss from {grid}.",
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
    loads: list[float] = []
    if args.speed_rounds:
        best = [r.contender for r in chosen.values()]
        speeds, loads = alternating_speed_rounds(
            best, data_dir, work_dir, budget, args.speed_rounds, args.speed_updates
        )
        lines += ["", f"Speed, median of {args.speed_rounds} alternating rounds (load average {min(loads):.1f}-"]
        lines[-1] += f"{max(loads):.1f} on {os.cpu_count()} CPUs):"
        lines += ["", "| model | train words/s | generation sentences/s |", "|---|---:|---:|"]
        lines += [f"| {name} | {w:,.0f} | {s:,.1f} |" for name, (w, s) in speeds.items()]
    cpu = None
    if args.profile_steps:
        lines += [
            "",
            f"Training step in-process, {args.profile_steps} batches, CPU time (bench/seq2seq_profile.py):",
            "",
        ]
        cpu = profile([c for c in contenders], data_dir, budget, steps=args.profile_steps)
        lines.append(profile_table(cpu))
    bleu = {name: r.bleu for name, r in chosen.items()}
    results = {comparison: ratios(name, bleu, speeds, cpu) for comparison, name in COMPARISONS.items()}
    lines += ["", "Goals (ResMLP / transformer):"]
    for comparison, name in COMPARISONS.items():
        lines += goal_lines(comparison, name, results[comparison])
    report = "\n".join(lines)
    (work_dir / "results.md").write_text(report + "\n", encoding="utf-8")
    print(report)
    payload = {
        "threads": args.threads,
        "load_average_during_speed_rounds": loads,
        "ratios_to_transformer": results,
        "bleu": bleu,
        "learning_rates": {name: r.contender.lr for name, r in chosen.items()},
        "speed": {
            name: {"train_words_per_second": w, "generation_sentences_per_second": s} for name, (w, s) in speeds.items()
        },
        "profile": cpu,
    }
    emit_json(payload, args.json)


if __name__ == "__main__":
    main()
