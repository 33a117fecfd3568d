"""ResMLP against fairseq's transformer on the built-in language pair, at matched size and the same budget.

Both models get the same data, the same number of updates of the same token budget, the same optimiser, schedule,
loss and beam search; only ``--arch`` differs. Shared by ``python -m seq2seq.demo`` and ``bench/seq2seq.py``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli_runs import (
    GenerationSpeed,
    bleu_score,
    generation_speed,
    json_records,
    parameter_count,
    plugin_dir,
    run_tool,
)
from .prepare import prepare
from .synthetic import SOURCE_LANG, TARGET_LANG, write_splits

# Matched size: both are d 64, FFN 64, 2 + 2 layers, 2 cross-attention heads (fairseq's transformer_tiny sizes).
CONTENDERS: dict[str, list[str]] = {
    "resmlp": ["--arch", "resmlp_tiny"],
    "transformer": ["--arch", "transformer_tiny"],
}


@dataclass(frozen=True)
class Budget:
    """What both models get: updates of ``max_tokens`` target+source tokens, Adam with inverse-sqrt warmup."""

    max_update: int = 300
    max_tokens: int = 4096
    lr: float = 5e-3
    warmup_updates: int = 100
    dropout: float = 0.1
    beam: int = 4
    max_positions: int = 64
    seed: int = 1


@dataclass
class RunResult:
    name: str
    arch_args: list[str]
    parameters: int
    bleu: float
    train_words_per_second: float  # median over log intervals of fairseq's wps (target tokens / s)
    train_seconds: float
    generation: GenerationSpeed
    extra: dict = field(default_factory=dict)


def make_synthetic_data(work_dir: Path, sizes: dict[str, int], vocab_size: int, seed: int = 0) -> Path:
    """Write the built-in pair and binarise it with a joint sentencepiece model; returns the data-bin folder."""
    raw = write_splits(work_dir / "raw", sizes, seed)
    return prepare(
        source_lang=SOURCE_LANG,
        target_lang=TARGET_LANG,
        trainpref=str(raw / "train"),
        validpref=str(raw / "valid"),
        testpref=str(raw / "test"),
        destdir=work_dir / "data-bin",
        vocab_size=vocab_size,
        preprocess_args=["--workers", "2"],
    )


def train_args(data_dir: Path, save_dir: Path, budget: Budget) -> list[str]:
    """The fairseq-train command line shared by both contenders (everything but ``--arch``)."""
    return [
        str(data_dir),
        "--user-dir",
        plugin_dir(),
        "--task",
        "translation",
        "--source-lang",
        SOURCE_LANG,
        "--target-lang",
        TARGET_LANG,
        "--share-all-embeddings",
        "--optimizer",
        "adam",
        "--adam-betas",
        "(0.9, 0.98)",
        "--lr",
        budget.lr,
        "--lr-scheduler",
        "inverse_sqrt",
        "--warmup-updates",
        budget.warmup_updates,
        "--criterion",
        "label_smoothed_cross_entropy",
        "--label-smoothing",
        0.1,
        "--dropout",
        budget.dropout,
        "--max-tokens",
        budget.max_tokens,
        "--max-update",
        budget.max_update,
        "--max-source-positions",
        budget.max_positions,
        "--max-target-positions",
        budget.max_positions,
        # fairseq-fixed drops the last batch of an epoch when it is not a multiple of this (8 by default).
        "--required-batch-size-multiple",
        1,
        "--num-workers",
        0,
        "--seed",
        budget.seed,
        "--save-dir",
        str(save_dir),
        "--no-epoch-checkpoints",
        "--no-last-checkpoints",
        "--log-format",
        "json",
        "--log-interval",
        10,
    ]


def generate_args(data_dir: Path, checkpoint: Path, budget: Budget) -> list[str]:
    """fairseq-generate on the test split: beam search, sentencepiece decoding, sacreBLEU."""
    return [
        str(data_dir),
        "--user-dir",
        plugin_dir(),
        "--path",
        str(checkpoint),
        "--source-lang",
        SOURCE_LANG,
        "--target-lang",
        TARGET_LANG,
        "--gen-subset",
        "test",
        "--beam",
        budget.beam,
        "--batch-size",
        128,
        "--required-batch-size-multiple",
        1,
        "--num-workers",
        0,
        "--bpe",
        "sentencepiece",
        "--sentencepiece-model",
        str(data_dir / "spm.model"),
        "--scoring",
        "sacrebleu",
        "--quiet",
    ]


def train(name: str, arch_args: list[str], data_dir: Path, work_dir: Path, budget: Budget) -> tuple[str, float]:
    """fairseq-train one contender; returns its log and wall-clock seconds (start-up included)."""
    start = time.perf_counter()
    save_dir = work_dir / f"checkpoints-{name}"
    result = run_tool("fairseq-train", train_args(data_dir, save_dir, budget) + arch_args)
    return result.stdout + result.stderr, time.perf_counter() - start


def training_speed(log: str) -> float:
    """Median over log intervals of fairseq's training wps (target tokens per second).

    The first interval includes start-up; later ones measure steady training. The median is robust to other jobs
    briefly taking the CPU.
    """
    speeds = [float(r["wps"]) for r in json_records(log, "train_inner")]
    return statistics.median(speeds[1:] or speeds)


def translate(name: str, data_dir: Path, work_dir: Path, budget: Budget) -> tuple[float, GenerationSpeed]:
    """fairseq-generate the test split with the best checkpoint; returns sacreBLEU and fairseq's timing."""
    checkpoint = work_dir / f"checkpoints-{name}" / "checkpoint_best.pt"
    result = run_tool("fairseq-generate", generate_args(data_dir, checkpoint, budget))
    output = result.stdout + result.stderr
    return bleu_score(output), generation_speed(output)


def train_and_evaluate(name: str, arch_args: list[str], data_dir: Path, work_dir: Path, budget: Budget) -> RunResult:
    """Train one contender, then translate the test split."""
    log, seconds = train(name, arch_args, data_dir, work_dir, budget)
    bleu, speed = translate(name, data_dir, work_dir, budget)
    return RunResult(
        name=name,
        arch_args=arch_args,
        parameters=parameter_count(log),
        bleu=bleu,
        train_words_per_second=training_speed(log),
        train_seconds=seconds,
        generation=speed,
        extra={"final_train_loss": float(json_records(log, "train")[-1]["train_loss"])},
    )


def results_table(results: list[RunResult]) -> str:
    """A markdown table: one row per model."""
    lines = [
        "| model | --arch | parameters | test BLEU | train words/s | train wall (s) | generation sentences/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {' '.join(r.arch_args[1:])} | {r.parameters:,} | {r.bleu:.2f} | "
            f"{r.train_words_per_second:,.0f} | {r.train_seconds:.0f} | {r.generation.sentences_per_second:,.1f} |"
        )
    return "\n".join(lines)
