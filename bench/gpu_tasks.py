"""Stage 2 of ``python -m bench.gpu``: every task end to end on the device, through the launchers users run.

- ``accelerate launch -m vision.train`` on the built-in digits in bf16 (compiled on the GPU: ``run.compile=true``);
- ``accelerate launch -m ssl_dino.train`` on the digits (its recipe's batch-norm head, bf16 on the GPU);
- ``accelerate launch -m ssl_dino.knn`` on the DINO run's teacher with ``--bank-device cuda`` on the GPU, checked
  against the same k-NN recomputed on the CPU from the features it dumped;
- ``fairseq-train`` and ``fairseq-generate`` with the plugin (``--user-dir``) on the built-in language pair, with
  ``--fp16`` on the GPU.

A task passes when its command exits 0 and writes what it should; on the GPU it must also learn (the thresholds of
``Settings``). Logs go to ``OUT_DIR/logs/<task>.log``; the runs to ``OUT_DIR/runs/``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .gpu_settings import Result, Settings

STAGE = "tasks"
REPO = Path(__file__).resolve().parents[1]


def _launcher(settings: Settings) -> list[str]:
    """``accelerate launch`` of this Python's environment with the one-GPU config (one process), or ``python``."""
    if not settings.accelerate_launch:
        return [sys.executable]
    accelerate = Path(sys.executable).with_name("accelerate")
    return [str(accelerate), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / "one_gpu.yaml")]


