"""Crop policies: how DINO's multi-crop meets a backbone whose token-mixing matrix has a fixed size.

A ResMLP's cross-patch matrix is N x N for the N tokens of its training resolution, so DINO's 96 px local crops
(36 tokens at patch 16, against 196) cannot pass through it unchanged. The paper does not say what it did
(spec §3.7). Policies, chosen by name:

* ``none``: no local crops, two global crops of scale 0.14-1 (what DINO advises without multi-crop, dino#122).
* ``resize``: local crops cut at their small size and scale, then resized to the global resolution; any backbone
  takes them, at the compute cost of global crops.
* ``derived``: local crops at their own resolution through token-mixing matrices derived from the global ones by
  interpolating the 4-D (gh, gw, gh, gw) view of each matrix to the local grid (the field of view is squeezed).
* ``derived_subgrid``: as ``derived``, but each local matrix is the centred sub-grid block of the global one
  (neighbourhoods keep their size in tokens, like a convolution on a smaller image).
* ``native``: local crops at their own resolution into a backbone that takes any input size (a timm CNN); the
  plain DINO setting.

Whether a policy fits a backbone is checked by ``ssl_dino.backbone.check_crop_policy`` when the model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .multicrop import IMAGENET_MEAN, IMAGENET_STD, MultiCropAugmentation

CROP_POLICIES = ("none", "resize", "derived", "derived_subgrid", "native")
# How each derived policy builds the local token-mixing matrices (see ssl_dino.derived_mixing).
DERIVE_MODES = {"derived": "interpolate", "derived_subgrid": "subgrid"}


@dataclass(frozen=True)
class CropPolicy:
    """A crop policy with its sizes; build it with ``make_crop_policy``.

    Attributes:
        name: One of ``CROP_POLICIES``.
        global_size: Side of the global crops, the backbone's native input size.
        local_size: Side at which local crops are cut.
        num_local_crops: Local crops per image (0 for ``none``).
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
    """

    name: str
    global_size: int
    local_size: int
    num_local_crops: int
    global_scale: tuple[float, float]
    local_scale: tuple[float, float]

    @property
    def local_input_size(self) -> int:
        """Side of the local crops as the backbone receives them."""
        return self.global_size if self.name == "resize" else self.local_size

    @property
    def derive_mode(self) -> str | None:
        """``interpolate`` or ``subgrid`` for the derived policies, else None."""
        return DERIVE_MODES.get(self.name)

    @property
    def num_crops(self) -> int:
        """Views per image."""
        return 2 + self.num_local_crops

    def augmentation(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> MultiCropAugmentation:
        """The multi-crop transform that produces this policy's views from one PIL image."""
        return MultiCropAugmentation(
            global_size=self.global_size,
            local_size=self.local_size,
            num_local_crops=self.num_local_crops,
            global_scale=self.global_scale,
            local_scale=self.local_scale,
            local_output_size=self.local_input_size,
            mean=mean,
            std=std,
        )


def make_crop_policy(
    name: str,
    *,
    global_size: int,
    local_size: int | None = None,
    num_local_crops: int | None = None,
    global_scale: tuple[float, float] | None = None,
    local_scale: tuple[float, float] = (0.05, 0.4),
    size_multiple: int = 1,
) -> CropPolicy:
    """Build the policy ``name`` with DINO's defaults for everything not given.

    Args:
        name: One of ``CROP_POLICIES``.
        global_size: Backbone input size (224 for the paper's models, 32 for ``resmlp_mini``).
        local_size: Local crop side; default the reference ratio 96/224 of ``global_size``, rounded to the nearest
            multiple of ``size_multiple`` (at least one).
        num_local_crops: Default 8 (DINO), 0 for ``none``.
        global_scale: Default (0.14, 1) for ``none``, (0.4, 1) otherwise.
        local_scale: Area range of the local crops.
        size_multiple: What the default local size is a multiple of: the patch size for a ResMLP (whose derived
            token mixing needs whole patches), 1 otherwise.
    """
    if name not in CROP_POLICIES:
        raise ValueError(f"unknown crop policy {name!r}; choose one of {', '.join(CROP_POLICIES)}")
    if name == "none":
        if num_local_crops:
            raise ValueError(
                f"crop policy 'none' takes no local crops, got num_local_crops={num_local_crops}; pick 'resize' or "
                "'derived' for multi-crop"
            )
        num_local_crops = 0
    elif num_local_crops is None:
        num_local_crops = 8
    if global_scale is None:
        global_scale = (0.14, 1.0) if name == "none" else (0.4, 1.0)
    if local_size is None:
        local_size = size_multiple * max(1, round(global_size * 96 / 224 / size_multiple))
    if global_size <= 0 or local_size <= 0 or num_local_crops < 0:
        raise ValueError(
            f"need positive sizes and num_local_crops >= 0, got global_size={global_size}, local_size={local_size}, "
            f"num_local_crops={num_local_crops}"
        )
    if name != "none" and num_local_crops == 0:
        raise ValueError(f"crop policy {name!r} is about local crops but num_local_crops=0; use policy 'none'")
    return CropPolicy(
        name=name,
        global_size=global_size,
        local_size=local_size,
        num_local_crops=num_local_crops,
        global_scale=tuple(global_scale),
        local_scale=tuple(local_scale),
    )
