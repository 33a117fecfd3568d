"""Where a training step's time goes: each contender's fairseq training step, measured in-process side by side.

Every model is set up exactly as ``fairseq-train`` sets it up from the benchmark's command line (fairseq's options,
task, criterion and ``Trainer``, so fairseq's Adam, gradient norm and loss are included), and runs
``Trainer.train_step`` on the same batches. Models take turns batch by batch, and each step is timed in the CPU
time of this thread (other jobs on the machine barely move it, unlike wall-clock time); the speed is target tokens
per CPU second over the fastest of the rounds for each batch. ``torch.profiler`` then gives the op breakdown: each
aten op's share of a profiled run, times the step's CPU time (ms per step by op category), the answer to "why is
one faster".

Used by ``python -m bench.seq2seq`` (``--profile-steps``); alone: ``python -m bench.seq2seq_profile DATA_DIR``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections import defaultdict
from pathlib import Path

import torch

from .seq2seq_compare import (
    RESMLP,
    RESMLP_MATCHED_PARAMETERS,
    RESMLP_MATCHED_PARAMETERS_WIDER,
    TRANSFORMER,
    Budget,
    Contender,
    train_args,
)

# How the aten ops are grouped in the summary (anything else is "other"); the first matching prefix wins, so the
# activations come before "aten::ge" (the dropout mask's comparison).
CATEGORIES = {
    "activations": ("aten::gelu", "aten::gelu_backward", "aten::relu", "aten::threshold_backward"),
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv", "aten::addmv_"),
    "attention kernels": ("aten::_scaled_dot_product", "aten::_softmax", "aten::_softmax_backward_data"),
    # fairseq's F.dropout draws Bernoulli samples; the plugin's CPU mask random words (seq2seq/dropout.py).
    "dropout masks": ("aten::bernoulli_", "aten::native_dropout", "aten::randint", "aten::random_", "aten::ge"),
    "log-softmax and loss": (
        "aten::_log_softmax",
        "aten::_log_softmax_backward_data",
        "aten::nll_loss",
        "aten::gather",
    ),
    "layer norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "copies and layout": ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy"),
    "elementwise arithmetic": ("aten::mul", "aten::add", "aten::sum", "aten::addcmul", "aten::div", "aten::fill_"),
}


def category(op: str) -> str:
    for name, prefixes in CATEGORIES.items():
        if op.startswith(prefixes):
            return name
    return "other"


def build_trainer(contender: Contender, data_dir: Path, budget: Budget, steps: int):
    """(fairseq Trainer, ``steps`` training batches) for one contender, as fairseq-train would build them."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    args = train_args(data_dir, data_dir / "unused-save-dir", budget, contender.lr) + list(contender.arch_args)
    args = [str(a) for a in args] + ["--cpu", "--no-save"]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), args))
    task = tasks.setup_task(cfg.task)
    task.load_dataset(cfg.dataset.train_subset)
    torch.manual_seed(budget.seed)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    batches = task.get_batch_iterator(
        task.dataset(cfg.dataset.train_subset),
        max_tokens=budget.max_tokens,
        max_positions=(budget.max_positions, budget.max_positions),
        required_batch_size_multiple=1,
        seed=budget.seed,
    ).next_epoch_itr(shuffle=True)
    taken = list(itertools.islice(batches, steps))  # fewer when one epoch of the data holds fewer batches
    if len(taken) < 2:
        raise ValueError(f"{data_dir} has too little training data to profile: one epoch is {len(taken)} batch")
    return trainer, taken


