"""Built-in ``procedural``: generated images whose class is a shape *and* its spatial relation to an anchor.

Every image holds a filled square (the anchor) and one target shape (disc, ring, plus or diagonal cross) at random
positions, sizes and colours, over a random background with clutter specks and pixel noise; the polarity is
inverted for half the images. The 12 classes are ``<target>_<relation>`` with the relation of the target to the
anchor: ``above``, ``below`` or ``beside`` (left or right, so horizontal flips keep the label).

Why this is harder than digits, and why it needs token mixing: all five shapes are symmetric under vertical flips
and 90-degree rotations, so the *collection* of patches of an "above" image is distributed like that of a "below"
or "beside" one. A model that only looks at patches independently and pools them (ResMLP without its cross-patch
sublayer) can name the target shape but not the relation, which caps it near 1/3 accuracy; telling the relation
apart requires comparing the positions of two patches, which is what the cross-patch linear layer does.

Generation is vectorised in numpy (about a second for 10,000 images of 32 px), deterministic for a given seed,
and cached in memory per (seed, count, size, channels).
"""

from __future__ import annotations

import functools

import numpy as np

from .arrays import InMemoryImages

TARGET_SHAPES = ("disc", "ring", "plus", "cross")
RELATIONS = ("above", "below", "beside")
PROCEDURAL_CLASSES = [f"{shape}_{relation}" for shape in TARGET_SHAPES for relation in RELATIONS]
_ANGLE_JITTER_DEG = 20.0  # relation angles stay within +-20 degrees of the axis: labels are never ambiguous
_SPECKS = 6
_NOISE_STD = 0.04
_CHUNK = 1024


def _sdf_square(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(dx), np.abs(dy)) - r