def _run(command: list[str], log: Path, timeout: float) -> tuple[int, float]:
    """Run ``command`` from the repository root, output to ``log``; (exit code, seconds). 124 on a timeout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        out.write(" ".join(command) + "\n\n")
        out.flush()
        try:
            code = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return code, time.perf_counter() - start


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _failed(name: str, code: int, log: Path) -> Result:
    tail = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
    why = "timed out" if code == 124 else f"exit code {code}"
    return Result(STAGE, name, False, f"{why}; {tail[0][:200] if tail else ''} (log: {log})", {"exit_code": code})


def _train(
    settings: Settings, name: str, module: str, recipe: str, overrides: tuple[str, ...], out: Path, logs: Path
) -> tuple[Result | None, float]:
    """Run a task's training entry point on ``recipe`` with ``overrides`` into ``out`` (log: ``logs/<out>.log``);
    returns the failure (None when it exited 0) and the seconds it took."""
    log = logs / f"{out.name}.log"
    command = [*_launcher(settings), "-m", module, "--recipe", str(REPO / recipe), "--output-dir", str(out), *overrides]
    code, seconds = _run(command, log, timeout=300)
    return (_failed(name, code, log) if code else None), seconds


def vision_task(settings: Settings, runs: Path, logs: Path) -> Result:
    name = "vision.train digits" + (" bf16, run.compile" if not settings.dry_run else " bf16")
    out = runs / "vision"
    recipe = "recipes/vision/resmlp_digits.yaml"
    failed, seconds = _train(settings, name, "vision.train", recipe, settings.vision_overrides, out, logs)
    if failed:
        return failed
    evals = [r for r in _records(out / "metrics.jsonl") if "top1" in r]
    if not evals or not (out / "model.pth").is_file():
        return Result(
            STAGE, name, False, "no evaluation record or no model.pth in the run folder", {"seconds": seconds}
        )
    top1 = float(evals[-1]["top1"])
    ok = math.isfinite(float(evals[-1]["loss"])) and (
        settings.min_vision_top1 is None or top1 >= settings.min_vision_top1
    )
    goal = f" (needs >= {settings.min_vision_top1:g}%)" if settings.min_vision_top1 is not None else ""
    return Result(STAGE, name, ok, f"top-1 {top1:.2f}%{goal} in {seconds:.0f} s", {"top1": top1, "seconds": seconds})


def dino_task(settings: Settings, runs: Path, logs: Path) -> Result:
    name = "ssl_dino.train digits" + (" bf16" if not settings.dry_run else "")
    out = runs / "dino"
    recipe = "recipes/dino/resmlp_digits.yaml"
    failed, seconds = _train(settings, name, "ssl_dino.train", recipe, settings.dino_overrides, out, logs)
    if failed:
        return failed
    knn = [float(r["knn_top1"]) for r in _records(out / "metrics.jsonl") if "knn_top1" in r]
    if len(knn) < 2 or not (out / "model.pth").is_file():
        return Result(STAGE, name, False, "no k-NN before and after training, or no model.pth", {"seconds": seconds})
    gain = knn[-1] - knn[0]
    ok = settings.min_dino_knn_gain is None or gain >= settings.min_dino_knn_gain
    goal = f" (needs >= +{settings.min_dino_knn_gain:g})" if settings.min_dino_knn_gain is not None else ""
    detail = f"k-NN top-1 {knn[0]:.2f}% -> {knn[-1]:.2f}% ({gain:+.2f}{goal}) in {seconds:.0f} s"
    return Result(STAGE, name, ok, detail, {"knn_before": knn[0], "knn_after": knn[-1], "seconds": seconds})


def knn_task(settings: Settings, runs: Path, logs: Path) -> Result:
    """The k-NN command on the DINO teacher, bank on the device, against the CPU k-NN of the same features."""
    import torch

    from ssl_dino.features import load_features
    from ssl_dino.knn import knn_evaluate

    bank = "cuda" if settings.device.type == "cuda" else "cpu"
    name = f"ssl_dino.knn, bank on the {bank.upper() if bank == 'cuda' else 'CPU'}"
    checkpoint, dump, results = runs / "dino" / "model.pth", runs / "knn_features", runs / "knn.json"
    if not checkpoint.is_file():
        return Result(STAGE, name, False, "no DINO model.pth to evaluate (the DINO task failed)")
    command = [*_launcher(settings), "-m", "ssl_dino.knn", "--checkpoint", str(checkpoint), "--data", "digits"]
    command += ["--nb-knn", "20", "--bank-device", bank, "--dump-features", str(dump), "--results", str(results)]
    code, seconds = _run(command, logs / "knn.log", timeout=300)
    if code:
        return _failed(name, code, logs / "knn.log")
    top1 = json.loads(results.read_text())["k20"]["top1"]
    train_x, train_y, test_x, test_y, classes = load_features(dump)
    with torch.no_grad():
        cpu_top1 = knn_evaluate(train_x, train_y, test_x, test_y, [20], 0.07, classes)[20][0]
    ok = abs(top1 - cpu_top1) <= 100.0 / len(test_x) + 1e-9  # at most one query may flip on a near-tie
    detail = f"20-NN top-1 {top1:.2f}% ({bank}), {cpu_top1:.2f}% recomputed on the CPU, in {seconds:.0f} s"
    return Result(STAGE, name, ok, detail, {"top1": top1, "cpu_top1": cpu_top1, "seconds": seconds})


def fairseq_task(settings: Settings, runs: Path, logs: Path) -> list[Result]:
    """fairseq-train then fairseq-generate on the built-in pair; returns one result per tool."""
    from .fairseq_runs import bleu_score, generation_speed, json_records, run_tool
    from .seq2seq_compare import Budget, generate_args, make_synthetic_data, train_args

    precision = " ".join(settings.fairseq_precision) or "fp32"
    work = runs / "fairseq"
    start = time.perf_counter()
    try:
        data = make_synthetic_data(work, settings.fairseq_sizes, vocab_size=settings.fairseq_vocab)
        budget = Budget(max_update=settings.fairseq_updates, warmup_updates=min(100, settings.fairseq_updates))
        save = work / "checkpoints"
        args = train_args(data, save, budget, lr=0.02) + ["--arch", "resmlp_tiny", "--log-interval", "1"]
        train = run_tool("fairseq-train", args + list(settings.fairseq_precision), check=False)
    except Exception as err:  # noqa: BLE001 - data preparation failing is this task failing
        return [Result(STAGE, f"fairseq-train {precision}", False, f"raised {type(err).__name__}: {err}")]
    (logs / "fairseq-train.log").write_text(train.stdout + train.stderr)
    seconds = time.perf_counter() - start
    name = f"fairseq-train resmlp_tiny {precision}"
    losses = [float(r["loss"]) for r in json_records(train.stdout + train.stderr, "train_inner")]
    if train.returncode or not losses or not (save / "checkpoint_best.pt").is_file():
        return [_failed(name, train.returncode or 1, logs / "fairseq-train.log")]
    drop = losses[0] - losses[-1]
    ok = all(math.isfinite(x) for x in losses) and (
        settings.min_fairseq_loss_drop is None or drop >= settings.min_fairseq_loss_drop
    )
    goal = f" (needs >= {settings.min_fairseq_loss_drop:g})" if settings.min_fairseq_loss_drop is not None else ""
    detail = f"{len(losses)} updates, loss {losses[0]:.2f} -> {losses[-1]:.2f}{goal} in {seconds:.0f} s"
    results = [Result(STAGE, name, ok, detail, {"loss_first": losses[0], "loss_last": losses[-1], "seconds": seconds})]
    start = time.perf_counter()
    generate = run_tool(
        "fairseq-generate",
        generate_args(data, save / "checkpoint_best.pt", budget) + list(settings.fairseq_precision),
        check=False,
    )
    (logs / "fairseq-generate.log").write_text(generate.stdout + generate.stderr)
    seconds = time.perf_counter() - start
    name = f"fairseq-generate beam {budget.beam} {precision}"
    if generate.returncode:
        return [*results, _failed(name, generate.returncode, logs / "fairseq-generate.log")]
    log = generate.stdout + generate.stderr
    speed, bleu = generation_speed(log), bleu_score(log)
    ok = speed.sentences == settings.fairseq_sizes["test"]
    detail = (
        f"{speed.sentences} sentences, BLEU {bleu:.2f}, {speed.sentences_per_second:,.0f} sentences/s, {seconds:.0f} s"
    )
    return [*results, Result(STAGE, name, ok, detail, {"bleu": bleu, "sentences": speed.sentences, "seconds": seconds})]


def run(settings: Settings) -> list[Result]:
    """Every task of stage 2. Two independent chains run side by side: vision, DINO, then the k-NN of DINO's
    teacher; and fairseq (prepare, train, generate). Nothing in this stage is timed against anything else."""
    runs, logs = settings.out_dir / "runs", settings.out_dir / "logs"
    shutil.rmtree(runs, ignore_errors=True)  # fresh runs: a run folder left from last time would be resumed
    logs.mkdir(parents=True, exist_ok=True)
    if settings.dry_run:  # toy models: one thread per process, so the two chains share the cores without spinning
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        translation = pool.submit(fairseq_task, settings, runs, logs)
        results = [vision_task(settings, runs, logs), dino_task(settings, runs, logs), knn_task(settings, runs, logs)]
        return results + translation.result()
