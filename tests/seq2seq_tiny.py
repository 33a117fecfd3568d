"""The in-process seq2seq model of the model and fairseq-contract tests: ``resmlp_tiny`` on a made-up vocabulary,
built through fairseq's own ``build_model`` (as a recipe would), with weights that make token mixing visible."""

from __future__ import annotations

import torch
from fairseq import models as fairseq_models
from fairseq.data import Dictionary
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import OmegaConf

VOCAB = 24


def tiny_task(vocab: int = VOCAB) -> TranslationTask:
    """A translation task whose source and target share one dictionary of ``vocab`` words (w0, w1, ...)."""
    dictionary = Dictionary()
    for index in range(vocab):
        dictionary.add_symbol(f"w{index}")
    return TranslationTask(TranslationConfig(), dictionary, dictionary)


def build_tiny(task: TranslationTask, *, seed: int = 0, layerscale_one: bool = False, **options):
    """``resmlp_tiny`` with 16 positions and ``options`` set, in training mode. The token-mixing weights are drawn
    with std 0.3 (every position visibly changes the output); ``layerscale_one`` also sets every LayerScale to 1."""
    cfg = OmegaConf.create({"_name": "resmlp_tiny", "max_source_positions": 16, "max_target_positions": 16})
    cfg.update(options)
    torch.manual_seed(seed)
    model = fairseq_models.build_model(cfg, task)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if layerscale_one and name.endswith("ls.gamma"):
                param.fill_(1.0)
            elif name.endswith("token_mixing.op.weight"):
                param.normal_(0.0, 0.3)
    return model
