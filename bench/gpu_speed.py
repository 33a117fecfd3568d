"""Stage 3 of ``python -m bench.gpu``: ResMLP-S12 speed beside timm's ``resmlp_12_224`` on the same device, in bf16.

Inference (eval, ``torch.inference_mode``) at batch 256 and a training step (forward, cross-entropy, backward,
AdamW) at batch 128, each eager and under ``torch.compile``. Each model gets its best settings, chosen by timing
rather than assumed: for inference, bf16 weights or bf16 autocast over fp32 weights, contiguous or channels_last
input (ours is additionally fused, ``resmlp.fuse``); for training, bf16 autocast over fp32 weights (mixed precision,
as ``run.precision=bf16`` trains) with contiguous or channels_last input, and the fused AdamW on CUDA. The compiled
run uses the eager run's best setting, with static shapes (``dynamic=False``: the checks compiled the same
models at another batch size, and a fixed batch is what a benchmark should time). Figures are medians over timed
calls after warm-up calls (CUDA synchronised).

Model FLOP utilisation (MFU) is the FLOPs of the model's matrix products and convolutions (counted by
``torch.utils.flop_counter`` on the plain formulation, 2 per multiply-add; training counts forward and backward)
per second, over the device's dense bf16 peak: ``--peak-tflops``, else the table below by device name.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import resmlp

from .gpu_settings import Result, Settings
from .timing import _median_rate

STAGE = "speed"

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets; the first pattern that
# matches torch.cuda.get_device_name() wins, so the more specific names come first.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH[12]00\b.*\bNVL\b", 835.0),
    (r"\b(GH200|H200|H100|H800)\b", 989.4),  # SXM and GH200
    (r"\bA(100|800)\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bL40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"\bRTX A6000\b", 154.8),
    (r"\bRTX 4090\b", 165.2),
    (r"\bB200\b", 2250.0),
    (r"\bMI300X\b", 1307.4),
)

GOALS = {"inference, ours / timm": 1.2, "training, ours / timm": 1.2, "inference MFU, ours": 0.40}


def bf16_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a device by its name (``torch.cuda.get_device_name()``), None when unknown."""
    for pattern, peak in BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return peak
    return None


def device_peak(settings: Settings) -> tuple[float | None, str]:
    """(peak TFLOP/s, where it came from) for the settings' device."""
    if settings.peak_tflops is not None:
        return settings.peak_tflops, "--peak-tflops"
    if settings.device.type != "cuda":
        return None, "no bf16 peak known for the CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name(settings.device)
    peak = bf16_peak_tflops(name)
    return peak, f"table entry for {name!r}" if peak else f"{name!r} is not in the table (pass --peak-tflops)"


def timm_resmlp_12(overrides: dict) -> torch.nn.Module:
    """timm's ``resmlp_12_224``; with ``overrides`` (the dry run's toy size) timm's MlpMixer built with the same
    ResMLP block and Affine norm (the preset fixes patch size, depth and width, so it takes no overrides)."""
    import timm
    from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

    if not overrides:
        return timm.create_model("resmlp_12_224", pretrained=False)
    return MlpMixer(block_layer=ResBlock, norm_layer=Affine, mlp_ratio=4, **overrides)


def count_flops(model: torch.nn.Module, images: torch.Tensor, *, train: bool) -> float:
    """FLOPs per image of one forward (and backward with ``train``) of ``model``, in the plain formulation."""
    model = copy.deepcopy(model).train(train)
    labels = torch.zeros(len(images), dtype=torch.long, device=images.device)
    with resmlp.fast.disabled(), FlopCounterMode(display=False) as counter:
        if train:
            F.cross_entropy(model(images), labels).backward()
        else:
            with torch.no_grad():
                model(images)
    return counter.get_total_flops() / len(images)


def images(batch: int, size: int, device: torch.device, *, bf16: bool = False, layout: str = "contiguous"):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen).to(device, torch.bfloat16 if bf16 else torch.float32)
    return x.to(memory_format=torch.channels_last) if layout == "channels_last" else x


def inference_settings(model: torch.nn.Module, device: torch.device) -> dict[str, tuple[torch.nn.Module, bool, str]]:
    """setting -> (module on the device, bf16 weights?, input layout), for every inference setting tried."""
    base = resmlp.fuse(model.eval()) if isinstance(model, resmlp.ResMLP) else model.eval()
    out = {}
    for bf16 in (True, False):
        for layout in ("contiguous", "channels_last"):
            module = copy.deepcopy(base).to(device, torch.bfloat16 if bf16 else torch.float32)
            label = f"{'bf16 weights' if bf16 else 'bf16 autocast'}, {layout}"
            out[label] = (
                module.to(memory_format=torch.channels_last) if layout == "channels_last" else module,
                bf16,
                layout,
            )
    return out


def time_inference(module: Callable, bf16: bool, layout: str, settings: Settings, size: int) -> float:
    """Images/s of ``module`` at the inference batch: bf16 inputs for bf16 weights, else bf16 autocast."""
    device = settings.device
    x = images(settings.infer_batch, size, device, bf16=bf16, layout=layout)
    amp = contextlib.nullcontext() if bf16 else torch.autocast(device.type, dtype=torch.bfloat16)

    def step() -> None:
        with torch.inference_mode(), amp:
            module(x)

    return _median_rate(step, device, settings.infer_batch, settings.iters, settings.warmup)


