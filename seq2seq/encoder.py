"""The seq2seq ResMLP encoder: token-mixing + channel-MLP layers over the source, invariant to batch padding."""

from __future__ import annotations

import math

import torch
from fairseq.models import FairseqEncoder
from fairseq.modules import PositionalEmbedding
from torch import nn

from .config import ResMLPSeq2SeqConfig
from .sublayers import channel_mlp_sublayer, make_norm, masked_token_mixing, token_mixing_sublayer


class ResMLPEncoderLayer(nn.Module):
    """One encoder layer: (non-causal) token mixing over the sentence, then the channel MLP."""

    def __init__(self, cfg: ResMLPSeq2SeqConfig) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        shared = dict(norm=cfg.sublayer_norm, layerscale_init=cfg.layerscale_init, drop_path=cfg.drop_path)
        self.token_mixing = token_mixing_sublayer(
            dim, cfg.max_source_positions, causal=False, dropout=cfg.dropout, **shared
        )
        self.channel_mlp = channel_mlp_sublayer(dim, cfg.encoder_ffn_embed_dim, dropout=cfg.dropout, **shared)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` (B, L, C) with tokens first and padding last; ``keep`` (B, L, 1) marks the tokens."""
        return self.channel_mlp(masked_token_mixing(self.token_mixing, x, keep))


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
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ResMLPEncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.final_norm = make_norm(cfg.sublayer_norm, dim)

    def forward(
        self, src_tokens: torch.Tensor, src_lengths: torch.Tensor | None = None, return_all_hiddens: bool = False
    ) -> dict[str, list[torch.Tensor]]:
        """``src_tokens`` (B, S), padded on either side; returns ``encoder_out`` as (S, B, C) like the transformer."""
        if src_tokens.shape[1] > self.max_source_positions:
            raise ValueError(
                f"source has {src_tokens.shape[1]} tokens but the encoder was built for --max-source-positions "
                f"{self.max_source_positions}; fairseq skips such inputs with --skip-invalid-size-inputs-valid-test"
            )
        padding_mask = src_tokens.eq(self.padding_idx)  # (B, S), True at padding, in the caller's layout
        has_padding = bool(padding_mask.any())
        tokens = src_tokens
        if has_padding:
            # A stable sort of "is padding" puts each sentence's tokens first, in order: right padding.
            tokens_first = torch.argsort(padding_mask.to(torch.uint8), dim=1, stable=True)
            tokens = src_tokens.gather(1, tokens_first)

        embedded = self.embed_scale * self.embed_tokens(tokens)
        x = embedded
        if self.embed_positions is not None:
            x = x + self.embed_positions(tokens)
        x = self.dropout(x)
        keep = tokens.ne(self.padding_idx).unsqueeze(-1).type_as(x)  # (B, S, 1)
        x = x * keep

        states = []
        for layer in self.layers:
            x = layer(x, keep)
            if return_all_hiddens:
                states.append(x)
        x = self.final_norm(x)

        if has_padding:
            # Back to the caller's layout, so attention weights line up with src_tokens (alignment, --replace-unk).
            to_caller = torch.argsort(tokens_first, dim=1)
            gather = to_caller.unsqueeze(-1).expand_as(x)
            x = x.gather(1, gather)
            embedded = embedded.gather(1, gather)
            states = [s.gather(1, gather) for s in states]
        return {
            "encoder_out": [x.transpose(0, 1)],  # S x B x C
            "encoder_padding_mask": [padding_mask],  # B x S
            "encoder_embedding": [embedded],  # B x S x C
            "encoder_states": [s.transpose(0, 1) for s in states],  # List[S x B x C]
            "src_tokens": [],
            "src_lengths": [] if src_lengths is None else [src_lengths],
        }

    def reorder_encoder_out(self, encoder_out: dict[str, list[torch.Tensor]], new_order: torch.Tensor):
        """Select batch entries (beam search): dim 1 of time-major tensors, dim 0 of batch-major ones."""
        time_major = ("encoder_out", "encoder_states")
        return {
            key: [t.index_select(1 if key in time_major else 0, new_order) for t in values]
            for key, values in encoder_out.items()
        }

    def max_positions(self) -> int:
        return self.max_source_positions
