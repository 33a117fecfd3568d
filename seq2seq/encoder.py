"""The seq2seq ResMLP encoder: token-mixing + channel-MLP layers over the source, invariant to batch padding."""

from __future__ import annotations

import math

import torch
from fairseq.models import FairseqEncoder
from fairseq.modules import PositionalEmbedding
from fairseq.modules.checkpoint_activations import checkpoint_wrapper
from torch import Tensor, nn

from .config import ResMLPSeq2SeqConfig
from .dropout import CpuFastDropout
from .sublayers import ChannelMLPSublayer, TokenMixing, make_norm


class ResMLPEncoderLayer(nn.Module):
    """One encoder layer: (non-causal) token mixing over the sentence, then the channel MLP."""

    def __init__(self, cfg: ResMLPSeq2SeqConfig) -> None:
        super().__init__()
        dim, name = cfg.encoder_embed_dim, type(self).__name__
        shared = dict(norm=cfg.sublayer_norm, layerscale_init=cfg.layerscale_init, drop_path=cfg.drop_path)
        shared.update(dropout=cfg.dropout, module_name=name)
        self.token_mixing = TokenMixing(dim, cfg.max_source_positions, causal=False, **shared)
        self.channel_mlp = ChannelMLPSublayer(
            dim, cfg.encoder_ffn_embed_dim, activation_dropout=cfg.activation_dropout, **shared
        )

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """``x`` (S, B, C) with each sentence's tokens first; ``keep`` (S, B, 1) marks them (None: no padding)."""
        return self.channel_mlp(self.token_mixing(x, keep))


class ResMLPEncoder(FairseqEncoder):
    """Embeds the source and runs the encoder layers; returns fairseq's usual ``encoder_out`` dict.

    The token-mixing matrix is indexed by absolute position, so fairseq's left padding would shift a sentence to
    different matrix rows depending on its batch. The encoder therefore moves every sentence's tokens to the front
    (left padding becomes right padding), zeroes the padding at each token mixing, and moves the outputs back to
    the caller's layout at the end. A sentence's output is then the same in any batch, with either padding side.
    """

    def __init__(self, cfg: ResMLPSeq2SeqConfig, dictionary, embed_tokens: nn.Embedding) -> None:
        super().__init__(dictionary)
        dim = cfg.encoder_embed_dim
        self.padding_idx = embed_tokens.padding_idx
        self.max_source_positions = cfg.max_source_positions
        self.embed_tokens = embed_tokens
        self.embed_scale = 1.0 if cfg.no_scale_embedding else math.sqrt(dim)
        self.embed_positions = (
            None
            if cfg.positional_embeddings == "none"
            else PositionalEmbedding(
                cfg.max_source_positions,
                dim,
                self.padding_idx,
                learned=cfg.positional_embeddings == "learned",
            )
        )
        self.dropout_module = CpuFastDropout(cfg.dropout, module_name=type(self).__name__)
        layers = [ResMLPEncoderLayer(cfg) for _ in range(cfg.encoder_layers)]
        if cfg.checkpoint_activations:
            layers = [checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations) for layer in layers]
        self.layers = nn.ModuleList(layers)
        self.final_norm = make_norm(cfg.sublayer_norm, dim)

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor | None = None, return_all_hiddens: bool = False
    ) -> dict[str, list[Tensor]]:
        """``src_tokens`` (B, S), padded on either side; returns ``encoder_out`` as (S, B, C) like the transformer."""
        if src_tokens.shape[1] > self.max_source_positions:
            raise ValueError(
                f"source has {src_tokens.shape[1]} tokens but the encoder was built for --max-source-positions "
                f"{self.max_source_positions}; fairseq skips such inputs with --skip-invalid-size-inputs-valid-test"
            )
        padding_mask = src_tokens.eq(self.padding_idx)  # (B, S), True at padding, in the caller's layout
        has_padding = bool(padding_mask.any())
        tokens = src_tokens
        tokens_first = src_tokens  # the permutation, when there is padding
        if has_padding:
            # A stable sort of "is padding" puts each sentence's tokens first, in order: right padding.
            tokens_first = torch.argsort(padding_mask.to(torch.uint8), dim=1, stable=True)
            tokens = src_tokens.gather(1, tokens_first)

        # Time-major from here on: (S, B, C), as fairseq's transformer, so token mixing is one matrix product.
        embedded = self.embed_scale * self.embed_tokens(tokens.t())
        x = embedded
        if self.embed_positions is not None:
            x = x + self.embed_positions(tokens).transpose(0, 1)
        x = self.dropout_module(x)
        keep: Tensor | None = None
        if has_padding:
            keep = tokens.t().ne(self.padding_idx).unsqueeze(-1).type_as(x)  # (S, B, 1)

        states: list[Tensor] = []
        for layer in self.layers:
            x = layer(x, keep)
            if return_all_hiddens:
                states.append(x)
        x = self.final_norm(x)

        if has_padding:
            # Back to the caller's layout, so attention weights line up with src_tokens (alignment, --replace-unk).
            to_caller = torch.argsort(tokens_first, dim=1)  # (B, S)
            time_major = to_caller.t().unsqueeze(-1).expand_as(x)
            x = x.gather(0, time_major)
            embedded = embedded.gather(0, time_major)
            states = [s.gather(0, time_major) for s in states]
        src_lengths_out: list[Tensor] = []
        if src_lengths is not None:
            src_lengths_out = [src_lengths]
        return {
            "encoder_out": [x],  # S x B x C
            "encoder_padding_mask": [padding_mask],  # B x S
            "encoder_embedding": [embedded.transpose(0, 1)],  # B x S x C
            "encoder_states": states,  # List[S x B x C]
            "src_tokens": [],
            "src_lengths": src_lengths_out,
        }

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out: dict[str, list[Tensor]], new_order: Tensor) -> dict[str, list[Tensor]]:
        """Select batch entries (beam search): dim 1 of the time-major tensors, dim 0 of the batch-major ones."""
        reordered: dict[str, list[Tensor]] = {}
        for key, values in encoder_out.items():
            dim = 1 if key == "encoder_out" or key == "encoder_states" else 0
            reordered[key] = [value.index_select(dim, new_order) for value in values]
        return reordered

    def max_positions(self) -> int:
        return self.max_source_positions
