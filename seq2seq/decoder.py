"""The seq2seq ResMLP decoder: causal token mixing, encoder-decoder attention and channel MLP, with incremental
decoding that caches each layer's token-mixing inputs and computes only the new position at each step."""

from __future__ import annotations

import math
from typing import Any

import torch
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.models import FairseqIncrementalDecoder
from fairseq.modules import PositionalEmbedding
from fairseq.modules.checkpoint_activations import checkpoint_wrapper
from torch import Tensor, nn

from .config import ResMLPSeq2SeqConfig
from .dropout import CpuFastDropout
from .sublayers import ChannelMLPSublayer, CrossAttention, TokenMixing, make_norm


@with_incremental_state
class ResMLPDecoderLayer(nn.Module):
    """Causal token mixing, then cross-attention to the encoder, then the channel MLP, on (T, B, C) tokens.

    In incremental mode the layer keeps the normalised inputs of its token mixing for all previous positions
    (``(t, B, C)``, the only thing row t of a lower-triangular mix needs) and reorders them with the beam. The
    cross-attention caches its projected encoder keys and values itself (fairseq's ``MultiheadAttention``).
    """

    def __init__(self, cfg: ResMLPSeq2SeqConfig) -> None:
        super().__init__()
        dim, name = cfg.decoder_embed_dim, type(self).__name__
        shared = dict(norm=cfg.sublayer_norm, layerscale_init=cfg.layerscale_init, drop_path=cfg.drop_path)
        shared.update(dropout=cfg.dropout, module_name=name)
        self.token_mixing = TokenMixing(dim, cfg.max_target_positions, causal=True, **shared)
        self.cross_attention = CrossAttention(
            dim, cfg.encoder_embed_dim, cfg.decoder_attention_heads, attention_dropout=cfg.attention_dropout, **shared
        )
        self.channel_mlp = ChannelMLPSublayer(
            dim, cfg.decoder_ffn_embed_dim, activation_dropout=cfg.activation_dropout, **shared
        )

    def forward(
        self,
        x: Tensor,
        encoder_out: Tensor,
        encoder_padding_mask: Tensor | None,
        incremental_state: dict[str, dict[str, Tensor | None]] | None = None,
        need_attn: bool = False,
        need_head_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` is (T, B, C), or (1, B, C) holding only the newest position when ``incremental_state`` is given."""
        if incremental_state is None:
            x = self.token_mixing(x)
        else:
            x = self._mix_newest_position(x, incremental_state)
        x, attn = self.cross_attention(
            x, encoder_out, encoder_padding_mask, incremental_state, need_attn or need_head_weights, need_head_weights
        )
        return self.channel_mlp(x), attn

    def _mix_newest_position(self, x: Tensor, incremental_state: dict[str, dict[str, Tensor | None]]) -> Tensor:
        normed = self.token_mixing.norm(x)  # (1, B, C)
        cache = self.get_incremental_state(incremental_state, "token_mixing")
        if cache is not None:
            previous = cache["inputs"]
            assert previous is not None
            normed = torch.cat([previous, normed], dim=0)  # (t+1, B, C)
        updated: dict[str, Tensor | None] = {"inputs": normed}
        self.set_incremental_state(incremental_state, "token_mixing", updated)
        return self.token_mixing.newest_position(x, normed)

    def reorder_incremental_state(
        self, incremental_state: dict[str, dict[str, Tensor | None]], new_order: Tensor
    ) -> None:
        """Follow beam search: keep the cached inputs of the hypotheses in ``new_order``."""
        cache = self.get_incremental_state(incremental_state, "token_mixing")
        if cache is not None:
            inputs = cache["inputs"]
            if inputs is not None:
                reordered: dict[str, Tensor | None] = {"inputs": inputs.index_select(1, new_order)}
                self.set_incremental_state(incremental_state, "token_mixing", reordered)


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
        self.dropout_module = CpuFastDropout(cfg.dropout, module_name=type(self).__name__)
        layers = [ResMLPDecoderLayer(cfg) for _ in range(cfg.decoder_layers)]
        if cfg.checkpoint_activations:
            layers = [checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations) for layer in layers]
        self.layers = nn.ModuleList(layers)
        self.num_layers = len(layers)
        self.final_norm = make_norm(cfg.sublayer_norm, dim)
        self.output_projection = output_projection

    # No **kwargs (TorchScript compiles neither): the arguments are those fairseq's transformer decoder takes.
    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: dict[str, list[Tensor]] | None = None,
        incremental_state: dict[str, dict[str, Tensor | None]] | None = None,
        features_only: bool = False,
        full_context_alignment: bool = False,
        alignment_layer: int | None = None,
        alignment_heads: int | None = None,
        src_lengths: Any | None = None,
        return_all_hiddens: bool = False,
    ) -> tuple[Tensor, dict[str, list[Tensor | None]]]:
        """Returns logits (B, T, V) and ``{"attn": [cross-attention], "inner_states": [(T, B, C) per layer]}``.

        ``attn`` is the head-averaged attention of ``alignment_layer`` (default: the last layer), over its first
        ``alignment_heads`` heads (default: all), as fairseq's transformer; it is computed in eval mode only.
        ``full_context_alignment`` does not apply: the token mixing is causal by construction.
        """
        x, extra = self.extract_features(
            prev_output_tokens, encoder_out, incremental_state, full_context_alignment, alignment_layer, alignment_heads
        )
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(
        self,
        prev_output_tokens: Tensor,
        encoder_out: dict[str, list[Tensor]] | None,
        incremental_state: dict[str, dict[str, Tensor | None]] | None = None,
        full_context_alignment: bool = False,
        alignment_layer: int | None = None,
        alignment_heads: int | None = None,
    ) -> tuple[Tensor, dict[str, list[Tensor | None]]]:
        """Decoder features (B, T, C) before the output projection, and the ``attn`` / ``inner_states`` extras."""
        if encoder_out is None or len(encoder_out["encoder_out"]) == 0:
            raise ValueError("the ResMLP decoder attends to the encoder: pass the encoder's output as encoder_out")
        length = prev_output_tokens.shape[1]
        if length > self.max_target_positions:
            raise ValueError(
                f"target has {length} tokens but the decoder was built for --max-target-positions "
                f"{self.max_target_positions}; fairseq skips such inputs with --skip-invalid-size-inputs-valid-test"
            )
        if alignment_layer is None:
            alignment_layer = self.num_layers - 1
        positions: Tensor | None = None
        if self.embed_positions is not None:
            positions = self.embed_positions(prev_output_tokens, incremental_state=incremental_state)
        if incremental_state is not None:
            # Only the newest token is new; every layer holds what it needs about the earlier ones.
            prev_output_tokens = prev_output_tokens[:, -1:]
            if positions is not None:
                positions = positions[:, -1:]

        x = self.embed_scale * self.embed_tokens(prev_output_tokens.t())  # (T, B, C): time-major
        if positions is not None:
            x = x + positions.transpose(0, 1)
        x = self.dropout_module(x)

        memory = encoder_out["encoder_out"][0]
        memory_padding_mask: Tensor | None = None
        if len(encoder_out["encoder_padding_mask"]) > 0:
            memory_padding_mask = encoder_out["encoder_padding_mask"][0]
        attn: Tensor | None = None
        inner_states: list[Tensor | None] = [x]
        for index, layer in enumerate(self.layers):
            # As the transformer: report one layer's cross-attention (alignment, --print-alignment).
            need_attn = index == alignment_layer and not self.training
            x, layer_attn = layer(x, memory, memory_padding_mask, incremental_state, need_attn, need_attn)
            if layer_attn is not None and need_attn:
                attn = layer_attn.float().to(x)
            inner_states.append(x)
        if attn is not None:
            if alignment_heads is not None:
                attn = attn[:alignment_heads]
            attn = attn.mean(dim=0)  # (B, T, S)
        x = self.final_norm(x).transpose(0, 1)  # (B, T, C)
        return x, {"attn": [attn], "inner_states": inner_states}

    def output_layer(self, features: Tensor) -> Tensor:
        return self.output_projection(features)

    def max_positions(self) -> int:
        return self.max_target_positions
