"""The fairseq model ``resmlp``: a ResMLP encoder-decoder (Touvron et al., arXiv 2105.03404, "Sequence-to-sequence
ResMLP"), i.e. a transformer whose self-attention sublayers are ResMLP token-mixing linear layers."""

from __future__ import annotations

from typing import Any

import torch
from fairseq.models import FairseqEncoderDecoderModel, register_model
from fairseq.models.transformer import Embedding
from torch import nn

from resmlp.layers import CrossPatchLinear

from .config import ResMLPSeq2SeqArgs, ResMLPSeq2SeqConfig, resolve_config
from .decoder import ResMLPDecoder
from .encoder import ResMLPEncoder


@register_model("resmlp", dataclass=ResMLPSeq2SeqArgs)
class ResMLPSeq2SeqModel(FairseqEncoderDecoderModel):
    """Encoder and decoder of ResMLP layers; the decoder keeps the transformer's encoder-decoder attention.

    Train it as any fairseq translation model, e.g.
    ``fairseq-train data-bin --user-dir $(python -m seq2seq.user_dir) --arch resmlp_iwslt_de_en ...``.
    """

    def __init__(self, config: ResMLPSeq2SeqConfig, encoder: ResMLPEncoder, decoder: ResMLPDecoder) -> None:
        super().__init__(encoder, decoder)
        self.config = config  # the resolved, typed options (fairseq's own cfg object may lack defaults)

    @classmethod
    def build_model(cls, cfg: Any, task) -> ResMLPSeq2SeqModel:
        """Build from fairseq's model config (argparse Namespace or DictConfig) and the task's dictionaries."""
        config = resolve_config(cfg)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        config.validate(joined_dictionary=src_dict == tgt_dict)

        encoder_embed = Embedding(len(src_dict), config.encoder_embed_dim, src_dict.pad())
        if config.share_all_embeddings:
            decoder_embed = encoder_embed
        else:
            decoder_embed = Embedding(len(tgt_dict), config.decoder_embed_dim, tgt_dict.pad())
        output_projection = nn.Linear(config.decoder_embed_dim, len(tgt_dict), bias=False)
        if config.share_all_embeddings or config.share_decoder_input_output_embed:
            output_projection.weight = decoder_embed.weight
        else:
            nn.init.normal_(output_projection.weight, mean=0.0, std=config.decoder_embed_dim**-0.5)

        encoder = ResMLPEncoder(config, src_dict, encoder_embed)
        decoder = ResMLPDecoder(config, tgt_dict, decoder_embed, output_projection)
        model = cls(config, encoder, decoder)
        init_token_mixing(model, config.token_mixing_init)
        return model

    def max_positions(self) -> tuple[int, int]:
        """Longest source and target: the sizes of the token-mixing matrices. fairseq filters longer pairs."""
        return (self.encoder.max_positions(), self.decoder.max_positions())


def init_token_mixing(model: nn.Module, kind: str) -> None:
    """Re-initialise every token-mixing matrix: ``trunc_normal`` keeps ResMLP's (std 0.02), ``identity`` starts as
    a per-token copy, ``mean`` as the average over the allowed positions (the prefix, when causal)."""
    if kind == "trunc_normal":
        return
    for module in model.modules():
        if isinstance(module, CrossPatchLinear):
            n = module.num_tokens
            with torch.no_grad():
                if kind == "identity":
                    module.weight.copy_(torch.eye(n))
                elif kind == "mean":
                    allowed = torch.ones(n, n).tril() if module.causal else torch.ones(n, n)
                    module.weight.copy_(allowed / allowed.sum(1, keepdim=True))
                else:
                    raise ValueError(f"--token-mixing-init must be trunc_normal, identity or mean, got {kind!r}")