def with_plugin_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Give every ``FairseqDropout`` of a fairseq model the plugin's cheaper CPU mask (``seq2seq/dropout.py``).

    Only for the profile's architecture comparison: fairseq's transformer as its users run it keeps its own dropout.
    """
    from fairseq.modules import FairseqDropout

    from seq2seq.dropout import CpuFastDropout

    stock = [name for name, module in model.named_modules() if type(module) is FairseqDropout]
    for name in stock:
        parent, _, attribute = name.rpartition(".")
        old = model.get_submodule(name)
        setattr(model.get_submodule(parent), attribute, CpuFastDropout(old.p, module_name=old.module_name))
    return model


SAME_DROPOUT = f"{TRANSFORMER.name}, plugin's dropout"


def profile(
    contenders, data_dir: Path, budget: Budget, steps: int = 8, rounds: int = 5, same_dropout: bool = True
) -> dict[str, dict]:
    """Per contender: parameters, target tokens per CPU second (and median), and ms per step by op and category.

    ``same_dropout`` adds the transformer with the plugin's dropout mask, to separate the architectures' difference
    from the plugin's faster dropout.
    """
    logging.disable(logging.WARNING)  # fairseq logs every set-up step
    torch.set_num_threads(1)
    setups = {c.name: build_trainer(c, data_dir, budget, steps + 1) for c in contenders}
    if same_dropout:
        setups[SAME_DROPOUT] = build_trainer(TRANSFORMER, data_dir, budget, steps + 1)
        with_plugin_dropout(setups[SAME_DROPOUT][0].model)
    steps = min(len(batches) for _, batches in setups.values()) - 1  # batch 0 is the warm-up
    for trainer, batches in setups.values():
        trainer.train_step([batches[0]])  # warm-up: allocator, lazy initialisation
    seconds = {name: defaultdict(list) for name in setups}
    for _ in range(rounds):
        for index in range(1, steps + 1):
            for name, (trainer, batches) in setups.items():
                start = time.thread_time()
                trainer.train_step([batches[index]])
                seconds[name][index].append(time.thread_time() - start)
    results = {}
    for name, (trainer, batches) in setups.items():
        tokens = sum(batches[i]["ntokens"] for i in range(1, steps + 1))
        best = sum(min(t) for t in seconds[name].values())
        median = sum(sorted(t)[len(t) // 2] for t in seconds[name].values())
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for index in range(1, steps + 1):
                trainer.train_step([batches[index]])
        # Every aten op's share of the profiled steps (the profiler also records enclosing ranges such as
        # Optimizer.step, and its clock is wall time), scaled to the step's best CPU time: the profiler gives the
        # split, the CPU-time measurement the total, so other jobs that slowed the profiled run do not show.
        self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith("aten::")}
        ms_per_unit = best * 1e3 / steps / sum(self_us.values())
        aten = {op: us * ms_per_unit for op, us in self_us.items()}
        by_category: dict[str, float] = defaultdict(float)
        for op, ms in aten.items():
            by_category[category(op)] += ms
        results[name] = {
            "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "parameter_tensors": len(list(trainer.model.parameters())),
            "tokens_per_cpu_second": tokens / best,
            "tokens_per_cpu_second_median": tokens / median,
            "ms_per_step_by_category": dict(sorted(by_category.items(), key=lambda kv: -kv[1])),
            "ms_per_step_top_ops": dict(sorted(aten.items(), key=lambda kv: -kv[1])[:12]),
        }
    logging.disable(logging.NOTSET)
    return results


def profile_table(results: dict[str, dict], reference: str = "transformer") -> str:
    """Markdown: speed per contender, then ms per training step by op category."""
    names = list(results)
    ref = results[reference]["tokens_per_cpu_second"]
    lines = ["| model | parameters | target tokens per CPU second | vs " + reference + " |", "|---|---:|---:|---:|"]
    for name in names:
        r = results[name]
        speed = r["tokens_per_cpu_second"]
        lines.append(f"| {name} | {r['parameters']:,} | {speed:,.0f} | {speed / ref:.2f}x |")
    categories = sorted({c for r in results.values() for c in r["ms_per_step_by_category"]})
    lines += ["", "| ms per training step (CPU time, split by torch.profiler) | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---:|" * len(names))
    for cat in sorted(categories, key=lambda c: -results[reference]["ms_per_step_by_category"].get(c, 0.0)):
        row = [f"{results[n]['ms_per_step_by_category'].get(cat, 0.0):.1f}" for n in names]
        lines.append(f"| {cat} | " + " | ".join(row) + " |")
    totals = [f"{sum(results[n]['ms_per_step_by_category'].values()):.1f}" for n in names]
    lines.append("| total | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path, help="binarised built-in pair (python -m bench.seq2seq writes one)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    contenders = [RESMLP, RESMLP_MATCHED_PARAMETERS, RESMLP_MATCHED_PARAMETERS_WIDER, TRANSFORMER]
    print(profile_table(profile(contenders, args.data_dir, Budget(), args.steps, args.rounds)))


if __name__ == "__main__":
    main()
