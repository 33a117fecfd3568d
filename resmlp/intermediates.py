"""Which blocks ``forward_intermediates`` returns, with timm's meaning of ``indices``.

timm's models take ``indices=None`` (every block), an int ``n`` (the last ``n`` blocks) or a list of block indices
(negative ones count from the end); an index out of range is refused. Written here because ``resmlp`` depends on
torch only; it follows ``timm.models.feature_take_indices`` and is tested against it.
"""

from __future__ import annotations


def take_indices(num_blocks: int, indices: int | list[int] | tuple[int, ...] | None) -> tuple[list[int], int]:
    """The block indices to return and the largest of them (where ``stop_early`` may stop)."""
    if indices is None:
        indices = num_blocks
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ValueError(f"indices={indices}: ask for the last 1 to {num_blocks} blocks of this model")
        taken = list(range(num_blocks - indices, num_blocks))
    else:
        taken = []
        for i in indices:
            if not -num_blocks <= i < num_blocks:
                raise ValueError(
                    f"block index {i} is out of range for a model of {num_blocks} blocks "
                    f"(use {-num_blocks} .. {num_blocks - 1})"
                )
            taken.append(i % num_blocks)
    return taken, max(taken)
