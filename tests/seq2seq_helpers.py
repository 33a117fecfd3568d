"""Shared set-up of the seq2seq CLI tests: the built-in pair binarised once, and one short fairseq-train run.

Both are made once per pytest session (under the session's base temporary folder) and reused by every test module
that asks, because each fairseq tool start costs seconds. Checkpoints are loaded with torch's safe default: nothing
here sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.fairseq_runs import run_tool
from seq2seq.user_dir import plugin_dir
from seq2seq_data.prepare import prepare
from seq2seq_data.synthetic import SOURCE_LANG, TARGET_LANG, write_splits

LANGS = ["--source-lang", SOURCE_LANG, "--target-lang", TARGET_LANG]
# Everything but --user-dir, --max-update and --save-dir.
TRAIN_FLAGS = [
    "--arch", "resmlp_tiny", "--task", "translation", *LANGS, "--share-all-embeddings",
    "--optimizer", "adam", "--lr", "0.005", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "10",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", "2048",
    "--max-source-positions", "64", "--max-target-positions", "64", "--required-batch-size-multiple", "1",
    "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "1",
]  # fmt: skip
TRAIN_UPDATES = 30
LONG_SOURCE = " ".join(["the big dog sees a small cat"] * 12)  # about 90 tokens: past --max-source-positions 64
REPEATS = 3  # the test split ends with its first sentence repeated this many times (dropout tests)
TEST_SENTENCES = 24 + REPEATS


def tool_environment(monkeypatch_context) -> None:
    """Safe loading only, and one thread per tool: the models are tiny and test runs share the machine."""
    monkeypatch_context.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch_context.setenv("OMP_NUM_THREADS", "1")


def data_dir(base: Path) -> Path:
    """The built-in pair binarised by the prepare command (made once under ``base``).

    Splits: train 400, valid 40, test 24 + the first test sentence ``REPEATS`` more times, test1 one over-long and
    one normal sentence.
    """
    root = base / "seq2seq_data"
    dest = root / "data-bin"
    if (dest / "test1.src-tgt.src.bin").is_file():
        return dest
    raw = write_splits(root / "raw", {"train": 400, "valid": 40, "test": 24}, seed=0)
    for lang in ("src", "tgt"):
        lines = (raw / f"test.{lang}").read_text().splitlines()
        (raw / f"test.{lang}").write_text("\n".join(lines + lines[:1] * REPEATS) + "\n")
    normal_source, normal_target = (raw / "test.src").read_text().splitlines()[0], (raw / "test.tgt").read_text()
    (raw / "long.src").write_text(f"{LONG_SOURCE}\n{normal_source}\n")
    (raw / "long.tgt").write_text(f"{normal_target.splitlines()[0]}\n{normal_target.splitlines()[0]}\n")
    return prepare(
        source_lang=SOURCE_LANG,
        target_lang=TARGET_LANG,
        trainpref=str(raw / "train"),
        validpref=str(raw / "valid"),
        testpref=f"{raw / 'test'},{raw / 'long'}",
        destdir=dest,
        vocab_size=200,
    )


def trained(base: Path) -> tuple[Path, str]:
    """One short fairseq-train run with ``--user-dir`` (made once under ``base``); returns (save dir, its log)."""
    save_dir = base / "seq2seq_trained"
    log_file = save_dir / "train.log"
    if log_file.is_file():
        return save_dir, log_file.read_text()
    args = [data_dir(base), "--user-dir", plugin_dir(), *TRAIN_FLAGS, "--max-update", TRAIN_UPDATES]
    result = run_tool("fairseq-train", [*args, "--save-dir", save_dir])
    log = result.stdout + result.stderr
    log_file.write_text(log)
    return save_dir, log


def generate(data: Path, checkpoint: Path, *extra, tool: str = "fairseq-generate", check: bool = True):
    """fairseq-generate (with --user-dir) on ``data``'s test split, one batch of everything unless ``extra`` says."""
    args = [data, "--path", checkpoint, *LANGS, "--batch-size", "64", "--required-batch-size-multiple", "1"]
    args += ["--num-workers", "0", *extra]
    if tool == "fairseq-generate":
        args = ["--user-dir", plugin_dir(), *args]
    return run_tool(tool, args, check=check)


def hypotheses(stdout: str) -> dict[int, tuple[float, str]]:
    """fairseq-generate's best hypothesis per sentence id: ``{id: (score, tokens)}``."""
    best = {}
    for line in stdout.splitlines():
        if line.startswith("H-"):
            tag, score, text = line.split("\t")
            best.setdefault(int(tag[2:]), (float(score), text))
    return best


def session_base(tmp_path_factory) -> Path:
    """The session's base temporary folder (shared by every test module of the run)."""
    base = tmp_path_factory.getbasetemp()
    os.makedirs(base, exist_ok=True)
    return Path(base)
