"""End-to-end runs of the real fairseq command-line tools with the ``resmlp`` plugin on tiny built-in data:
prepare (sentencepiece + fairseq-preprocess), fairseq-train, -generate, -interactive, -hydra-train, resume, and
fairseq's handling of over-long inputs. Checkpoints are loaded with no TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("fairseq")

from bench.fairseq_runs import bleu_score, generation_speed, json_records, run_tool  # noqa: E402
from seq2seq.user_dir import plugin_dir, recipes_dir  # noqa: E402
from seq2seq_data.prepare import prepare  # noqa: E402
from seq2seq_data.synthetic import SOURCE_LANG, TARGET_LANG, write_splits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LANGS = ["--source-lang", SOURCE_LANG, "--target-lang", TARGET_LANG]
TRAIN_FLAGS = [
    "--user-dir", plugin_dir(), "--arch", "resmlp_tiny", "--task", "translation", *LANGS, "--share-all-embeddings",
    "--optimizer", "adam", "--lr", "0.005", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "10",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", "2048",
    "--max-source-positions", "64", "--max-target-positions", "64", "--required-batch-size-multiple", "1",
    "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "1",
]  # fmt: skip
LONG_SOURCE = " ".join(["the big dog sees a small cat"] * 12)  # about 90 tokens: past --max-source-positions 64


@pytest.fixture(scope="module", autouse=True)
def tool_environment():
    """The checkpoints must load under torch's safe default, so make sure nothing switches it off. One thread per
    tool: the models are tiny, and test runs share the machine (oversubscribed threads spin and slow everyone)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Built-in pair, binarised by the prepare command; test1 holds one over-long and one normal sentence."""
    root = tmp_path_factory.mktemp("seq2seq_data")
    raw = write_splits(root / "raw", {"train": 400, "valid": 40, "test": 24}, seed=0)
    normal_source, normal_target = (raw / "test.src").read_text().splitlines()[0], (raw / "test.tgt").read_text()
    (raw / "long.src").write_text(f"{LONG_SOURCE}\n{normal_source}\n")
    (raw / "long.tgt").write_text(f"{normal_target.splitlines()[0]}\n{normal_target.splitlines()[0]}\n")
    return prepare(
        source_lang=SOURCE_LANG,
        target_lang=TARGET_LANG,
        trainpref=str(raw / "train"),
        validpref=str(raw / "valid"),
        testpref=f"{raw / 'test'},{raw / 'long'}",
        destdir=root / "data-bin",
        vocab_size=200,
    )


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """One short fairseq-train run; returns (checkpoint folder, training log)."""
    save_dir = tmp_path_factory.mktemp("seq2seq_ckpt")
    result = run_tool("fairseq-train", [data_dir, *TRAIN_FLAGS, "--max-update", "30", "--save-dir", save_dir])
    return save_dir, result.stdout + result.stderr


def generate(data_dir, checkpoint, *extra, check=True):
    args = [data_dir, "--user-dir", plugin_dir(), "--path", checkpoint, *LANGS, "--batch-size", "16"]
    args += ["--required-batch-size-multiple", "1", "--num-workers", "0", *extra]
    return run_tool("fairseq-generate", args, check=check)


def test_training_runs_and_the_loss_falls(trained):
    _, log = trained
    losses = [float(r["loss"]) for r in json_records(log, "train_inner")]
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses


def test_generate_loads_the_checkpoint_and_scores_beam_search(data_dir, trained):
    save_dir, _ = trained
    bpe = ["--bpe", "sentencepiece", "--sentencepiece-model", data_dir / "spm.model", "--scoring", "sacrebleu"]
    result = generate(data_dir, save_dir / "checkpoint_best.pt", "--beam", "4", "--nbest", "2", *bpe)
    out = result.stdout + result.stderr
    assert generation_speed(out).sentences == 24
    assert 0.0 <= bleu_score(out) <= 100.0
    detokenized = [line.split("\t")[2] for line in result.stdout.splitlines() if line.startswith("D-")]
    assert len(detokenized) == 48  # two best beams for each of the 24 sentences
    assert not any("\u2581" in line for line in detokenized)  # sentencepiece pieces were joined back into words


def test_interactive_translates_standard_input(data_dir, trained):
    save_dir, _ = trained
    args = [data_dir, "--user-dir", plugin_dir(), "--path", save_dir / "checkpoint_best.pt", *LANGS, "--beam", "3"]
    args += ["--bpe", "sentencepiece", "--sentencepiece-model", data_dir / "spm.model", "--buffer-size", "2"]
    result = run_tool("fairseq-interactive", args, input_text="the big dog sees a cat\nsome kings like the river\n")
    hypotheses = [line for line in result.stdout.splitlines() if line.startswith("H-")]
    assert [line.split("\t")[0] for line in hypotheses] == ["H-0", "H-1"]


def test_resumed_run_with_eval_bleu_writes_a_checkpoint_that_loads_safely(data_dir, trained):
    save_dir, _ = trained
    eval_bleu = ["--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_b": 40}', "--eval-bleu-detok", "space"]
    eval_bleu += ["--eval-bleu-remove-bpe", "sentencepiece"]
    args = [data_dir, *TRAIN_FLAGS, "--max-update", "33", "--save-dir", save_dir, *eval_bleu]
    result = run_tool("fairseq-train", args)
    log = result.stdout + result.stderr
    assert "Loaded checkpoint" in log and "@ 30 updates" in log
    assert [r["num_updates"] for r in json_records(log, "train_inner")] == ["31", "32", "33"]

    # --eval-bleu saves numpy arrays (BLEU n-gram counts) in the checkpoint: torch's safe default alone refuses it ...
    checkpoint = save_dir / "checkpoint_last.pt"
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1])", checkpoint], capture_output=True, text=True
    )
    assert plain.returncode != 0 and "weights_only" in plain.stderr
    # ... while fairseq-generate with the plugin loads it, still in safe mode (no environment variable set).
    result = generate(data_dir, checkpoint, "--beam", "2")
    assert generation_speed(result.stdout + result.stderr).sentences == 24


def test_over_long_input_gets_fairseqs_usual_handling(data_dir, trained):
    save_dir, _ = trained
    refused = generate(data_dir, save_dir / "checkpoint_best.pt", "--gen-subset", "test1", check=False)
    assert refused.returncode != 0
    assert "is invalid" in refused.stderr and "--skip-invalid-size-inputs-valid-test" in refused.stderr

    skipped = generate(
        data_dir, save_dir / "checkpoint_best.pt", "--gen-subset", "test1", "--skip-invalid-size-inputs-valid-test"
    )
    out = skipped.stdout + skipped.stderr
    assert "1 samples have invalid sizes and will be skipped" in out
    assert generation_speed(out).sentences == 1


def test_hydra_train_runs_the_recipe(data_dir, tmp_path):
    save_dir = tmp_path / "ckpt"
    overrides = [
        f"task.data={data_dir}",
        f"common.user_dir={plugin_dir()}",
        f"checkpoint.save_dir={save_dir}",
        "optimization.max_update=3",
        "dataset.num_workers=0",
    ]
    args = ["--config-dir", recipes_dir(), "--config-name", "synthetic_tiny", *overrides]
    result = run_tool("fairseq-hydra-train", args, cwd=tmp_path)  # hydra writes .hydra/ into the working folder
    assert "done training" in result.stdout + result.stderr
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=True)
    # The preset applies under hydra too (fairseq fills dataclass defaults before presets: see seq2seq/config.py).
    assert (state["cfg"]["model"]["_name"], state["cfg"]["model"]["encoder_embed_dim"]) == ("resmlp_tiny", 64)


def test_user_dir_command_prints_this_plugin(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.user_dir"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.strip() == plugin_dir()
    assert os.path.isfile(os.path.join(result.stdout.strip(), "__init__.py"))
