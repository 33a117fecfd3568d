"""What ``python -m bench.gpu`` runs at which size (the GPU run and its CPU dry run), and the shape of one result.

Every stage reads its sizes from one ``Settings``; ``Settings.gpu`` and ``Settings.dry_run`` are the two runs. The
dry run keeps every stage and every code path at toy size on the CPU; where it must differ from the GPU run it says
so in ``Settings.differences`` (printed at the top of the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Result:
    """One line of the report: a check (``passed`` True/False) or a measurement (``passed`` None)."""

    stage: str
    name: str
    passed: bool | None
    detail: str
    values: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "measured"}[self.passed]


@dataclass(frozen=True)
class Settings:
    """Sizes and switches of one bench.gpu run."""

    dry_run: bool
    device: torch.device
    out_dir: Path
    compile_backend: str  # torch.compile backend of the model checks and the speed stage
    # Stage 1, model checks: one image model and one fairseq translation model, CPU fp32 reference.
    check_model: str
    check_batch: int
    seq2seq_arch: str
    # Stage 2, end to end: extra recipe overrides per task, the fairseq budget, and what counts as learned.
    vision_overrides: tuple[str, ...]
    dino_overrides: tuple[str, ...]
    fairseq_sizes: dict[str, int]
    fairseq_vocab: int
    fairseq_updates: int
    fairseq_precision: tuple[str, ...]  # --fp16 on CUDA, nothing on the CPU (fairseq has no CPU half precision)
    min_vision_top1: float | None  # % on the held-out digits; None: only "it ran and wrote its outputs"
    min_dino_knn_gain: float | None  # k-NN top-1 points over the random initialisation
    min_fairseq_loss_drop: float | None  # nats between the first and the last logged training loss
    # Stage 3, speed: ours and timm's resmlp_12_224 with the same overrides.
    speed_model: str
    timm_overrides: dict
    infer_batch: int
    train_batch: int
    iters: int
    warmup: int
    peak_tflops: float | None  # --peak-tflops; None: look the device up in the table of known peaks
    accelerate_launch: bool = True  # tasks start through `accelerate launch` (else `python -m`, the same entry point)
    differences: tuple[str, ...] = ()

    @classmethod
    def gpu(cls, out_dir: Path, peak_tflops: float | None = None) -> Settings:
        return cls(
            dry_run=False,
            device=torch.device("cuda"),
            out_dir=out_dir,
            compile_backend="inductor",
            check_model="resmlp_s12",
            check_batch=8,
            seq2seq_arch="resmlp_iwslt_de_en",
            vision_overrides=("schedule.epochs=20", "run.precision=bf16", "run.compile=true"),
            dino_overrides=("monitor.every_epochs=50", "run.precision=bf16"),  # the recipe's 50 epochs: k-NN 41% -> 78%
            fairseq_sizes={"train": 4000, "valid": 200, "test": 200},
            fairseq_vocab=400,
            fairseq_updates=400,
            fairseq_precision=("--fp16",),
            min_vision_top1=90.0,
            min_dino_knn_gain=15.0,
            min_fairseq_loss_drop=1.0,
            speed_model="resmlp_s12",
            timm_overrides={},
            infer_batch=256,
            train_batch=128,
            iters=30,
            warmup=5,
            peak_tflops=peak_tflops,
        )

    @classmethod
    def dry(cls, out_dir: Path, peak_tflops: float | None = None) -> Settings:
        return cls(
            dry_run=True,
            device=torch.device("cpu"),
            out_dir=out_dir,
            compile_backend="aot_eager",
            check_model="resmlp_tiny",
            check_batch=4,
            seq2seq_arch="resmlp_tiny",
            vision_overrides=("model.name=resmlp_tiny", "run.max_steps=3", "run.batch_size=16", "run.precision=bf16"),
            dino_overrides=(
                "backbone.name=resmlp_tiny",
                "dino.out_dim=64",
                "dino.hidden_dim=64",
                "dino.bottleneck_dim=16",
                "run.max_steps=2",
                "run.batch_size=16",
                "monitor.max_train_samples=200",
            ),
            fairseq_sizes={"train": 200, "valid": 20, "test": 20},
            fairseq_vocab=100,
            fairseq_updates=4,
            fairseq_precision=(),
            min_vision_top1=None,
            min_dino_knn_gain=None,
            min_fairseq_loss_drop=None,
            speed_model="resmlp_tiny",
            timm_overrides={"img_size": 16, "patch_size": 4, "embed_dim": 32, "num_blocks": 2},
            infer_batch=8,
            train_batch=8,
            iters=2,
            warmup=1,
            peak_tflops=peak_tflops,
            accelerate_launch=False,
            differences=(
                "the device is the CPU: 'device against the CPU reference' compares the CPU with itself, except "
                "that the image model's reference runs the plain formulation with the CPU fast path switched off",
                "toy sizes: resmlp_tiny (and timm's resmlp_12_224 cut to the same size) at 16 px, a few steps per task",
                "torch.compile uses the aot_eager backend (graph capture and autograd tracing without code "
                "generation); the GPU run uses inductor",
                "vision.train runs without run.compile (the compiled run is tests/test_run_compile.py)",
                "the tasks start with python -m instead of accelerate launch (the same entry point; the launcher "
                "costs seconds per task and is exercised by the 2-process tests)",
                "fairseq runs in fp32: it has no half precision on the CPU (--fp16 on the GPU)",
                "the k-NN bank stays on the CPU; no accuracy thresholds; speed numbers are not measurements",
            ),
        )
