"""Cross-patch (token-mixing) linear layer: the sublayer that replaces self-attention in ResMLP (paper Eq. 2)."""

from __future__ import annotations

import torch
from torch import nn


@torch.fx.wrap
def check_num_tokens(length: int, num_tokens: int) -> None:
    """Refuse an input longer than the mixing matrix (a leaf for ``torch.fx``: shapes are not traced values)."""
    if length > num_tokens:
        raise ValueError(
            f"input has {length} tokens but this token-mixing layer was built for at most {num_tokens}; "
            "shorten the input or build the model for a longer length"
        )


class CrossPatchLinear(nn.Module):
    """A linear map along the token axis, shared by every channel: ``y[:, n, c] = sum_m A[n, m] x[:, m, c] + b[n]``.

    Input and output are ``(B, L, C)`` with ``L <= num_tokens``, computed as ``A @ x`` (the official and timm code
    transpose to ``(B, C, N)`` and back around an ``nn.Linear``; the product is the same).

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
        check_num_tokens(length, self.num_tokens)
        weight = self.weight[:length, :length]
        return weight.tril() if self.causal else weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        out = torch.matmul(self.mixing_matrix(length), x)
        if self.bias is not None:
            out = out + self.bias[:length].unsqueeze(-1)
        return out

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, bias={self.bias is not None}, causal={self.causal}"
