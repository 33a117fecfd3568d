"""Cross-patch (token-mixing) linear layer: the sublayer that replaces self-attention in ResMLP (paper Eq. 2)."""

from __future__ import annotations

import torch
from torch import nn


class CrossPatchLinear(nn.Module):
    """A linear map along the token axis, shared by every channel: ``y[:, n, c] = sum_m A[n, m] x[:, m, c] + b[n]``.

    Input and output are ``(B, L, C)`` with ``L <= num_tokens``. It is computed as one batched matrix product
    ``A @ x`` on the token-major view, so no transpose or copy of the activations is made (the official and timm
    code transpose to ``(B, C, N)`` and back around an ``nn.Linear``).

    Args:
        num_tokens: N, the largest number of tokens; the matrix is N x N (the deit name for it is ``attn``).
        bias: Add a learned per-token bias (the released models have one).
        causal: Use only the lower triangle, so output n depends on inputs <= n (the seq2seq decoder).

    A shorter input of length L uses the top-left L x L block of the matrix and the first L biases, which is
    exactly what the full matrix gives on the zero-padded input (and, when causal, on any continuation).
    """

    def __init__(self, num_tokens: int, *, bias: bool = True, causal: bool = False) -> None:
        super().__init__()
        if num_tokens <= 0:
            raise ValueError(f"num_tokens must be positive, got {num_tokens}")
        self.num_tokens = num_tokens
        self.causal = causal
        self.weight = nn.Parameter(torch.empty(num_tokens, num_tokens))
        self.bias = nn.Parameter(torch.zeros(num_tokens)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The official init: truncated normal, std 0.02, zero bias.
        nn.init.trunc_normal_(self.weight, std=0.02, a=-2.0, b=2.0)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def mixing_matrix(self, length: int | None = None) -> torch.Tensor:
        """The effective (length x length) token-mixing matrix, masked to its lower triangle when causal."""
        length = self.num_tokens if length is None else length
        if length > self.num_tokens:
            raise ValueError(
                f"input has {length} tokens but this token-mixing layer was built for at most {self.num_tokens}; "
                "shorten the input or build the model for a longer length"
            )
        weight = self.weight if length == self.num_tokens else self.weight[:length, :length]
        return weight.tril() if self.causal else weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        weight = self.mixing_matrix(length)
        if x.ndim == 3:
            # (L, L) @ (B, L, C) -> (B, L, C), bias broadcast along channels, in one batched GEMM.
            batch = x.shape[0]
            bias = self.bias[:length].view(1, length, 1) if self.bias is not None else x.new_zeros(())
            return torch.baddbmm(bias, weight.expand(batch, length, length), x)
        out = torch.matmul(weight, x)
        return out + self.bias[:length, None] if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, bias={self.bias is not None}, causal={self.causal}"
