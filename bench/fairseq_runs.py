"""Run fairseq's command-line tools as subprocesses and read the numbers back from their logs.

Used by the seq2seq demo, benchmark and tests, which all drive the real ``fairseq-*`` tools (and ``resmlp-fairseq``)
exactly as a user would. Training logs are read in ``--log-format json``; generation numbers come from
``fairseq-generate``'s summary lines.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def fairseq_tool(name: str) -> list[str]:
    """The console script ``name`` (``fairseq-train``, ``resmlp-fairseq``, ...) of this Python's environment, or
    its module form."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    if name == "resmlp-fairseq":
        return [sys.executable, "-m", "seq2seq.launcher"]
    return [sys.executable, "-m", "fairseq_cli." + name.removeprefix("fairseq-").replace("-", "_")]


def run_tool(
    name: str, args: list[str], *, input_text: str | None = None, cwd: str | Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run one fairseq tool; with ``check``, a failure raises with the command and the end of its log."""
    command = fairseq_tool(name) + [str(a) for a in args]
    result = subprocess.run(command, input=input_text, capture_output=True, text=True, cwd=cwd)
    if check and result.returncode != 0:
        log = (result.stdout + result.stderr)[-6000:]
        raise RuntimeError(f"{name} failed with exit code {result.returncode}: {' '.join(command)}\n{log}")
    return result


def json_records(log: str, tag: str) -> list[dict]:
    """The JSON payloads of ``--log-format json`` lines logged under ``tag`` (``train_inner``, ``train``, ``valid``)."""
    records = []
    for line in log.splitlines():
        if f"| {tag} | {{" in line:
            records.append(json.loads(line[line.index("{") :]))
    return records


def parameter_count(log: str) -> int:
    """Model size from fairseq-train's ``num. shared model params`` line."""
    match = re.search(r"num\. shared model params: ([\d,]+)", log)
    if match is None:
        raise ValueError("no 'num. shared model params' line in the fairseq-train log")
    return int(match.group(1).replace(",", ""))


def bleu_score(log: str) -> float:
    """The corpus BLEU printed by fairseq-generate (``--scoring sacrebleu`` or the default ``bleu``)."""
    match = re.search(r"BLEU4? = ([\d.]+)", log)
    if match is None:
        raise ValueError("no BLEU line in the fairseq-generate output (is the test set missing its targets?)")
    return float(match.group(1))


@dataclass(frozen=True)
class GenerationSpeed:
    """fairseq-generate's own timing of the search (model loading and data reading excluded)."""

    sentences: int
    seconds: float
    sentences_per_second: float
    tokens_per_second: float


def generation_speed(log: str) -> GenerationSpeed:
    """Parse ``Translated N sentences (M tokens) in Xs (Y sentences/s, Z tokens/s)``."""
    match = re.search(
        r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s \(([\d.]+) sentences/s, ([\d.]+) tokens/s\)",
        log,
    )
    if match is None:
        raise ValueError("no 'Translated ... sentences' line in the fairseq-generate output")
    return GenerationSpeed(
        sentences=int(match.group(1).replace(",", "")),
        seconds=float(match.group(3)),
        sentences_per_second=float(match.group(4)),
        tokens_per_second=float(match.group(5)),
    )
