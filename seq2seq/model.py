"""The fairseq model ``resmlp``: a ResMLP encoder-decoder (Touvron et al., arXiv 2105.03404, "Sequence-to-sequence
ResMLP"), i.e. a transformer whose self-attention sublayers are ResMLP token-mixing linear layers."""

from __future__ import annotations

from typing import Any

import torch
from fairseq.models import FairseqEncoderDecoderModel, register_model
from fairseq.models.transformer import Embedding
from torch import Tensor, nn

from resmlp.layers import CrossPatchLinear

from .config import ResMLPSeq2SeqArgs, ResMLPSeq2SeqConfig, record_config, resolve_config
from .decoder import ResMLPDecoder
from .encoder import ResMLPEncoder


@register_model("resmlp", dataclass=ResMLPSeq2SeqArgs)
class ResMLPSeq2SeqModel(FairseqEncoderDecoderModel):
    """Encoder and decoder of ResMLP layers; the decoder keeps the transformer's encoder-decoder attention.

    Train it as any fairseq translation model, e.g. ``resmlp-fairseq train data-bin --arch resmlp_iwslt_de_en ...``
    (= ``fairseq-train data-bin --user-dir $(resmlp-fairseq user-dir) --arch resmlp_iwslt_de_en ...``).
    """

    def __init__(self, config: ResMLPSeq2SeqConfig, encoder: ResMLPEncoder, decoder: ResMLPDecoder) -> None:
        super().__init__(encoder, decoder)
        self.config = config  # the resolved, effective options (also written into fairseq's cfg.model)

    @classmethod
    def build_model(cls, cfg: Any, task) -> ResMLPSeq2SeqModel:
        """Build from fairseq's model config (argparse Namespace or DictConfig) and the task's dictionaries.

        Every option is resolved to the value the model uses and written back into ``cfg``, which fairseq saves in
        checkpoints: a checkpoint rebuilds this model whatever this plugin's defaults and presets become.
        """
        config = resolve_config(cfg)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        config.validate(joined_dictionary=src_dict == tgt_dict)
        record_config(cfg, config)

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

    # The base class takes **kwargs, which TorchScript cannot compile: these are the transformer's arguments.
    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        return_all_hiddens: bool = True,
        features_only: bool = False,
        alignment_layer: int | None = None,
        alignment_heads: int | None = None,
    ) -> tuple[Tensor, dict[str, list[Tensor | None]]]:
        """Teacher-forced decoder output (logits (B, T, V) and extras) for a batch of sources."""
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths, return_all_hiddens=return_all_hiddens)
        return self.decoder(
            prev_output_tokens,
            encoder_out=encoder_out,
            features_only=features_only,
            alignment_layer=alignment_layer,
            alignment_heads=alignment_heads,
            src_lengths=src_lengths,
            return_all_hiddens=return_all_hiddens,
        )

    @torch.jit.export
    def get_normalized_probs(
        self,
        net_output: tuple[Tensor, dict[str, list[Tensor | None]] | None],
        log_probs: bool,
        sample: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """(Log-)probabilities from the decoder's output; exported for TorchScript (fairseq's generator calls it)."""
        return self.get_normalized_probs_scriptable(net_output, log_probs, sample)

    def max_positions(self) -> tuple[int, int]:
        """Longest source and target: the sizes of the token-mixing matrices. fairseq filters longer pairs."""
        return (self.encoder.max_positions(), self.decoder.max_positions())

    def upgrade_state_dict_named(self, state_dict: dict, name: str) -> None:
        """Rename the parameters of checkpoints written before the token mixing was a plain ``CrossPatchLinear``
        (``token_mixing.op.mix.weight`` -> ``token_mixing.op.weight``); fairseq calls this before loading."""
        super().upgrade_state_dict_named(state_dict, name)
        for key in [k for k in state_dict if ".token_mixing.op.mix." in k]:
            state_dict[key.replace(".token_mixing.op.mix.", ".token_mixing.op.")] = state_dict.pop(key)


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