def time_training(model: torch.nn.Module, layout: str, settings: Settings, size: int, *, compiled: bool) -> float:
    """Images/s of a bf16-autocast training step (fp32 weights, AdamW, fused on CUDA) at the training batch."""
    device = settings.device
    model = copy.deepcopy(model).to(device).train()
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    forward = torch.compile(model, backend=settings.compile_backend, dynamic=False) if compiled else model
    x = images(settings.train_batch, size, device, layout=layout)
    classes = model.config.num_classes if isinstance(model, resmlp.ResMLP) else model.num_classes
    labels = torch.randint(0, classes, (settings.train_batch,), generator=torch.Generator().manual_seed(1)).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(x), labels)
        loss.backward()
        optimizer.step()

    return _median_rate(step, device, settings.train_batch, settings.iters, settings.warmup)


def measure_model(model: torch.nn.Module, size: int, settings: Settings, peak: float | None) -> dict:
    """Inference and training figures of one model on ``size`` px images: every eager setting, then the best one
    compiled."""
    device, backend = settings.device, settings.compile_backend
    probe = images(2, size, device)
    flops = {
        phase: count_flops(model.to(device), probe, train=phase == "training") for phase in ("inference", "training")
    }
    candidates = inference_settings(model, device)
    eager = {label: time_inference(*candidate, settings, size) for label, candidate in candidates.items()}
    best = max(eager, key=eager.get)
    module, bf16, layout = candidates[best]
    compiled = time_inference(torch.compile(module, backend=backend, dynamic=False), bf16, layout, settings, size)
    figures = {"inference": {"eager": eager[best], "compiled": compiled, "setting": best, "every eager setting": eager}}
    layouts = {
        layout: time_training(model, layout, settings, size, compiled=False)
        for layout in ("contiguous", "channels_last")
    }
    best = max(layouts, key=layouts.get)
    figures["training"] = {
        "eager": layouts[best],
        "compiled": time_training(model, best, settings, size, compiled=True),
        "setting": f"bf16 autocast, {best}",
        "every eager setting": layouts,
    }
    for phase, rates in figures.items():
        rates["flops_per_image"] = flops[phase]
        rates["tflops"] = {mode: rates[mode] * flops[phase] / 1e12 for mode in ("eager", "compiled")}
        rates["mfu"] = {mode: (tflops / peak if peak else None) for mode, tflops in rates["tflops"].items()}
    return figures


def measure(settings: Settings) -> dict:
    """Every figure of the stage, JSON-ready: the peak used, and per model and phase images/s, FLOPs and MFU."""
    peak, peak_source = device_peak(settings)
    torch.manual_seed(0)
    models = {"ours": resmlp.create_model(settings.speed_model), "timm": timm_resmlp_12(settings.timm_overrides)}
    size = models["ours"].config.image_hw[0]  # timm's model is built for the same square size
    return {
        "peak_tflops": peak,
        "peak_source": peak_source,
        "models": {name: measure_model(model, size, settings, peak) for name, model in models.items()},
    }


def _verdict(value: float, goal: float, text: str) -> str:
    wanted = f"{goal:g}x" if goal > 1 else f"{goal:.0%}"
    return f"{text} (goal >= {wanted}: {'met' if value >= goal else 'NOT met'})"


def summarise(figures: dict) -> list[Result]:
    """The stage's report lines: one measurement per model and phase, then the goals (best of eager and compiled)."""
    results = []
    for name, entry in figures["models"].items():
        for phase, r in entry.items():
            mfu = ", ".join(
                f"MFU {mode} " + (f"{r['mfu'][mode]:.1%}" if r["mfu"][mode] is not None else "n/a")
                for mode in ("eager", "compiled")
            )
            detail = (
                f"{r['eager']:,.0f} img/s eager, {r['compiled']:,.0f} img/s compiled "
                f"({r['compiled'] / r['eager']:.2f}x); "
                f"{r['setting']}; {r['flops_per_image'] / 1e9:.2f} GFLOP/image; {mfu}"
            )
            results.append(
                Result(STAGE, f"{name} {phase}", None, detail, {"eager": r["eager"], "compiled": r["compiled"]})
            )
    best = {
        (name, phase): max(r["eager"], r["compiled"])
        for name, entry in figures["models"].items()
        for phase, r in entry.items()
    }
    for phase in ("inference", "training"):
        ratio = best["ours", phase] / best["timm", phase]
        goal = GOALS[f"{phase}, ours / timm"]
        results.append(
            Result(STAGE, f"goal: {phase}, ours / timm", None, _verdict(ratio, goal, f"{ratio:.2f}x"), {"ratio": ratio})
        )
    mfus = [m for m in figures["models"]["ours"]["inference"]["mfu"].values() if m is not None]
    goal = GOALS["inference MFU, ours"]
    text = _verdict(max(mfus), goal, f"{max(mfus):.1%}") if mfus else "n/a"
    results.append(
        Result(
            STAGE,
            "goal: bf16 inference MFU, ours",
            None,
            f"{text}; peak: {figures['peak_source']}",
            {"mfu": max(mfus, default=None)},
        )
    )
    return results


def run(settings: Settings) -> tuple[list[Result], dict]:
    """Measure and summarise; a failure of the measurement itself is one failed line with its message."""
    try:
        figures = measure(settings)
    except Exception as err:  # noqa: BLE001 - report and carry on: the other stages' results still count
        return [Result(STAGE, "speed measurement", False, f"raised {type(err).__name__}: {err}")], {}
    return summarise(figures), figures
