"""The DINO loss: cross-entropy between a centred, sharpened teacher and the student, over pairs of different views.

As facebookresearch/dino ``main_dino.DINOLoss``, with two changes that keep the numbers identical: the centre update
works without a process group (the reference calls ``all_reduce`` unconditionally, dino#3), and it reduces the
sample count as well as the sum, so an uneven last batch across processes is averaged exactly.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .diagnostics import collapse_diagnostics


class DINOLoss(nn.Module):
    """Self-distillation loss with teacher centring.

    Args:
        out_dim: Width K of the head's output.
        num_global_crops: Views that go through the teacher; they come first in the student's output.
        student_temp: Student softmax temperature (0.1).
        center_momentum: EMA momentum of the centre (0.9).

    ``forward(student_output, teacher_output, teacher_temp)`` takes the student's scores for all V views
    concatenated view by view, ``(V * B, K)``, and the teacher's for the global views, ``(G * B, K)``; the teacher
    temperature comes from the schedule at every call (``ssl_dino.schedules.teacher_temp_schedule``). After the
    loss it updates the centre from the teacher output (no gradient).
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        *,
        num_global_crops: int = 2,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if num_global_crops < 1:
            raise ValueError(f"num_global_crops must be at least 1, got {num_global_crops}")
        if student_temp <= 0 or not 0.0 <= center_momentum <= 1.0:
            raise ValueError(
                f"need student_temp > 0 and center_momentum in [0, 1], got {student_temp} and {center_momentum}"
            )
        self.out_dim = out_dim
        self.num_global_crops = num_global_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        # The centre the last forward used (the update replaces the tensor, so keeping it costs nothing); the
        # diagnostics need it to rebuild exactly the teacher targets of that step.
        self.last_center: torch.Tensor | None = None

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Mean over every (teacher view, student view) pair with different views of ``H(teacher, student)``."""
        num_views = self._num_views(student_output, teacher_output)
        if teacher_temp <= 0:
            raise ValueError(f"teacher_temp must be positive, got {teacher_temp}")
        # float32 for the softmaxes: under autocast the logits may be half precision and K is large.
        student_log_probs = F.log_softmax(student_output.float() / self.student_temp, dim=-1).chunk(num_views)
        teacher_probs = teacher_targets(teacher_output, self.center, teacher_temp).chunk(self.num_global_crops)

        total = student_output.new_zeros((), dtype=torch.float32)
        pairs = 0
        for t_idx, target in enumerate(teacher_probs):
            for s_idx, log_probs in enumerate(student_log_probs):
                if s_idx == t_idx:
                    continue  # the same view seen by both networks carries no learning signal
                total = total + torch.sum(-target * log_probs, dim=-1).mean()
                pairs += 1
        self.last_center = self.center
        self.update_center(teacher_output)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """``center <- m * center + (1 - m) * mean of the teacher output over every process's batch``."""
        teacher_output = teacher_output.detach().float()
        # Sum and count travel in one tensor so a single collective gives the exact global mean.
        stats = torch.cat([teacher_output.sum(dim=0), teacher_output.new_tensor([teacher_output.shape[0]])])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        batch_center = (stats[:-1] / stats[-1]).unsqueeze(0).to(self.center.device)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)

    @torch.no_grad()
    def diagnostics(
        self,
        student_output: torch.Tensor,
        teacher_output: torch.Tensor,
        teacher_temp: float,
        loss: torch.Tensor | float | None = None,
    ) -> tuple[dict[str, float], str | None]:
        """Collapse diagnostics of the last forward (same outputs, same temperature): see ``collapse_diagnostics``."""
        if self.last_center is None:
            raise RuntimeError("call the loss on these outputs first: the diagnostics use the centre it applied")
        return collapse_diagnostics(
            student_output,
            teacher_output,
            center=self.last_center,
            teacher_temp=teacher_temp,
            student_temp=self.student_temp,
            num_global_crops=self.num_global_crops,
            loss=loss,
        )

    def _num_views(self, student_output: torch.Tensor, teacher_output: torch.Tensor) -> int:
        for name, out in (("student_output", student_output), ("teacher_output", teacher_output)):
            if out.ndim != 2 or out.shape[1] != self.out_dim:
                raise ValueError(f"{name} must be (views * batch, {self.out_dim}), got {tuple(out.shape)}")
        if teacher_output.shape[0] % self.num_global_crops:
            raise ValueError(
                f"teacher_output has {teacher_output.shape[0]} rows, not a multiple of num_global_crops="
                f"{self.num_global_crops}; pass the teacher only the global views, concatenated"
            )
        batch = teacher_output.shape[0] // self.num_global_crops
        if batch == 0 or student_output.shape[0] % batch or student_output.shape[0] < teacher_output.shape[0]:
            raise ValueError(
                f"student_output has {student_output.shape[0]} rows; expected a multiple of the batch {batch} with "
                f"at least the {self.num_global_crops} global views first (global views, then local views)"
            )
        num_views = student_output.shape[0] // batch
        if num_views == 1:
            raise ValueError("DINO needs at least two views: with one view every pair is a view with itself")
        return num_views


def teacher_targets(teacher_output: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> torch.Tensor:
    """The teacher's centred, sharpened distribution ``softmax((t - center) / T)``, detached."""
    return F.softmax((teacher_output.detach().float() - center) / teacher_temp, dim=-1)
