"""The residual sublayers of the seq2seq ResMLP, on time-major tokens ``(T, B, C)`` as fairseq's transformer.

Each sublayer is ``resmlp.layers.PreAffineResidual`` (``norm``, ``op``, ``ls``, ``drop_path``: the parameters keep
their names and shapes) with a forward pass for sentences: token mixing is ``CrossPatchLinear``'s matrix on the
time axis, the channel MLP is ``ChannelMLP``'s two linear layers, and the encoder-decoder attention, which ResMLP
does not have, is fairseq's ``MultiheadAttention``. What the image model never needs lives here:

- time-major layout, so token mixing is one (T, T) @ (T, B*C) product and nothing is transposed around attention;
- fairseq's dropout (``FairseqDropout``, so ``--retain-dropout`` and ``prepare_for_inference_`` reach it, with the
  cheaper CPU mask of ``seq2seq/dropout.py``) on every sublayer's output, and ``--activation-dropout`` inside the
  channel MLP;
- masking padded tokens out of the encoder's token mixing, and one new causal position from cached inputs
  during incremental decoding.

With the default Affine norm the channel MLP runs with the Affine folded into its first linear layer and the
LayerScale into its second, computed from the parameters at every call (the algebra of ``resmlp.fast.folding``):
each sublayer is then its matrix products plus its dropout and one residual add. Everything here is TorchScript.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from fairseq.modules import MultiheadAttention
from torch import Tensor, nn

from resmlp.layers import Affine, ChannelMLP, CrossPatchLinear, DropPath, LayerScale, PreAffineResidual

from .dropout import CpuFastDropout


def make_norm(kind: str, dim: int) -> nn.Module:
    """The pre-normalisation of a sublayer: ResMLP's ``Affine`` or a transformer-style ``LayerNorm``."""
    if kind == "affine":
        return Affine(dim)
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    raise ValueError(f"--sublayer-norm must be 'affine' or 'layernorm', got {kind!r}")


def scaled_residual(x: Tensor, branch: Tensor, gamma: Tensor, drop_path: DropPath) -> Tensor:
    """``x + drop_path(gamma * branch)`` in one pass: LayerScale and the residual add as one ``addcmul``."""
    keep = drop_path.keep_mask(branch, 1)  # time-major: samples along dim 1
    if keep is not None:
        branch = branch * keep
    return torch.addcmul(x, branch, gamma)


class TokenMixing(PreAffineResidual):
    """``x + drop_path(ls(dropout(A @ norm(x))))``, A mixing the T positions of ``(T, B, C)`` tokens.

    ``op`` is a ``CrossPatchLinear`` (causal in the decoder); a batch of length T uses its top-left T x T block.
    """

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        *,
        causal: bool,
        norm: str,
        layerscale_init: float,
        drop_path: float,
        dropout: float,
        module_name: str,
    ) -> None:
        op = CrossPatchLinear(num_tokens, causal=causal)
        norm_layer = functools.partial(make_norm, norm)
        super().__init__(dim, op, layerscale_init=layerscale_init, drop_path=drop_path, norm_layer=norm_layer)
        self.dropout_module = CpuFastDropout(dropout, module_name=module_name)

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """``x`` (T, B, C); ``keep`` (T, B, 1) is 1 at tokens and 0 at padding, which it zeroes at the mixing's input.

        Zeroing after the norm matters: the Affine's shift makes padded positions non-zero, and they would leak
        into real tokens through ``A[n, m]`` (the paper's "zero padding").
        """
        length, batch, dim = x.shape
        normed = self.norm(x)
        if keep is not None:
            normed = normed * keep
        mixed = torch.addmm(
            self.token_bias(length), self.op.mixing_matrix(length), normed.reshape(length, batch * dim)
        ).view(length, batch, dim)
        return scaled_residual(x, self.dropout_module(mixed), self.ls.gamma, self.drop_path)

    def token_bias(self, length: int) -> Tensor:
        """The per-position bias as a (length, 1) column (zeros when the layer has none)."""
        bias = self.op.bias
        if bias is None:
            return self.op.weight.new_zeros(length, 1)
        return bias[:length].unsqueeze(1)

    def newest_position(self, x: Tensor, normed_inputs: Tensor) -> Tensor:
        """The output at the last position only, from the normed inputs of every position so far.

        ``x`` (1, B, C) is the newest position; ``normed_inputs`` (t+1, B, C) holds ``norm`` of positions 0..t.
        Row t of the causal matrix is ``weight[t, :t+1]``, so this costs O(t C) instead of the full O(t^2 C)
        product, and equals ``forward`` of the whole prefix at position t.
        """
        position = normed_inputs.shape[0] - 1
        if position >= self.op.num_tokens:
            raise ValueError(
                f"decoding position {position} is past --max-target-positions ({self.op.num_tokens}); "
                "generate shorter outputs (--max-len-b) or train with a larger --max-target-positions"
            )
        _, batch, dim = normed_inputs.shape
        row = self.op.weight[position : position + 1, : position + 1]  # (1, t+1)
        mixed = torch.addmm(
            self.token_bias(position + 1)[position:], row, normed_inputs.reshape(position + 1, batch * dim)
        ).view(1, batch, dim)
        return scaled_residual(x, self.dropout_module(mixed), self.ls.gamma, self.drop_path)


