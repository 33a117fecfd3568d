"""The released ResMLP weights (facebookresearch/deit, ``https://dl.fbaipublicfiles.com/deit/``), by timm-style tag.

``preset.tag`` names one file: ``fb_in1k`` (supervised, ``*_no_dist.pth``), ``fb_distilled_in1k`` (hard
distillation from RegNetY-16GF, ``*_dist.pth``), ``fb_in22k_ft_in1k`` (ImageNet-21k pre-training, fine-tuned on 1k)
and ``fb_dino`` (DINO self-supervised, loaded as a backbone without classifier). The first tag of a preset is its
default, as in timm and deit's hub (``pretrained=True`` with a bare name).

Accuracies are the paper's (ImageNet val top-1 at 224 px, crop 0.9; DINO: k-NN and linear top-1, Table 2 and 3 /
D.3 and the deit README), not ours: we have no ImageNet here. No checksum is published for these files, so
``sha256`` is None for each; a mirror may publish one and we verify it when set.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://dl.fbaipublicfiles.com/deit/"


@dataclass(frozen=True)
class Weights:
    """One released file and what the paper reports for it."""

    preset: str
    tag: str
    file: str
    top1: float | None = None  # ImageNet val top-1 (%) of the classifier
    knn: float | None = None  # DINO k-NN top-1 (%), k=20
    linear: float | None = None  # DINO linear-probe top-1 (%)
    backbone: bool = False  # no usable classifier: loaded with num_classes=0 unless asked otherwise
    sha256: str | None = None

    @property
    def name(self) -> str:
        return f"{self.preset}.{self.tag}"


RELEASED: tuple[Weights, ...] = (
    Weights("resmlp_s12", "fb_in1k", "resmlp_12_no_dist.pth", top1=76.6),
    Weights("resmlp_s12", "fb_distilled_in1k", "resmlp_12_dist.pth", top1=77.8),
    Weights("resmlp_s12", "fb_dino", "resmlp_12_dino.pth", knn=62.6, linear=67.5, backbone=True),
    Weights("resmlp_s24", "fb_in1k", "resmlp_24_no_dist.pth", top1=79.4),
    Weights("resmlp_s24", "fb_distilled_in1k", "resmlp_24_dist.pth", top1=80.8),
    Weights("resmlp_s24", "fb_dino", "resmlp_24_dino.pth", knn=69.4, linear=72.8, backbone=True),
    Weights("resmlp_s36", "fb_in1k", "resmlp_36_no_dist.pth", top1=79.7),
    Weights("resmlp_s36", "fb_distilled_in1k", "resmlp_36_dist.pth", top1=81.1),
    Weights("resmlp_b24_8", "fb_in1k", "resmlpB_24_no_dist.pth", top1=81.0),
    Weights("resmlp_b24_8", "fb_distilled_in1k", "resmlpB_24_dist.pth", top1=83.6),
    Weights("resmlp_b24_8", "fb_in22k_ft_in1k", "resmlpB_24_22k.pth", top1=84.4),
)

_BY_NAME = {w.name: w for w in RELEASED}


def tags_of(preset: str) -> list[Weights]:
    """The released weights of ``preset``, default first."""
    return [w for w in RELEASED if w.preset == preset]


def find(name: str) -> Weights | None:
    """The weights named ``preset.tag``, or the default weights of a bare preset; None if there are none."""
    if "." in name:
        return _BY_NAME.get(name)
    tags = tags_of(name)
    return tags[0] if tags else None


def list_pretrained() -> list[tuple[str, str]]:
    """``(name, what the paper reports)`` for every released file, e.g. ``("resmlp_s12.fb_in1k", "top-1 76.6")``."""
    rows = []
    for w in RELEASED:
        reported = f"top-1 {w.top1}" if w.top1 is not None else f"k-NN {w.knn}, linear {w.linear}"
        rows.append((w.name, reported))
    return rows
