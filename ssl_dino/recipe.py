"""The DINO pretraining recipe: one frozen dataclass tree, filled from YAML and ``section.key=value`` by trainkit.

Defaults are facebookresearch/dino's ("boosted" ViT-S setting where the code and the README differ) on a
ResMLP-S12, which is what the ResMLP paper pretrained (arXiv 2105.03404, Table 2: 300 epochs, k-NN 62.6). What the
paper leaves open (batch, lr, temperatures, out_dim, crop policy) is chosen here and listed in
``recipes/dino/resmlp_s12.yaml``. Hardware (processes, precision of the launch) lives in ``recipes/accelerate/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainkit.data import parse_data
from trainkit.sections import OptimConfig, RunConfig, ScheduleConfig
from trainkit.variant import ArchitectureVariant

from .crop_policy import CROP_POLICIES


@dataclass(frozen=True)
class BackboneConfig(ArchitectureVariant):
    """The network being pretrained.

    Attributes:
        name: A ``resmlp`` preset (``resmlp_s12`` ...) or a timm model name (``timm:NAME`` forces timm).
        img_size: Global crop size; null keeps the preset's (224 for the paper's models, 224 for timm).
        drop_path_rate: Stochastic depth of the student (DINO 0.1; the teacher never drops).
        token_mixer, token_mlp_ratio, norm, act, global_pool: the paper's ablations (``trainkit.variant``), for
            resmlp presets only.
    """

    name: str = "resmlp_s12"
    img_size: int | None = None
    drop_path_rate: float = 0.1


@dataclass(frozen=True)
class CropsConfig:
    """Multi-crop views and how local crops meet a fixed-size token mixer (``ssl_dino.crop_policy``).

    Attributes:
        policy: One of ``none``, ``resize``, ``derived`` (default), ``derived_subgrid``, ``native``.
        num_local_crops: Local crops per image; null: 8 (DINO), 0 for ``none``.
        local_size: Side of the local crops in px; null: 96/224 of the global size, rounded to whole patches.
        global_scale: Area range of the global crops; null: (0.14, 1) for ``none``, (0.4, 1) otherwise.
        local_scale: Area range of the local crops.
    """

    policy: str = "derived"  # the best at equal compute on the larger built-in grid (docs/dino.md, "Which policy")
    num_local_crops: int | None = None
    local_size: int | None = None
    global_scale: tuple[float, float] | None = None
    local_scale: tuple[float, float] = (0.05, 0.4)

    def __post_init__(self) -> None:
        if self.policy not in CROP_POLICIES:
            raise ValueError(f"crops.policy {self.policy!r} is unknown; choose one of {', '.join(CROP_POLICIES)}")


@dataclass(frozen=True)
class DinoConfig:
    """Head, loss, teacher and DINO's own per-step rules.

    Attributes:
        out_dim: Prototypes K (65536 in DINO).
        hidden_dim, bottleneck_dim, nlayers: Head MLP shape (2048, 256, 3).
        use_bn_in_head: Batch norm in the head (off).
        norm_last_layer: Fix the prototypes' norm at 1 (DINO's default; off is less stable).
        student_temp: Student softmax temperature (0.1).
        center_momentum: Teacher-centre EMA momentum (0.9).
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs: Teacher temperature, linear warm-up then flat.
        teacher_temp_per_iteration: Ramp the temperature per step (VISSL) instead of per epoch (the reference).
        momentum_teacher: Start of the cosine teacher momentum, which ends at 1.
        weight_decay_end: Weight decay at the last step (cosine from ``optim.weight_decay``).
        clip_grad: Per-parameter gradient-norm clip (3.0); 0 disables.
        freeze_last_layer: Epochs during which the prototypes get no update (1).
    """

    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    use_bn_in_head: bool = False
    norm_last_layer: bool = True
    student_temp: float = 0.1
    center_momentum: float = 0.9
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_teacher_temp_epochs: int = 30
    teacher_temp_per_iteration: bool = False
    momentum_teacher: float = 0.996
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0
    freeze_last_layer: int = 1

    def __post_init__(self) -> None:
        if self.out_dim <= 0 or self.clip_grad < 0 or self.freeze_last_layer < 0:
            raise ValueError("dino.out_dim must be > 0, dino.clip_grad and dino.freeze_last_layer >= 0")
        if min(self.student_temp, self.teacher_temp, self.warmup_teacher_temp) <= 0:
            raise ValueError("dino temperatures must be positive")
        if not 0.0 <= self.momentum_teacher <= 1.0:
            raise ValueError(f"dino.momentum_teacher must be in [0, 1], got {self.momentum_teacher}")


@dataclass(frozen=True)
class DataConfig:
    """Images, named in the data grammar shared with vision (docs/training.md, "Data").

    Attributes:
        dataset: digits, procedural, folder:ROOT, imagenet:ROOT, cifar10:ROOT ... (the data grammar). The
            built-in ``digits`` and ``procedural``; ``folder:ROOT`` / ``imagenet:ROOT`` (``ROOT/train/<class>/*``
            and ``ROOT/val/<class>/*``); ``cifar10:ROOT`` or ``cifar100:ROOT``. Pretraining uses ``train`` without
            its labels, the k-NN monitor ``train`` (bank) and ``val`` (queries).
        skip_corrupt_images: Skip unreadable image files instead of stopping (pretraining serves the next readable
            image; the monitor leaves them out); they are reported.
    """

    dataset: str = "digits"
    skip_corrupt_images: bool = False

    def __post_init__(self) -> None:
        parse_data(self.dataset, where="data.dataset")


@dataclass(frozen=True)
class MonitorConfig:
    """Online k-NN on frozen teacher features: bank = labelled ``train`` split, queries = held-out ``val`` split.

    Attributes:
        every_epochs: Run every this many epochs (and before the first step, and after the last); 0 disables.
        k: Neighbours (20, as DINO reports).
        temperature: Vote temperature T in exp(sim / T) (0.07).
        crop_ratio: Evaluation transform's centre-crop ratio (DINO 0.875; 1.0 for digits, which fill the frame).
        max_train_samples: Bank size cap (a fixed random subset), to keep it cheap on ImageNet; null: all.
        batch_size: Images per process per feature-extraction batch.
    """

    every_epochs: int = 10
    k: int = 20
    temperature: float = 0.07
    crop_ratio: float = 0.875
    max_train_samples: int | None = None
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.every_epochs < 0 or self.k < 1 or self.temperature <= 0 or self.batch_size < 1:
            raise ValueError("monitor: need every_epochs >= 0, k >= 1, temperature > 0, batch_size >= 1")


@dataclass(frozen=True)
class DinoRecipe:
    """Everything one DINO pretraining run needs."""

    backbone: BackboneConfig = BackboneConfig()
    crops: CropsConfig = CropsConfig()
    dino: DinoConfig = DinoConfig()
    data: DataConfig = DataConfig()
    monitor: MonitorConfig = MonitorConfig()
    # DINO: AdamW, lr 5e-4 per 256 images at the end of a 10-epoch linear warm-up from 0, cosine to 1e-6.
    optim: OptimConfig = OptimConfig(name="adamw", lr=5e-4, lr_reference_batch=256, weight_decay=0.04)
    schedule: ScheduleConfig = ScheduleConfig(epochs=300, warmup_epochs=10, warmup_lr=0.0, min_lr=1e-6)
    run: RunConfig = RunConfig(batch_size=64)

    def __post_init__(self) -> None:
        if self.optim.clip_grad is not None:
            raise ValueError("DINO clips per parameter: set dino.clip_grad, and leave optim.clip_grad null")
        if self.optim.ema_decay is not None:
            raise ValueError("optim.ema_decay must be null: the DINO teacher is the EMA (dino.momentum_teacher)")
