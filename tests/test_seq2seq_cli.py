"""End-to-end runs of the real fairseq command-line tools with the plugin given as ``--user-dir``, on tiny built-in
data: prepare (sentencepiece + fairseq-preprocess), fairseq-train, -generate, -interactive, -hydra-train, resume,
Monte-Carlo dropout, activation checkpointing, ensembles with the transformer, fairseq's handling of over-long
inputs, and checkpoints that record every option. The ``resmlp-fairseq`` launcher is in test_seq2seq_launcher.py."""

import copy
import subprocess
import sys

import pytest
import torch

pytest.importorskip("fairseq")

from seq2seq_helpers import (  # noqa: E402
    LANGS,
    LONG_SOURCE,
    REPEATS,
    TEST_SENTENCES,
    TRAIN_FLAGS,
    TRAIN_UPDATES,
    generate,
    hypotheses,
    session_base,
    tool_environment,
)
from seq2seq_helpers import data_dir as prepared_data  # noqa: E402
from seq2seq_helpers import trained as trained_run  # noqa: E402

from bench.fairseq_runs import bleu_score, generation_speed, json_records, run_tool  # noqa: E402
from seq2seq.config import ResMLPSeq2SeqConfig  # noqa: E402
from seq2seq.user_dir import plugin_dir, recipes_dir  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def environment():
    with pytest.MonkeyPatch.context() as patch:
        tool_environment(patch)
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return prepared_data(session_base(tmp_path_factory))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """(checkpoint folder, training log) of one short fairseq-train run."""
    return trained_run(session_base(tmp_path_factory))


def train_losses(log: str) -> list[float]:
    return [float(r["loss"]) for r in json_records(log, "train_inner")]


def test_training_runs_and_the_loss_falls(trained):
    losses = train_losses(trained[1])
    assert len(losses) == TRAIN_UPDATES
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses


def test_the_checkpoint_records_every_option_at_its_effective_value(trained):
    state = torch.load(trained[0] / "checkpoint_best.pt", weights_only=True)
    stored = state["cfg"]["model"]
    assert [name for name in ResMLPSeq2SeqConfig.__dataclass_fields__ if stored.get(name) is None] == []
    # Values from the preset, the command line, the dataclass defaults, and implied by another option.
    assert (stored["_name"], stored["encoder_embed_dim"], stored["layerscale_init"]) == ("resmlp_tiny", 64, 1.0)
    assert (stored["max_source_positions"], stored["dropout"]) == (64, 0.1)
    assert (stored["positional_embeddings"], stored["activation_dropout"]) == ("sinusoidal", 0.0)
    assert stored["share_all_embeddings"] is True and stored["share_decoder_input_output_embed"] is True
    assert state["cfg"]["common"]["user_dir"] == plugin_dir()  # fairseq records it (but never imports it on load)


def test_generate_loads_the_checkpoint_and_scores_beam_search(data_dir, trained):
    bpe = ["--bpe", "sentencepiece", "--sentencepiece-model", data_dir / "spm.model", "--scoring", "sacrebleu"]
    result = generate(data_dir, trained[0] / "checkpoint_best.pt", "--beam", "4", "--nbest", "2", *bpe)
    out = result.stdout + result.stderr
    assert generation_speed(out).sentences == TEST_SENTENCES
    assert 0.0 <= bleu_score(out) <= 100.0
    detokenized = [line.split("\t")[2] for line in result.stdout.splitlines() if line.startswith("D-")]
    assert len(detokenized) == 2 * TEST_SENTENCES  # two best beams for each sentence
    assert not any("\u2581" in line for line in detokenized)  # sentencepiece pieces were joined back into words
    # Without --retain-dropout generation is deterministic: the repeated sentence gets the same translation.
    best = hypotheses(result.stdout)
    assert len({best[index] for index in (0, *range(24, 24 + REPEATS))}) == 1


def test_retain_dropout_samples_a_different_model_per_sentence(data_dir, trained):
    result = generate(data_dir, trained[0] / "checkpoint_best.pt", "--beam", "2", "--retain-dropout")
    assert "Enabling dropout during inference for module: encoder.dropout_module" in result.stderr
    best = hypotheses(result.stdout)
    repeated = [best[index][0] for index in (0, *range(24, 24 + REPEATS))]
    assert len(set(repeated)) == len(repeated), repeated  # Monte-Carlo dropout: one score per sample


