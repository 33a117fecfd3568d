"""The plugin's dropout: fairseq's ``FairseqDropout`` (same options and switches), with a cheaper mask on the CPU.

On the CPU, ``F.dropout`` draws one Bernoulli sample per element, about 8 ns each on a 2-core development machine:
a sixth of the small models' training step (docs/seq2seq.md, "Speed against the transformer"). Here the mask comes
from 64 random bits per call of the generator, cut into four 16-bit slices compared with a threshold, about a
third of the cost. The drop probability is therefore rounded to a multiple of 1/65536 (0.1 becomes 0.1000061) and
the kept values are divided by the rounded keep probability, so the expected output is still the input. On other
devices (CUDA has a fused dropout kernel), and wherever fairseq would not drop, it is ``FairseqDropout`` itself:
``--retain-dropout``, ``--retain-dropout-modules`` and ``prepare_for_inference_`` work unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fairseq.modules import FairseqDropout
from torch import Tensor

_SLICES = 65536  # values of a 16-bit slice


class CpuFastDropout(FairseqDropout):
    """``FairseqDropout`` whose CPU mask costs one random draw per four elements."""

    def __init__(self, p: float, module_name: str | None = None) -> None:
        super().__init__(p, module_name=module_name)
        dropped = round(p * _SLICES)
        self.threshold = dropped - _SLICES // 2  # an int16 slice below this value drops its element
        self.keep_scale = _SLICES / (_SLICES - dropped) if dropped < _SLICES else 0.0

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        if not (self.p > 0 and (self.training or self.apply_during_inference)):
            return x
        if x.device.type != "cpu":
            return F.dropout(x, p=self.p, training=True, inplace=inplace)  # as FairseqDropout.forward
        return x.mul_(self.mask(x)) if inplace else x * self.mask(x)

    def add_to(self, residual: Tensor, branch: Tensor) -> Tensor:
        """``residual + self(branch)``, the mask and the add in one pass where the CPU mask applies."""
        if self.p > 0 and (self.training or self.apply_during_inference) and branch.device.type == "cpu":
            return torch.addcmul(residual, branch, self.mask(branch))
        return residual + self.forward(branch)

    def mask(self, like: Tensor) -> Tensor:
        """0 (dropped) or ``keep_scale`` (kept) per element of ``like``, in its dtype; from torch's CPU generator."""
        count = like.numel()
        # The whole int64 range (literals: TorchScript reads no module globals); high is exclusive, a 2^-64 bias.
        words = torch.randint(-9223372036854775807 - 1, 9223372036854775807, ((count + 3) // 4,), dtype=torch.int64)
        slices = words.view(torch.int16)[:count].view(like.shape)
        return (slices >= self.threshold).to(like.dtype).mul_(self.keep_scale)
