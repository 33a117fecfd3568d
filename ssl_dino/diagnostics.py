"""Collapse diagnostics for DINO: the teacher's entropy, the student-teacher KL, and two collapse alarms.

DINO avoids collapse by balancing centring (pushes towards uniform outputs) against sharpening (pushes towards one
dimension). The paper (Fig. 7) watches the teacher's entropy and the teacher-student KL: in a uniform collapse the
entropy reaches ln(K) and the loss sits at ln(K) (dino#43, #225, #246: "loss stuck at 11.09" for K = 65536); in a
one-dimension collapse the entropy drops to 0 and every sample picks the same prototype. Both show as a KL of 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def collapse_diagnostics(
    student_output: torch.Tensor,
    teacher_output: torch.Tensor,
    *,
    center: torch.Tensor,
    teacher_temp: float,
    student_temp: float = 0.1,
    num_global_crops: int = 2,
    loss: torch.Tensor | float | None = None,
    uniform_tolerance: float = 0.02,
    dominant_share: float = 0.5,
) -> tuple[dict[str, float], str | None]:
    """Measure how close the teacher is to either collapse; return ``(stats, warning or None)``.

    Args:
        student_output: Student scores for all views, ``(V * B, K)``, as given to ``DINOLoss``.
        teacher_output: Teacher scores for the global views, ``(G * B, K)``.
        center: The centre the loss applied at this step (``DINOLoss.last_center``).
        teacher_temp: Teacher temperature of this step.
        student_temp: Student temperature.
        num_global_crops: G.
        loss: The loss value of this step (checked against ln K); default: recomputed from the outputs.
        uniform_tolerance: Warn when the teacher entropy is within this fraction of ln K.
        dominant_share: Warn when one prototype takes more than this share of the teacher's probability mass over
            the batch.

    Stats (floats): ``teacher_entropy`` (mean per-sample entropy of the centred, sharpened teacher, nats),
    ``teacher_marginal_entropy`` (entropy of its batch mean), ``student_teacher_kl`` (mean KL(teacher || student)
    over the loss's view pairs), ``teacher_top_share`` (largest prototype's share of the batch's mass), ``loss``,
    ``ln_out_dim``. Per process; call every few steps, each call synchronises with the device.

    At initialisation the loss is close to ln K by construction, so read the uniform-collapse warning only after
    the first epochs.
    """
    out_dim = teacher_output.shape[-1]
    ln_k = math.log(out_dim)
    targets = F.softmax((teacher_output.float() - center.to(teacher_output.device)) / teacher_temp, dim=-1)
    log_targets = torch.log(targets.clamp_min(1e-30))
    entropy = -(targets * log_targets).sum(-1)
    marginal = targets.mean(0)
    marginal_entropy = -(marginal * torch.log(marginal.clamp_min(1e-30))).sum()

    batch = teacher_output.shape[0] // num_global_crops
    num_views = student_output.shape[0] // batch
    student_log_probs = F.log_softmax(student_output.float() / student_temp, dim=-1).chunk(num_views)
    teacher_chunks = targets.chunk(num_global_crops)
    log_teacher_chunks = log_targets.chunk(num_global_crops)
    kl_total, ce_total, pairs = 0.0, 0.0, 0
    for t_idx, (target, log_target) in enumerate(zip(teacher_chunks, log_teacher_chunks)):
        for s_idx, log_probs in enumerate(student_log_probs):
            if s_idx != t_idx:
                kl_total += (target * (log_target - log_probs)).sum(-1).mean().item()
                ce_total += (-target * log_probs).sum(-1).mean().item()
                pairs += 1
    loss_value = float(loss) if loss is not None else ce_total / pairs

    stats = {
        "teacher_entropy": entropy.mean().item(),
        "teacher_marginal_entropy": marginal_entropy.item(),
        "student_teacher_kl": kl_total / pairs,
        "teacher_top_share": marginal.max().item(),
        "loss": loss_value,
        "ln_out_dim": ln_k,
    }
    return stats, collapse_warning(stats, uniform_tolerance=uniform_tolerance, dominant_share=dominant_share)


def collapse_warning(
    stats: dict[str, float], *, uniform_tolerance: float = 0.02, dominant_share: float = 0.5
) -> str | None:
    """The collapse alarm from ``collapse_diagnostics`` stats, or None when neither collapse is in sight."""
    ln_k = stats["ln_out_dim"]
    problems = []
    # The teacher's entropy, not the loss: loss = entropy + KL, so a loss near ln K with a clearly sharper teacher
    # is a student still catching up, not a flat teacher.
    if stats["teacher_entropy"] >= (1 - uniform_tolerance) * ln_k:
        problems.append(
            f"uniform collapse: loss {stats['loss']:.3f} and teacher entropy {stats['teacher_entropy']:.3f} are near "
            f"ln(out_dim) = {ln_k:.3f}, so the teacher predicts a flat distribution; lower the teacher temperature "
            "(its final value, as the DINO authors advise in dino#246)"
        )
    if stats["teacher_top_share"] > dominant_share:
        problems.append(
            f"one-dimension collapse: a single prototype takes {100 * stats['teacher_top_share']:.0f}% of the "
            f"teacher's mass over the batch (teacher entropy {stats['teacher_entropy']:.3f}); sharpening wins over "
            "centring; raise the teacher temperature (warm it up more slowly) or lower the learning rate"
        )
    return "; ".join(problems) if problems else None
