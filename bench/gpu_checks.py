"""Stage 1 of ``python -m bench.gpu``: every model path on the device against the CPU fp32 reference.

The reference is the model on the CPU in fp32 with the CPU fast path switched off (``resmlp.fast.disabled()``):
the paper's formulation, term by term. Each path runs on the device from a copy of the same weights and the same
inputs: eval and train (loss and every parameter gradient), fp32 and bf16 autocast, the fused model (fp32 and bf16
weights), ``torch.compile`` (training in bf16 autocast and the fused bf16 model, the settings the speed stage
times), channels_last input; then the fairseq translation model (built by fairseq's own ``build_model`` with the
plugin loaded through ``--user-dir``): encoder and decoder in fp32, bf16 autocast and fp16 weights (what
``fairseq-train --fp16`` runs), and incremental decoding, one token at a time, against the full pass.

Agreement is the relative L2 error ``||device - reference|| / ||reference||`` of the outputs (and of all gradients
together), within ``TOLERANCE`` of the precision. fp32 runs with TF32 off, so the device does fp32 arithmetic.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import resmlp

from .gpu_settings import Result, Settings

TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "fp16": 2e-2}
STAGE = "checks"


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> float:
    """``||got - reference|| / ||reference||`` in float64 on the CPU (0 when both are zero)."""
    got, reference = got.detach().double().cpu(), reference.detach().double().cpu()
    scale = reference.norm().item()
    return (got - reference).norm().item() / scale if scale else (got - reference).norm().item()


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off for matrix products and convolutions, so fp32 on a GPU is fp32 arithmetic."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compare(name: str, precision: str, errors: dict[str, float], what: str) -> Result:
    """One check: every error of ``errors`` within the precision's tolerance."""
    tolerance = TOLERANCE[precision]
    worst = max(errors, key=errors.get)
    text = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    return Result(STAGE, name, errors[worst] <= tolerance, f"{what}: {text} (tolerance {tolerance:g})", errors)


def guarded(name: str, check: Callable[[], Result]) -> Result:
    """Run one check; an exception is a failed check with its message, never the end of the benchmark."""
    start = time.perf_counter()
    try:
        result = check()
    except Exception as err:  # noqa: BLE001 - any failure of a model path is a finding to report
        result = Result(STAGE, name, False, f"raised {type(err).__name__}: {str(err).splitlines()[0][:300]}")
    result.values["seconds"] = round(time.perf_counter() - start, 2)
    return result


# ---------------------------------------------------------------- image model


def _train_step(model: torch.nn.Module, images, labels, device, precision) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, all parameter gradients flattened) of one cross-entropy forward/backward."""
    model.zero_grad(set_to_none=True)
    with autocast(device, precision):
        loss = F.cross_entropy(model(images), labels)
    loss.backward()
    grads = torch.cat([p.grad.detach().float().flatten().cpu() for p in model.parameters() if p.grad is not None])
    return loss.detach().float().cpu(), grads


def image_model_checks(settings: Settings) -> list[Result]:
    device, backend = settings.device, settings.compile_backend
    torch.manual_seed(0)
    reference = resmlp.create_model(settings.check_model, drop_path_rate=0.0)
    size = reference.config.img_size
    size = size if isinstance(size, int) else size[0]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(settings.check_batch, 3, size, size, generator=gen)
    labels = torch.randint(0, reference.config.num_classes, (settings.check_batch,), generator=gen)
    with resmlp.fast.disabled(), torch.no_grad():
        reference.eval()
        ref_logits, ref_tokens = reference(images), reference.forward_features(images)
    reference.train()
    with resmlp.fast.disabled():
        ref_loss, ref_grads = _train_step(reference, images, labels, torch.device("cpu"), "fp32")

    on_device = copy.deepcopy(reference).to(device)
    x, y = images.to(device), labels.to(device)
    where = f"{device.type} vs CPU reference"

    def eval_check(name: str, model: Callable, precision: str, inputs: torch.Tensor, tokens: bool = False) -> Result:
        def run() -> Result:
            with torch.inference_mode(), autocast(device, precision):
                errors = {"logits": relative_error(model(inputs), ref_logits)}
                if tokens:
                    errors["tokens"] = relative_error(on_device.forward_features(inputs), ref_tokens)
            return compare(name, precision, errors, where)

        return guarded(name, run)

    def train_check(name: str, model: torch.nn.Module, precision: str) -> Result:
        def run() -> Result:
            loss, grads = _train_step(model, x, y, device, precision)
            errors = {"loss": relative_error(loss, ref_loss), "gradients": relative_error(grads, ref_grads)}
            return compare(name, precision, errors, where)

        return guarded(name, run)

    results = []
    with strict_fp32():
        on_device.eval()
        results.append(eval_check("image eval fp32", on_device, "fp32", x, tokens=True))
        results.append(eval_check("image eval bf16 autocast", on_device, "bf16", x, tokens=True))
        results.append(
            eval_check(
                "image eval fp32, channels_last input", on_device, "fp32", x.to(memory_format=torch.channels_last)
            )
        )
        fused = resmlp.fuse(on_device)
        results.append(eval_check("image fused fp32", fused, "fp32", x))
        fused_bf16 = resmlp.fuse(on_device).to(torch.bfloat16)
        results.append(eval_check("image fused bf16 weights", fused_bf16, "bf16", x.to(torch.bfloat16)))
        compiled_fused = torch.compile(fused_bf16, backend=backend)
        results.append(
            eval_check(f"image fused bf16 weights, torch.compile ({backend})", compiled_fused, "bf16", x.bfloat16())
        )
        on_device.train()
        results.append(train_check("image train fp32", on_device, "fp32"))
        results.append(train_check("image train bf16 autocast", on_device, "bf16"))
        compiled = torch.compile(on_device, backend=backend)
        results.append(train_check(f"image train bf16 autocast, torch.compile ({backend})", compiled, "bf16"))
    return results


# ---------------------------------------------------------------- translation model


def build_translation_model(arch: str, vocab: int = 40):
    """The plugin's ``arch`` through fairseq's own task and ``build_model``, the plugin loaded as ``--user-dir``."""
    from fairseq import models, utils
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import TranslationConfig, TranslationTask
    from omegaconf import OmegaConf

    from seq2seq.user_dir import plugin_dir

    utils.import_user_module(argparse.Namespace(user_dir=plugin_dir()))
    dictionary = Dictionary()
    for index in range(vocab):
        dictionary.add_symbol(f"w{index}")
    task = TranslationTask(TranslationConfig(), dictionary, dictionary)
    cfg = OmegaConf.create({"_name": arch, "max_source_positions": 32, "max_target_positions": 32, "dropout": 0.0})
    torch.manual_seed(0)
    return models.build_model(cfg, task).eval()


def _tokens(lengths: list[int], width: int, vocab: int, seed: int) -> torch.Tensor:
    """A left-padded batch of sentences ending in EOS (pad 1, EOS 2), as fairseq feeds its encoder."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.ones(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        out[row, width - length :] = torch.cat(
            [torch.randint(4, vocab, (length - 1,), generator=gen), torch.tensor([2])]
        )
    return out


