"""What fairseq expects of a model, checked in-process as fairseq uses it: dropout that ``--retain-dropout`` and
``prepare_for_inference_`` reach, activation checkpointing through fairseq's wrapper, TorchScript of the model and of
fairseq's ``SequenceGenerator`` (scripted = eager), and old checkpoints' parameter names."""

import argparse

import pytest
import torch

pytest.importorskip("fairseq")

from fairseq import models as fairseq_models  # noqa: E402
from fairseq.modules import FairseqDropout  # noqa: E402
from fairseq.modules.checkpoint_activations import unwrap_checkpoint  # noqa: E402
from fairseq.sequence_generator import SequenceGenerator  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from seq2seq_tiny import VOCAB, build_tiny, tiny_task  # noqa: E402
from torch import nn  # noqa: E402

# torch.jit.script/save/load are deprecated in favour of torch.export, but fairseq's SequenceGenerator scripts.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
SRC = torch.tensor([[1, 1, 5, 6, 7, 2], [8, 9, 10, 11, 12, 2], [1, 13, 14, 15, 16, 2]])
SRC_LENGTHS = torch.tensor([4, 6, 5])
PREV = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 10], [2, 11, 12, 13]])


@pytest.fixture(scope="session")
def plugin():
    import seq2seq

    return seq2seq


@pytest.fixture(scope="module")
def task():
    return tiny_task(VOCAB)


def build(task, seed=0, **options):
    """``resmlp_tiny`` with visible token mixing (tests/seq2seq_tiny.py), in training mode."""
    return build_tiny(task, seed=seed, **options)


def logits(model):
    return model(SRC, SRC_LENGTHS, PREV)[0]


def inference_cfg(**generation):
    defaults = {"beam": 2, "retain_dropout": False, "retain_dropout_modules": None}
    return OmegaConf.create({"generation": {**defaults, **generation}})


def test_every_dropout_is_fairseqs_and_names_its_module(plugin, task):
    model = build(task)
    assert not [name for name, m in model.named_modules() if type(m) is nn.Dropout]
    names = {m.module_name for m in model.modules() if isinstance(m, FairseqDropout)}
    # fairseq's MultiheadAttention names its own (attention) dropout.
    assert names == {"ResMLPEncoder", "ResMLPDecoder", "ResMLPEncoderLayer", "ResMLPDecoderLayer", "MultiheadAttention"}


def test_prepare_for_inference_is_deterministic_unless_dropout_is_retained(plugin, task):
    model = build(task, dropout=0.3)
    model.prepare_for_inference_(inference_cfg())
    with torch.no_grad():
        torch.testing.assert_close(logits(model), logits(model))

    sampled = build(task, dropout=0.3)
    sampled.prepare_for_inference_(inference_cfg(retain_dropout=True))
    assert not sampled.training
    with torch.no_grad():
        first, second = logits(sampled), logits(sampled)
    assert not torch.allclose(first, second)  # Monte-Carlo dropout: every pass samples another sub-network


def test_retain_dropout_modules_picks_modules_by_class_name(plugin, task):
    model = build(task, dropout=0.3)
    model.prepare_for_inference_(inference_cfg(retain_dropout=True, retain_dropout_modules=["ResMLPDecoderLayer"]))
    retained = {name for name, m in model.named_modules() if isinstance(m, FairseqDropout) and m.apply_during_inference}
    assert retained and all(name.startswith("decoder.layers.") for name in retained)
    with torch.no_grad():
        encoded = [model.encoder(SRC, SRC_LENGTHS)["encoder_out"][0] for _ in range(2)]
        torch.testing.assert_close(encoded[0], encoded[1])  # the encoder's dropouts stay off
        assert not torch.allclose(logits(model), logits(model))


