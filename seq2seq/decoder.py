"""The seq2seq ResMLP decoder: causal token mixing, encoder-decoder attention and channel MLP, with incremental
decoding that caches each layer's token-mixing inputs and computes only the new position at each step."""

from __future__ import annotations

import math

import torch
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.models import FairseqIncrementalDecoder
from fairseq.modules import PositionalEmbedding
from torch import nn

from .config import ResMLPSeq2SeqConfig
from .sublayers import CrossAttentionSublayer, channel_mlp_sublayer, make_norm, token_mixing_sublayer


@with_incremental_state
class ResMLPDecoderLayer(nn.Module):
    """Causal token mixing, then cross-attention to the encoder, then the channel MLP.

    In incremental mode the layer keeps, per sentence, the normalised inputs of its token mixing for all previous
    positions (``(B, t, C)``, the only thing row t of a lower-triangular mix needs) and reorders them with the beam.
    The cross-attention caches its projected encoder keys and values itself (fairseq's ``MultiheadAttention``).
    """

    def __init__(self, cfg: ResMLPSeq2SeqConfig) -> None:
        super().__init__()
        dim = cfg.decoder_embed_dim
        shared = dict(norm=cfg.sublayer_norm, layerscale_init=cfg.layerscale_init, drop_path=cfg.drop_path)
        self.token_mixing = token_mixing_sublayer(
            dim, cfg.max_target_positions, causal=True, dropout=cfg.dropout, **shared
        )
        self.cross_attention = CrossAttentionSublayer(
            dim,
            cfg.encoder_embed_dim,
            cfg.decoder_attention_heads,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
            **shared,
        )
        self.channel_mlp = channel_mlp_sublayer(dim, cfg.decoder_ffn_embed_dim, dropout=cfg.dropout, **shared)

    def forward(
        self,
        x: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_padding_mask: torch.Tensor | None,
        incremental_state: dict | None = None,
        need_attn: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` is (B, T, C), or (B, 1, C) holding only the newest position when ``incremental_state`` is given."""
        if incremental_state is None:
            x = self.token_mixing(x)
        else:
            x = self._mix_newest_position(x, incremental_state)
        x, attn = self.cross_attention(x, encoder_out, encoder_padding_mask, incremental_state, need_attn)
        return self.channel_mlp(x), attn

    def _mix_newest_position(self, x: torch.Tensor, incremental_state: dict) -> torch.Tensor:
        sublayer = self.token_mixing
        normed = sublayer.norm(x)  # (B, 1, C)
        cache = self.get_incremental_state(incremental_state, "token_mixing")
        inputs = normed if cache is None else torch.cat([cache["inputs"], normed], dim=1)  # (B, t+1, C)
        self.set_incremental_state(incremental_state, "token_mixing", {"inputs": inputs})
        return x + sublayer.drop_path(sublayer.ls(sublayer.op.last_position(inputs)))

    def reorder_incremental_state(self, incremental_state: dict, new_order: torch.Tensor) -> None:
        """Follow beam search: keep the cached inputs of the hypotheses in ``new_order``."""
        cache = self.get_incremental_state(incremental_state, "token_mixing")
        if cache is not None:
            cache = {"inputs": cache["inputs"].index_select(0, new_order)}
            self.set_incremental_state(incremental_state, "token_mixing", cache)


class ResMLPDecoder(FairseqIncrementalDecoder):
    """Embeds the shifted target, runs the decoder layers and projects to the vocabulary."""

    def __init__(
        self, cfg: ResMLPSeq2SeqConfig, dictionary, embed_tokens: nn.Embedding, output_projection: nn.Linear
    ) -> None:
        super().__init__(dictionary)
        dim = cfg.decoder_embed_dim
        self.padding_idx = embed_tokens.padding_idx
        self.max_target_positions = cfg.max_target_positions
        self.embed_tokens = embed_tokens
        self.embed_scale = 1.0 if cfg.no_scale_embedding else math.sqrt(dim)
        self.embed_positions = (
            None
            if cfg.positional_embeddings == "none"
            else PositionalEmbedding(
                cfg.max_target_positions,
                dim,
                self.padding_idx,
                learned=cfg.positional_embeddings == "learned",
            )
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ResMLPDecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.final_norm = make_norm(cfg.sublayer_norm, dim)
        self.output_projection = output_projection

    def forward(
        self,
        prev_output_tokens: torch.Tensor,
        encoder_out: dict[str, list[torch.Tensor]] | None = None,
        incremental_state: dict | None = None,
        features_only: bool = False,
        **unused,
    ) -> tuple[torch.Tensor, dict]:
        """Returns logits (B, T, V) and ``{"attn": [cross-attention of the last layer], "inner_states": [...]}``."""
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(
        self,
        prev_output_tokens: torch.Tensor,
        encoder_out: dict[str, list[torch.Tensor]] | None = None,
        incremental_state: dict | None = None,
        **unused,
    ) -> tuple[torch.Tensor, dict]:
        if encoder_out is None or len(encoder_out["encoder_out"]) == 0:
            raise ValueError("the ResMLP decoder attends to the encoder: pass the encoder's output as encoder_out")
        length = prev_output_tokens.shape[1]
        if length > self.max_target_positions:
            raise ValueError(
                f"target has {length} tokens but the decoder was built for --max-target-positions "
                f"{self.max_target_positions}; fairseq skips such inputs with --skip-invalid-size-inputs-valid-test"
            )
        positions = None
        if self.embed_positions is not None:
            positions = self.embed_positions(prev_output_tokens, incremental_state=incremental_state)
        if incremental_state is not None:
            # Only the newest token is new; every layer holds what it needs about the earlier ones.
            prev_output_tokens = prev_output_tokens[:, -1:]
            if positions is not None:
                positions = positions[:, -1:]

        x = self.embed_scale * self.embed_tokens(prev_output_tokens)
        if positions is not None:
            x = x + positions
        x = self.dropout(x)

        memory = encoder_out["encoder_out"][0]
        memory_padding_mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        attn = None
        inner_states = [x]
        for index, layer in enumerate(self.layers):
            # Like the transformer, report the last layer's cross-attention (alignment, --print-alignment).
            need_attn = index == len(self.layers) - 1 and not self.training
            x, layer_attn = layer(x, memory, memory_padding_mask, incremental_state, need_attn)
            if layer_attn is not None:
                attn = layer_attn.float()
            inner_states.append(x)
        x = self.final_norm(x)
        return x, {"attn": [attn], "inner_states": inner_states}

    def output_layer(self, features: torch.Tensor) -> torch.Tensor:
        return self.output_projection(features)

    def max_positions(self) -> int:
        return self.max_target_positions