def test_interactive_translates_standard_input_and_can_skip_over_long_lines(data_dir, trained):
    args = [data_dir, "--user-dir", plugin_dir(), "--path", trained[0] / "checkpoint_best.pt", *LANGS, "--beam", "3"]
    args += ["--bpe", "sentencepiece", "--sentencepiece-model", data_dir / "spm.model"]
    lines = f"the big dog sees a cat\n{LONG_SOURCE}\nsome kings like the river\n"
    result = run_tool("fairseq-interactive", [*args, "--skip-invalid-size-inputs-valid-test"], input_text=lines)
    hypotheses_ids = [line.split("\t")[0] for line in result.stdout.splitlines() if line.startswith("H-")]
    assert hypotheses_ids == ["H-0", "H-2"]  # line 1 is past --max-source-positions: skipped, the session goes on
    assert "1 samples have invalid sizes and will be skipped" in result.stderr


def test_resumed_run_with_eval_bleu_writes_a_checkpoint_that_loads_safely(data_dir, tmp_path, trained):
    save_dir = tmp_path / "resumed"
    save_dir.mkdir()
    (save_dir / "checkpoint_last.pt").write_bytes((trained[0] / "checkpoint_last.pt").read_bytes())
    eval_bleu = ["--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_b": 40}', "--eval-bleu-detok", "space"]
    eval_bleu += ["--eval-bleu-remove-bpe", "sentencepiece"]
    updates = TRAIN_UPDATES + 3
    args = [data_dir, "--user-dir", plugin_dir(), *TRAIN_FLAGS, "--max-update", updates, "--save-dir", save_dir]
    result = run_tool("fairseq-train", [*args, *eval_bleu])
    log = result.stdout + result.stderr
    assert "Loaded checkpoint" in log and f"@ {TRAIN_UPDATES} updates" in log
    resumed = [int(r["num_updates"]) for r in json_records(log, "train_inner")]
    assert resumed == list(range(TRAIN_UPDATES + 1, updates + 1))

    # --eval-bleu saves numpy arrays (BLEU n-gram counts) in the checkpoint: torch's safe default alone refuses it ...
    checkpoint = save_dir / "checkpoint_last.pt"
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1])", checkpoint], capture_output=True, text=True
    )
    assert plain.returncode != 0 and "weights_only" in plain.stderr
    # ... while fairseq-generate with the plugin loads it, still in safe mode (no environment variable set).
    result = generate(data_dir, checkpoint, "--beam", "2")
    assert generation_speed(result.stdout + result.stderr).sentences == TEST_SENTENCES


def test_over_long_input_gets_fairseqs_usual_handling(data_dir, trained):
    checkpoint = trained[0] / "checkpoint_best.pt"
    refused = generate(data_dir, checkpoint, "--gen-subset", "test1", check=False)
    assert refused.returncode != 0
    assert "is invalid" in refused.stderr and "--skip-invalid-size-inputs-valid-test" in refused.stderr

    skipped = generate(data_dir, checkpoint, "--gen-subset", "test1", "--skip-invalid-size-inputs-valid-test")
    out = skipped.stdout + skipped.stderr
    assert "1 samples have invalid sizes and will be skipped" in out
    assert generation_speed(out).sentences == 1


def test_offloaded_activation_checkpointing_trains_exactly_like_plain_training(data_dir, tmp_path, trained):
    """--offload-activations (which sets --checkpoint-activations) recomputes every layer in the backward pass with
    the same dropout masks (fairseq's checkpoint_wrapper restores the RNG), so the losses are those of the run
    without it."""
    save_dir = tmp_path / "checkpointed"
    args = [data_dir, "--user-dir", plugin_dir(), *TRAIN_FLAGS, "--max-update", 5, "--save-dir", save_dir]
    result = run_tool("fairseq-train", [*args, "--offload-activations", "--no-last-checkpoints"])
    assert train_losses(result.stdout + result.stderr) == pytest.approx(train_losses(trained[1])[:5], abs=2e-3)
    stored = torch.load(save_dir / "checkpoint_best.pt", weights_only=True)["cfg"]["model"]
    assert stored["offload_activations"] is True and stored["checkpoint_activations"] is True


