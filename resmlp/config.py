"""Typed, frozen configuration of a ResMLP image model.

ResMLP (Touvron et al., arXiv 2105.03404) is fully described by a handful of integers: width, depth, patch size,
image size and the number of classes. Everything derived from them (token grid, LayerScale init by depth,
per-block drop-path rates) is a property here, computed in one tested place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .layers.activations import ACTIVATIONS
from .layers.norms import NORMS
from .layers.token_mixers import TOKEN_MIXERS

DROP_PATH_SCHEDULES = ("uniform", "linear")
GLOBAL_POOLS = ("avg", "", "class_mlp")


def layerscale_init_for_depth(depth: int) -> float:
    """LayerScale init by total depth, the CaiT rule the ResMLP authors use (deit#122).

    0.1 up to depth 18, 1e-5 up to depth 24, 1e-6 beyond. It depends on the *total* depth of the network,
    never on the index of a block.
    """
    if depth <= 18:
        return 0.1
    if depth <= 24:
        return 1e-5
    return 1e-6


def drop_path_rates(rate: float, depth: int, schedule: str = "uniform") -> list[float]:
    """Per-block stochastic-depth rates.

    ``uniform`` gives every block ``rate`` (what deit and timm ship for ResMLP, deit#184); ``linear`` ramps from
    0 at the first block to ``rate`` at the last, as in DeiT's ViTs.
    """
    if schedule == "uniform":
        return [rate] * depth
    if schedule == "linear":
        return [rate * i / max(depth - 1, 1) for i in range(depth)]
    raise ValueError(f"unknown drop_path_schedule {schedule!r}; choose one of {DROP_PATH_SCHEDULES}")


def _as_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"img_size must be an int or a (height, width) pair of ints, got {size!r}")


@dataclass(frozen=True)
class ResMLPConfig:
    """Architecture of one ResMLP model.

    Attributes:
        embed_dim: Channel width d (384 for the S models, 768 for B).
        depth: Number of residual blocks.
        patch_size: Side of the square patches; the token grid is img_size / patch_size.
        img_size: Input size, an int for square images or (height, width).
        in_chans: Input channels.
        num_classes: Classifier outputs; 0 makes the head the identity (features only).
        mlp_ratio: Hidden width of the channel MLP as a multiple of embed_dim (4 in every released model).
        layerscale_init: Initial LayerScale value; None applies the depth rule of ``layerscale_init_for_depth``.
        drop_path_rate: Stochastic-depth rate (0.05 for S12 in the paper's ImageNet recipe).
        drop_path_schedule: ``uniform`` (the ResMLP default) or ``linear``.
        drop_rate: Dropout on the pooled features before the classifier (timm's meaning of ``drop_rate``).
        proj_drop_rate: Dropout after each linear layer of the channel MLP (timm's name; 0 in every released
            model).
        global_pool: ``avg`` (mean over tokens, the paper), ``""`` (no pooling: the head sees every token) or
            ``class_mlp`` (the paper's Class-MLP pooling, ``resmlp.layers.class_mlp``).
        token_mixer: ``linear`` (the paper's N x N layer), or an ablation of its Table 3: ``mlp`` (N -> eN -> N),
            ``conv3x3``, ``dwconv3x3``, ``separable`` (depth-wise then point-wise) or ``none`` (bag of patches).
        token_mlp_ratio: Expansion e of the ``mlp`` token mixer.
        norm: ``affine`` (the paper), ``layernorm`` or ``batchnorm`` (Table 3 and section 3.3).
        act: ``gelu`` (the paper), ``relu``, ``silu`` or ``hardswish`` (section 3.3).
    """

    embed_dim: int = 384
    depth: int = 12
    patch_size: int = 16
    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    num_classes: int = 1000
    mlp_ratio: float = 4.0
    layerscale_init: float | None = None
    drop_path_rate: float = 0.0
    drop_path_schedule: str = "uniform"
    drop_rate: float = 0.0
    proj_drop_rate: float = 0.0
    global_pool: str = "avg"
    token_mixer: str = "linear"
    token_mlp_ratio: float = 4.0
    norm: str = "affine"
    act: str = "gelu"

    def __post_init__(self) -> None:
        for name in ("embed_dim", "depth", "patch_size", "in_chans"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {self.num_classes!r}")
        height, width = _as_hw(self.img_size)
        # One spelling per size (timm passes (224, 224) for 224), so equal configs compare equal.
        object.__setattr__(self, "img_size", height if height == width else (height, width))
        if height % self.patch_size or width % self.patch_size:
            fit = self.patch_size * max(1, height // self.patch_size)
            raise ValueError(
                f"img_size {height}x{width} is not divisible by patch_size {self.patch_size}; "
                f"use a multiple of {self.patch_size} (for example {fit})"
            )
        if self.mlp_ratio <= 0 or int(self.embed_dim * self.mlp_ratio) <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio!r}")
        if self.layerscale_init is not None and self.layerscale_init <= 0:
            raise ValueError(f"layerscale_init must be positive or None, got {self.layerscale_init!r}")
        for name in ("drop_path_rate", "drop_rate", "proj_drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.drop_path_schedule not in DROP_PATH_SCHEDULES:
            raise ValueError(
                f"unknown drop_path_schedule {self.drop_path_schedule!r}; choose one of {DROP_PATH_SCHEDULES}"
            )

        for name, choices in (
            ("global_pool", GLOBAL_POOLS),
            ("token_mixer", TOKEN_MIXERS),
            ("norm", tuple(NORMS)),
            ("act", tuple(ACTIVATIONS)),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {choices}")
        if self.token_mlp_ratio <= 0:
            raise ValueError(f"token_mlp_ratio must be positive, got {self.token_mlp_ratio!r}")

    @property
    def is_released_architecture(self) -> bool:
        """Whether this is the architecture of the released models (every ablation field at the paper's value)."""
        released = (self.token_mixer, self.norm, self.act) == ("linear", "affine", "gelu")
        return released and self.global_pool != "class_mlp"

    @property
    def image_hw(self) -> tuple[int, int]:
        """Input (height, width)."""
        return _as_hw(self.img_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, columns)."""
        height, width = self.image_hw
        return height // self.patch_size, width // self.patch_size

    @property
    def num_patches(self) -> int:
        """Number of tokens N, the side of every token-mixing matrix."""
        rows, cols = self.grid_size
        return rows * cols

    @property
    def hidden_dim(self) -> int:
        """Hidden width of the channel MLP."""
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def layerscale_init_value(self) -> float:
        """The LayerScale init actually used: explicit, or by the depth rule."""
        if self.layerscale_init is not None:
            return self.layerscale_init
        return layerscale_init_for_depth(self.depth)

    @property
    def block_drop_path_rates(self) -> list[float]:
        """Stochastic-depth rate of each block."""
        return drop_path_rates(self.drop_path_rate, self.depth, self.drop_path_schedule)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, safe to store in a checkpoint or YAML (tuples become lists)."""
        out = asdict(self)
        if isinstance(out["img_size"], tuple):
            out["img_size"] = list(out["img_size"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResMLPConfig:
        """Inverse of ``to_dict``; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ResMLPConfig keys {unknown}; known keys are {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("img_size"), list):
            values["img_size"] = tuple(values["img_size"])
        return cls(**values)