class ChannelMLPSublayer(PreAffineResidual):
    """``x + drop_path(ls(dropout(fc2(activation_dropout(gelu(fc1(norm(x))))))))`` on every token.

    ``op`` is ``resmlp.layers.ChannelMLP`` (its own dropout unused: fairseq's dropouts are here). With the Affine
    norm, ``fc1(alpha * x + beta) = (W1 diag(alpha)) x + (b1 + W1 beta)`` and, since dropout commutes with a
    per-channel scale, ``gamma * dropout(fc2(h)) = dropout((diag(gamma) W2) h + gamma b2)``: the folded weights are
    computed from the parameters at every call (autograd takes the gradients back to them), and the Affine and
    LayerScale cost no pass over the activations.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        *,
        norm: str,
        layerscale_init: float,
        drop_path: float,
        dropout: float,
        activation_dropout: float,
        module_name: str,
    ) -> None:
        norm_layer = functools.partial(make_norm, norm)
        op = ChannelMLP(dim, hidden_dim)
        super().__init__(dim, op, layerscale_init=layerscale_init, drop_path=drop_path, norm_layer=norm_layer)
        self.activation_dropout_module = CpuFastDropout(activation_dropout, module_name=module_name)
        self.dropout_module = CpuFastDropout(dropout, module_name=module_name)

    def forward(self, x: Tensor) -> Tensor:
        fc1, fc2, gamma = self.op.fc1, self.op.fc2, self.ls.gamma
        if hasattr(self.norm, "alpha"):  # the Affine (TorchScript resolves hasattr on a module when compiling)
            alpha, beta = self.norm.alpha, self.norm.beta
            hidden = F.linear(x, fc1.weight * alpha, torch.addmv(fc1.bias, fc1.weight, beta))
        else:
            hidden = fc1(self.norm(x))
        hidden = self.activation_dropout_module(self.op.act(hidden))
        branch = F.linear(hidden, fc2.weight * gamma.unsqueeze(1), fc2.bias * gamma)
        keep = self.drop_path.keep_mask(branch, 1)
        if keep is None:
            return self.dropout_module.add_to(x, branch)  # the dropout mask and the residual add in one pass
        return torch.addcmul(x, self.dropout_module(branch), keep)


class CrossAttention(nn.Module):
    """``x + drop_path(ls(dropout(attention(norm(x), encoder_out))))``: the decoder's encoder-decoder attention.

    The same residual form as the ResMLP sublayers; the attention is fairseq's ``MultiheadAttention``, so its
    cached encoder keys and values follow beam reordering as the transformer's do.
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
        module_name: str,
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
        self.dropout_module = CpuFastDropout(dropout, module_name=module_name)
        self.ls = LayerScale(dim, layerscale_init)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: Tensor,
        encoder_out: Tensor,
        encoder_padding_mask: Tensor | None,
        incremental_state: dict[str, dict[str, Tensor | None]] | None = None,
        need_weights: bool = False,
        need_head_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (T, B, C), ``encoder_out`` (S, B, C_enc); returns (T, B, C) and the weights (B, T, S), or
        (heads, B, T, S) with ``need_head_weights``."""
        out, weights = self.attn(
            self.norm(x),
            encoder_out,
            encoder_out,
            key_padding_mask=encoder_padding_mask,
            incremental_state=incremental_state,
            static_kv=True,
            need_weights=need_weights,
            need_head_weights=need_head_weights,
        )
        return scaled_residual(x, self.dropout_module(out), self.ls.gamma, self.drop_path), weights