def test_an_ensemble_with_fairseqs_transformer_translates(data_dir, tmp_path, trained):
    transformer_flags = [*TRAIN_FLAGS[: TRAIN_FLAGS.index("--arch")], *TRAIN_FLAGS[TRAIN_FLAGS.index("--task") :]]
    transformer = tmp_path / "transformer"
    args = [data_dir, "--arch", "transformer_tiny", *transformer_flags, "--max-update", 3, "--save-dir", transformer]
    run_tool("fairseq-train", args)
    paths = f"{trained[0] / 'checkpoint_best.pt'}:{transformer / 'checkpoint_best.pt'}"
    result = generate(data_dir, paths, "--beam", "3", "--print-alignment")
    assert generation_speed(result.stdout + result.stderr).sentences == TEST_SENTENCES
    assert sum(line.startswith("A-") for line in result.stdout.splitlines()) == TEST_SENTENCES


def test_hydra_train_runs_the_shipped_recipe_with_the_plugin_from_the_environment(data_dir, tmp_path):
    overrides = [f"task.data={data_dir}", f"checkpoint.save_dir={tmp_path / 'ckpt'}", "optimization.max_update=3"]
    args = ["--config-dir", recipes_dir(), "--config-name", "synthetic_tiny", *overrides, "dataset.num_workers=0"]
    # The recipe reads the plugin folder from RESMLP_FAIRSEQ_USER_DIR unless common.user_dir= is given.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESMLP_FAIRSEQ_USER_DIR", plugin_dir())
        result = run_tool("fairseq-hydra-train", args, cwd=tmp_path)  # hydra writes .hydra/ into the working folder
    assert "done training" in result.stdout + result.stderr
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=True)
    # The preset applies under hydra too (fairseq fills dataclass defaults before presets: see seq2seq/config.py).
    assert (state["cfg"]["model"]["_name"], state["cfg"]["model"]["encoder_embed_dim"]) == ("resmlp_tiny", 64)
    assert state["cfg"]["common"]["user_dir"] == plugin_dir()


def test_a_checkpoint_loads_the_same_model_whatever_the_plugins_defaults_become(data_dir, trained, monkeypatch):
    """Change the dataclass defaults and the preset in-process: the checkpoint still builds the model it was
    trained as. A checkpoint that left options unset (as the plugin's first version wrote them) would not."""
    import dataclasses

    from fairseq import checkpoint_utils

    import seq2seq.architectures
    import seq2seq.config
    from seq2seq.safe_checkpoints import allow_fairseq_checkpoint_types

    allow_fairseq_checkpoint_types()  # process-wide state other tests may have reset
    path = trained[0] / "checkpoint_best.pt"
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    src = torch.tensor([[1, 1, 40, 41, 42, 2], [43, 44, 45, 46, 47, 2]])
    prev = torch.tensor([[2, 50, 51, 52], [2, 53, 54, 55]])

    def load(state_dict):
        [model], cfg, _ = checkpoint_utils.load_model_ensemble_and_task([str(path)], state=copy.deepcopy(state_dict))
        with torch.no_grad():
            return model.eval()(src, torch.tensor([4, 6]), prev)[0], model.config

    before, config_before = load(state)

    @dataclasses.dataclass(frozen=True)
    class ChangedDefaults(ResMLPSeq2SeqConfig):
        no_scale_embedding: bool = True
        dropout: float = 0.3

    monkeypatch.setattr(seq2seq.config, "ResMLPSeq2SeqConfig", ChangedDefaults)
    preset = dict(seq2seq.architectures.ARCHITECTURES["resmlp_tiny"], decoder_attention_heads=4, layerscale_init=0.1)
    monkeypatch.setitem(seq2seq.architectures.ARCHITECTURES, "resmlp_tiny", preset)
    after, config_after = load(state)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert dataclasses.asdict(config_after) == dataclasses.asdict(config_before)

    unset = ["dropout", "attention_dropout", "drop_path", "positional_embeddings", "sublayer_norm"]
    unset += ["token_mixing_init", "share_decoder_input_output_embed", "no_scale_embedding"]
    first_version = copy.deepcopy(state)
    for name in unset:
        first_version["cfg"]["model"][name] = None
    assert not torch.allclose(load(first_version)[0], before)