@pytest.mark.parametrize("flag", ["checkpoint_activations", "offload_activations"])
def test_activation_checkpointing_recomputes_layers_and_changes_nothing_else(plugin, task, flag):
    plain, checkpointed = build(task, dropout=0.2), build(task, dropout=0.2, **{flag: True})
    checkpointed.load_state_dict(plain.state_dict())
    calls = []
    for model in (plain, checkpointed):
        model.decoder.layers[0].channel_mlp.register_forward_hook(lambda *args: calls.append(1))
    results = []
    for model in (plain, checkpointed):
        calls.clear()
        torch.manual_seed(3)
        loss = logits(model.train()).logsumexp(-1).sum()
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.parameters()], len(calls)))
    (loss_plain, grads_plain, calls_plain), (loss_ckpt, grads_ckpt, calls_ckpt) = results
    assert (calls_plain, calls_ckpt) == (1, 2)  # the backward pass runs the layer again
    torch.testing.assert_close(loss_ckpt, loss_plain)  # same dropout masks: the wrapper restores the RNG
    for grad_ckpt, grad_plain in zip(grads_ckpt, grads_plain):
        torch.testing.assert_close(grad_ckpt, grad_plain, rtol=1e-4, atol=1e-6)


@torch.no_grad()
def generation_results(generator, sample):
    return [[(h["tokens"].tolist(), round(float(h["score"]), 5)) for h in hyps] for hyps in generator(sample)]


def test_torchscript_model_and_sequence_generator_match_eager(plugin, task, tmp_path):
    model = build(task).eval()
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(SRC, SRC_LENGTHS, PREV)[0], logits(model), rtol=1e-5, atol=1e-6)

    sample = {"net_input": {"src_tokens": SRC, "src_lengths": SRC_LENGTHS}}
    settings = dict(beam_size=3, max_len_b=8, no_repeat_ngram_size=2)
    eager = generation_results(SequenceGenerator([model], task.target_dictionary, **settings), sample)
    generator = torch.jit.script(SequenceGenerator([model], task.target_dictionary, **settings))
    torch.jit.save(generator, tmp_path / "generator.pt")
    for scripted_generator in (generator, torch.jit.load(tmp_path / "generator.pt")):
        assert generation_results(scripted_generator, sample) == eager
    assert len(eager) == 3 and all(len(hyps) == 3 for hyps in eager)


def test_a_checkpointed_model_scripts_once_unwrapped(plugin, task):
    model = build(task, checkpoint_activations=True).eval()
    with pytest.raises(Exception):  # noqa: B017 - TorchScript's own error: the wrapper's forward is a partial
        torch.jit.script(model)
    scripted = torch.jit.script(unwrap_checkpoint(model))
    with torch.no_grad():
        torch.testing.assert_close(scripted(SRC, SRC_LENGTHS, PREV)[0], logits(model), rtol=1e-5, atol=1e-6)


def test_old_checkpoints_token_mixing_names_are_upgraded(plugin, task):
    model = build(task).eval()
    old_names = {k.replace(".token_mixing.op.", ".token_mixing.op.mix."): v for k, v in model.state_dict().items()}
    assert any(".token_mixing.op.mix.weight" in k for k in old_names)
    fresh = build(task, seed=1).eval()
    fresh.load_state_dict(old_names, model_cfg=None)  # fairseq's load_state_dict upgrades before loading
    with torch.no_grad():
        torch.testing.assert_close(logits(fresh), logits(model))


def test_an_argparse_config_records_every_value_too(plugin, task):
    """fairseq-train hands build_model an argparse Namespace (legacy tools, fairseq's tests/utils.py)."""
    args = argparse.Namespace(arch="resmlp_tiny", max_source_positions=16, max_target_positions=16)
    fairseq_models.ARCH_CONFIG_REGISTRY["resmlp_tiny"](args)
    fairseq_models.ARCH_MODEL_REGISTRY["resmlp_tiny"].build_model(args, task)
    fields = plugin.ResMLPSeq2SeqConfig.__dataclass_fields__
    assert all(getattr(args, name, None) is not None for name in fields)
    assert (args.positional_embeddings, args.sublayer_norm, args.checkpoint_activations) == (
        "sinusoidal",
        "affine",
        False,
    )
