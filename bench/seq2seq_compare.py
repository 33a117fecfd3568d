"""ResMLP against fairseq's transformer on the built-in language pair, at matched size and the same budget.

Both models get the same data, the same number of updates of the same token budget, the same optimiser, schedule,
loss and beam search; only ``--arch`` and the peak learning rate differ, each model using its best rate from the
same grid (chosen on validation loss by ``bench/seq2seq.py``). Shared by ``python -m demo.seq2seq`` and the benchmark.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.user_dir import plugin_dir
from seq2seq_data.prepare import prepare
from seq2seq_data.synthetic import SOURCE_LANG, TARGET_LANG, write_splits

from .fairseq_runs import GenerationSpeed, bleu_score, generation_speed, json_records, parameter_count, run_tool


@dataclass(frozen=True)
class Contender:
    """One model of the comparison: its name, fairseq-train architecture flags and peak learning rate."""

    name: str
    arch_args: tuple[str, ...]
    lr: float


# Matched width: both d 64, FFN 64, 2 + 2 layers, 2 cross-attention heads (fairseq's transformer_tiny sizes); ResMLP
# then has a third fewer parameters. Matched parameters, two ways of spending the difference: deeper (3 + 3 layers,
# 144,320 parameters) or wider (2 + 2 layers with FFN 160, 151,296), against the transformer's 150,784. Peak
# learning rates: each model's best of {0.005, 0.01, 0.02} on validation loss (docs/benchmarks.md, translation).
RESMLP = Contender("resmlp", ("--arch", "resmlp_tiny"), lr=0.02)
TRANSFORMER = Contender("transformer", ("--arch", "transformer_tiny"), lr=0.01)
RESMLP_MATCHED_PARAMETERS = Contender(
    "resmlp-3+3", ("--arch", "resmlp_tiny", "--encoder-layers", "3", "--decoder-layers", "3"), lr=0.02
)
RESMLP_MATCHED_PARAMETERS_WIDER = Contender(
    "resmlp-ffn160",
    ("--arch", "resmlp_tiny", "--encoder-ffn-embed-dim", "160", "--decoder-ffn-embed-dim", "160"),
    lr=0.02,
)
CONTENDERS: tuple[Contender, ...] = (RESMLP, TRANSFORMER)  # the demo's pair


@dataclass(frozen=True)
class Budget:
    """What every model gets: updates of ``max_tokens`` source + target tokens, Adam with inverse-sqrt warmup."""

    max_update: int = 300
    max_tokens: int = 4096
    warmup_updates: int = 100
    dropout: float = 0.1
    beam: int = 4
    max_positions: int = 64
    seed: int = 1


@dataclass
class RunResult:
    contender: Contender
    parameters: int
    bleu: float
    best_valid_loss: float
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


def train_args(data_dir: Path, save_dir: Path, budget: Budget, lr: float) -> list[str]:
    """The fairseq-train command line of the comparison, but for ``--arch`` and its flags."""
    return [
        *(str(data_dir), "--user-dir", plugin_dir(), "--task", "translation"),
        *("--source-lang", SOURCE_LANG, "--target-lang", TARGET_LANG, "--share-all-embeddings"),
        *("--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", lr),
        *("--lr-scheduler", "inverse_sqrt", "--warmup-updates", budget.warmup_updates),
        *("--criterion", "label_smoothed_cross_entropy", "--label-smoothing", 0.1, "--dropout", budget.dropout),
        *("--max-tokens", budget.max_tokens, "--max-update", budget.max_update, "--seed", budget.seed),
        *("--max-source-positions", budget.max_positions, "--max-target-positions", budget.max_positions),
        # fairseq-fixed drops an epoch's last batch when it is not a multiple of this (8 by default).
        *("--required-batch-size-multiple", 1, "--num-workers", 0),
        *("--save-dir", str(save_dir), "--no-epoch-checkpoints", "--no-last-checkpoints"),
        *("--log-format", "json", "--log-interval", 10),
    ]


def generate_args(data_dir: Path, checkpoint: Path, budget: Budget) -> list[str]:
    """fairseq-generate on the test split: beam search, sentencepiece decoding, sacreBLEU."""
    return [
        *(str(data_dir), "--user-dir", plugin_dir(), "--path", str(checkpoint)),
        *("--source-lang", SOURCE_LANG, "--target-lang", TARGET_LANG, "--gen-subset", "test", "--beam", budget.beam),
        *("--batch-size", 128, "--required-batch-size-multiple", 1, "--num-workers", 0),
        *("--bpe", "sentencepiece", "--sentencepiece-model", str(data_dir / "spm.model"), "--scoring", "sacrebleu"),
        # --sacrebleu changes nothing but silences fairseq's "BLEU computed on BPE tokens" warning (docs/seq2seq.md).
        *("--sacrebleu", "--quiet"),
    ]


def run_name(contender: Contender) -> str:
    return f"{contender.name}-lr{contender.lr:g}"


def train(
    contender: Contender, data_dir: Path, work_dir: Path, budget: Budget, extra_args: tuple[str, ...] = ()
) -> tuple[str, float]:
    """fairseq-train one contender; returns its log and wall-clock seconds (start-up included)."""
    start = time.perf_counter()
    save_dir = work_dir / f"checkpoints-{run_name(contender)}"
    args = train_args(data_dir, save_dir, budget, contender.lr) + list(contender.arch_args) + list(extra_args)
    result = run_tool("fairseq-train", args)
    return result.stdout + result.stderr, time.perf_counter() - start


def training_speed(log: str) -> float:
    """Median over log intervals of fairseq's training wps (target tokens per second).

    The first interval includes start-up; later ones measure steady training. The median is robust to other jobs
    briefly taking the CPU.
    """
    speeds = [float(r["wps"]) for r in json_records(log, "train_inner")]
    if not speeds:  # a run shorter than one log interval: fairseq's end-of-epoch summary
        speeds = [float(r["train_wps"]) for r in json_records(log, "train")]
    return statistics.median(speeds[1:] or speeds)


def translate(contender: Contender, data_dir: Path, work_dir: Path, budget: Budget) -> tuple[float, GenerationSpeed]:
    """fairseq-generate the test split with the best checkpoint; returns sacreBLEU and fairseq's timing."""
    checkpoint = work_dir / f"checkpoints-{run_name(contender)}" / "checkpoint_best.pt"
    result = run_tool("fairseq-generate", generate_args(data_dir, checkpoint, budget))
    output = result.stdout + result.stderr
    return bleu_score(output), generation_speed(output)


def train_and_evaluate(contender: Contender, data_dir: Path, work_dir: Path, budget: Budget) -> RunResult:
    """Train one contender, then translate the test split."""
    log, seconds = train(contender, data_dir, work_dir, budget)
    bleu, speed = translate(contender, data_dir, work_dir, budget)
    return RunResult(
        contender=contender,
        parameters=parameter_count(log),
        bleu=bleu,
        best_valid_loss=min(float(r["valid_loss"]) for r in json_records(log, "valid")),
        train_words_per_second=training_speed(log),
        train_seconds=seconds,
        generation=speed,
    )


def results_table(results: list[RunResult]) -> str:
    """A markdown table: one row per run."""
    lines = [
        "| model | --arch and flags | parameters | peak lr | best valid loss | test BLEU | train words/s | "
        "train wall (s) | generation sentences/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r.contender
        lines.append(
            f"| {c.name} | {' '.join(c.arch_args[1:])} | {r.parameters:,} | {c.lr:g} | {r.best_valid_loss:.3f} | "
            f"{r.bleu:.2f} | {r.train_words_per_second:,.0f} | {r.train_seconds:.0f} | "
            f"{r.generation.sentences_per_second:,.1f} |"
        )
    return "\n".join(lines)