def _sdf_disc(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.hypot(dx, dy) - r


def _sdf_ring(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.abs(np.hypot(dx, dy) - 0.65 * r) - 0.35 * r


def _sdf_plus(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    half_width = np.maximum(0.28 * r, 0.75)
    horizontal = np.maximum(np.abs(dx) - r, np.abs(dy) - half_width)
    vertical = np.maximum(np.abs(dy) - r, np.abs(dx) - half_width)
    return np.minimum(horizontal, vertical)


def _sdf_cross(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    # A plus rotated by 45 degrees; arms shortened so the cross spans the same box as the other shapes.
    return _sdf_plus((dx + dy) / np.sqrt(2.0), (dx - dy) / np.sqrt(2.0), r * 1.2)


_TARGET_SDF = {"disc": _sdf_disc, "ring": _sdf_ring, "plus": _sdf_plus, "cross": _sdf_cross}


def _coverage(sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased pixel coverage from a signed distance in pixels (one-pixel soft edge)."""
    return np.clip(0.5 - sdf, 0.0, 1.0)[..., None]


def _place_pairs(rng: np.random.Generator, relation: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Centres and half-sizes of anchor (a) and target (b), both fully inside the image and never touching."""
    n = len(relation)
    margin = 1.0
    r_a = rng.uniform(0.09, 0.15, n) * size
    r_b = rng.uniform(0.10, 0.16, n) * size
    beside_angle = np.where(rng.random(n) < 0.5, 0.0, 180.0)
    base = np.select([relation == 0, relation == 1], [90.0, 270.0], beside_angle)
    theta = np.deg2rad(base + rng.uniform(-_ANGLE_JITTER_DEG, _ANGLE_JITTER_DEG, n))
    cos, sin = np.cos(theta), -np.sin(theta)  # image rows grow downwards, so "above" is a negative dy
    span = size - 2 * margin - r_a - r_b  # the largest centre offset along one axis that keeps both inside
    d_max = span / np.maximum(np.abs(cos), np.abs(sin))
    d_min = np.minimum(r_a + r_b + 0.08 * size, d_max)
    dist = rng.uniform(d_min, d_max)
    dx, dy = dist * cos, dist * sin
    centres = {}
    for axis, offset in (("x", dx), ("y", dy)):
        low = np.maximum(margin + r_a, margin + r_b - offset)
        high = np.minimum(size - margin - r_a, size - margin - r_b - offset)
        centres[axis] = rng.uniform(low, np.maximum(low, high))
    return {
        "xa": centres["x"],
        "ya": centres["y"],
        "xb": centres["x"] + dx,
        "yb": centres["y"] + dy,
        "ra": r_a,
        "rb": r_b,
    }


def _render_chunk(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """RGB float images in [0, 1], ``(n, size, size, 3)``, for the given class labels."""
    n = len(labels)
    shape, relation = labels // len(RELATIONS), labels % len(RELATIONS)
    geo = _place_pairs(rng, relation, size)
    grid = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    images = np.broadcast_to(rng.uniform(0.0, 0.35, (n, 1, 1, 3)), (n, size, size, 3)).astype(np.float32)
    # Clutter: single-pixel and two-pixel specks in object-like colours, drawn under the shapes.
    rows = np.arange(n)[:, None]
    speck_y, speck_x = rng.integers(0, size, (n, _SPECKS)), rng.integers(0, size, (n, _SPECKS))
    speck_rgb = rng.uniform(0.45, 1.0, (n, _SPECKS, 3))
    images[rows, speck_y, speck_x] = speck_rgb
    right = np.minimum(speck_x + 1, size - 1)
    wide = rng.random((n, _SPECKS, 1)) < 0.5
    images[rows, speck_y, right] = np.where(wide, speck_rgb, images[rows, speck_y, right])
    dx_a, dy_a = grid[None, None, :] - geo["xa"][:, None, None], grid[None, :, None] - geo["ya"][:, None, None]
    cover_a = _coverage(_sdf_square(dx_a, dy_a, geo["ra"][:, None, None]))
    dx_b, dy_b = grid[None, None, :] - geo["xb"][:, None, None], grid[None, :, None] - geo["yb"][:, None, None]
    sdf_b = np.empty((n, size, size), dtype=np.float32)
    for index, name in enumerate(TARGET_SHAPES):
        sel = shape == index
        sdf_b[sel] = _TARGET_SDF[name](dx_b[sel], dy_b[sel], geo["rb"][sel, None, None])
    cover_b = _coverage(sdf_b)
    # Object colours have luminance >= 0.45 and the background <= 0.35, so the grey version keeps contrast.
    colour_a, colour_b = rng.uniform(0.45, 1.0, (2, n, 1, 1, 3))
    images = images * (1 - cover_a) + colour_a * cover_a
    images = images * (1 - cover_b) + colour_b * cover_b
    images = images + rng.normal(0.0, _NOISE_STD, images.shape)
    invert = rng.random(n) < 0.5
    images[invert] = 1.0 - images[invert]
    return np.clip(images, 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def render_procedural(count: int, *, size: int = 32, seed: int = 0, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images ``(count, size, size, channels)`` uint8 and their labels; the same arguments, the same data.

    Classes are balanced in expectation (drawn uniformly). The result is cached and read-only.
    """
    if channels not in (1, 3):
        raise ValueError(f"the procedural dataset renders 1 or 3 channels, got {channels}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(PROCEDURAL_CLASSES), count)
    pixels = np.empty((count, size, size, channels), dtype=np.uint8)
    for start in range(0, count, _CHUNK):
        rgb = _render_chunk(rng, labels[start : start + _CHUNK], size)
        if channels == 1:
            rgb = rgb @ np.array([[0.299], [0.587], [0.114]], dtype=rgb.dtype)  # ITU-R 601 luma
        pixels[start : start + _CHUNK] = np.round(rgb * 255.0).astype(np.uint8)
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def procedural_dataset(
    split: str,
    *,
    train_size: int = 10_000,
    val_size: int = 2_000,
    size: int = 32,
    seed: int = 0,
    channels: int = 3,
    transform=None,
) -> InMemoryImages:
    """The ``train`` or ``val`` split; the two splits come from independent streams of the same seed."""
    if split not in ("train", "val"):
        raise ValueError(f"procedural has the splits 'train' and 'val', got {split!r}")
    count = train_size if split == "train" else val_size
    # Distinct, fixed sub-seeds per split: the val images never repeat training images.
    split_seed = np.random.SeedSequence([seed, 0 if split == "train" else 1]).generate_state(1)[0]
    pixels, labels = render_procedural(count, size=size, seed=int(split_seed), channels=channels)
    return InMemoryImages(pixels, labels, PROCEDURAL_CLASSES, transform)
