"""The residual sublayers of the seq2seq ResMLP, built from the `resmlp` layers (never copies of them).

Token mixing and the channel MLP are ``resmlp.layers.PreAffineResidual`` around ``CrossPatchLinear`` /
``ChannelMLP``; only the encoder-decoder attention, which ResMLP does not have, is new. Two things the image model
never needs live here too: masking padded tokens out of the encoder's token mixing, and computing one new causal
position from cached inputs during incremental decoding.
"""

from __future__ import annotations

import torch
from fairseq.modules import MultiheadAttention
from torch import nn

from resmlp.layers import Affine, ChannelMLP, CrossPatchLinear, DropPath, LayerScale, PreAffineResidual


def make_norm(kind: str, dim: int) -> nn.Module:
    """The pre-normalisation of a sublayer: ResMLP's ``Affine`` or a transformer-style ``LayerNorm``."""
    if kind == "affine":
        return Affine(dim)
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    raise ValueError(f"--sublayer-norm must be 'affine' or 'layernorm', got {kind!r}")


class DroppedTokenMixing(nn.Module):
    """``dropout(CrossPatchLinear(x))``: the token-mixing op, with the transformer's dropout on its output."""

    def __init__(self, num_tokens: int, *, causal: bool, dropout: float) -> None:
        super().__init__()
        self.mix = CrossPatchLinear(num_tokens, causal=causal)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.mix(x))

    def last_position(self, inputs: torch.Tensor) -> torch.Tensor:
        """Causal output at the last of ``inputs`` (B, t+1, C) only: row t of the lower-triangular matrix.

        Costs O(t C) instead of the full O(t^2 C) product; equal to ``forward(inputs)[:, -1:]``.
        """
        position = inputs.shape[1] - 1
        if position >= self.mix.num_tokens:
            raise ValueError(
                f"decoding position {position} is past --max-target-positions ({self.mix.num_tokens}); "
                "generate shorter outputs (--max-len-b) or train with a larger --max-target-positions"
            )
        # Row t of the causal matrix is weight[t, :t+1]: the columns after t are the masked upper triangle.
        row = self.mix.weight[position, : position + 1]
        out = torch.matmul(row.unsqueeze(0), inputs)  # (1, t+1) @ (B, t+1, C) -> (B, 1, C)
        if self.mix.bias is not None:
            out = out + self.mix.bias[position]
        return self.dropout(out)


def token_mixing_sublayer(
    dim: int, num_tokens: int, *, causal: bool, norm: str, layerscale_init: float, drop_path: float, dropout: float
) -> PreAffineResidual:
    """``x + drop_path(ls(dropout(A @ norm(x))))`` with A causal in the decoder."""
    sublayer = PreAffineResidual(
        dim,
        DroppedTokenMixing(num_tokens, causal=causal, dropout=dropout),
        layerscale_init=layerscale_init,
        drop_path=drop_path,
    )
    if norm != "affine":
        sublayer.norm = make_norm(norm, dim)
    return sublayer


def channel_mlp_sublayer(
    dim: int, hidden_dim: int, *, norm: str, layerscale_init: float, drop_path: float, dropout: float
) -> PreAffineResidual:
    """``x + drop_path(ls(MLP(norm(x))))`` with dropout after each of the MLP's linear layers."""
    sublayer = PreAffineResidual(
        dim, ChannelMLP(dim, hidden_dim, drop=dropout), layerscale_init=layerscale_init, drop_path=drop_path
    )
    if norm != "affine":
        sublayer.norm = make_norm(norm, dim)
    return sublayer


def masked_token_mixing(sublayer: PreAffineResidual, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``sublayer(x)`` with padded tokens zeroed at the input of the token mixing.

    ``PreAffineResidual.forward`` cannot take a mask, and the Affine's shift makes padded positions non-zero after
    the norm, so they would leak into real tokens through ``A[n, m]``; zeroing them there is exactly the paper's
    "zero padding". ``keep`` is (B, L, 1), 1 for tokens and 0 for padding.
    """
    return x + sublayer.drop_path(sublayer.ls(sublayer.op(sublayer.norm(x) * keep)))


class CrossAttentionSublayer(nn.Module):
    """``x + drop_path(ls(dropout(attention(norm(x), encoder_out))))``: the decoder's encoder-decoder attention.

    Same residual form as the ResMLP sublayers; the attention is fairseq's ``MultiheadAttention``, so its cached
    encoder keys and values follow beam reordering like the transformer's.
    """

    def __init__(
        self,
        dim: int,
        encoder_dim: int,
        num_heads: int,
        *,
        norm: str,
        layerscale_init: float,
        drop_path: float,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.attn = MultiheadAttention(
            dim,
            num_heads,
            kdim=encoder_dim,
            vdim=encoder_dim,
            dropout=attention_dropout,
            encoder_decoder_attention=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.ls = LayerScale(dim, layerscale_init)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_padding_mask: torch.Tensor | None,
        incremental_state: dict | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` is (B, T, C), ``encoder_out`` (S, B, C_enc); returns (B, T, C) and head-averaged (B, T, S)."""
        query = self.norm(x).transpose(0, 1)  # (T, B, C): fairseq attention is time-major
        out, weights = self.attn(
            query,
            encoder_out,
            encoder_out,
            key_padding_mask=encoder_padding_mask,
            incremental_state=incremental_state,
            static_kv=True,
            need_weights=need_weights,
        )
        return x + self.drop_path(self.ls(self.dropout(out.transpose(0, 1)))), weights