def translation_checks(settings: Settings) -> list[Result]:
    device = settings.device
    try:
        reference = build_translation_model(settings.seq2seq_arch)
    except Exception as err:  # noqa: BLE001 - a model that cannot be built is a failed check, not a crash
        return [Result(STAGE, "seq2seq build", False, f"raised {type(err).__name__}: {err}")]
    vocab = len(reference.encoder.dictionary)
    lengths = torch.tensor([7, 5, 3])
    src = _tokens(lengths.tolist(), 7, vocab, seed=1)
    prev = torch.randint(4, vocab, (3, 6), generator=torch.Generator().manual_seed(2))
    prev[:, 0] = 2  # the decoder input starts with EOS, as fairseq's
    with torch.no_grad():
        ref_logits = reference.decoder(prev, reference.encoder(src, lengths))[0]
    where = f"{device.type} vs CPU reference"
    on_device = copy.deepcopy(reference).to(device)
    src, lengths, prev = src.to(device), lengths.to(device), prev.to(device)

    def full(model, precision: str = "fp32") -> torch.Tensor:
        with torch.no_grad(), autocast(device, precision):
            return model.decoder(prev, model.encoder(src, lengths))[0]

    def full_check(name: str, model_of: Callable[[], torch.nn.Module], precision: str) -> Result:
        """Encoder + teacher-forced decoder of ``model_of()``; bf16 runs under autocast, fp16 has fp16 weights."""

        def run() -> Result:
            logits = full(model_of(), "bf16" if precision == "bf16" else "fp32")
            return compare(name, precision, {"logits": relative_error(logits, ref_logits)}, where)

        return guarded(name, run)

    def incremental() -> Result:
        state: dict = {}
        with torch.no_grad():
            encoder_out = on_device.encoder(src, lengths)
            steps = [on_device.decoder(prev[:, : t + 1], encoder_out, incremental_state=state)[0] for t in range(6)]
        stepped = torch.cat(steps, dim=1)
        errors = {
            "vs full pass": relative_error(stepped, full(on_device)),
            "vs CPU reference": relative_error(stepped, ref_logits),
        }
        return compare("seq2seq incremental decoding", "fp32", errors, f"{device.type}, one token per step")

    with strict_fp32():
        return [
            full_check("seq2seq encoder+decoder fp32", lambda: on_device, "fp32"),
            full_check("seq2seq encoder+decoder bf16 autocast", lambda: on_device, "bf16"),
            full_check(
                "seq2seq encoder+decoder fp16 weights (--fp16)", lambda: copy.deepcopy(on_device).half(), "fp16"
            ),
            guarded("seq2seq incremental decoding", incremental),
        ]


def run(settings: Settings) -> list[Result]:
    """Every check of stage 1."""
    return image_model_checks(settings) + translation_checks(settings)
