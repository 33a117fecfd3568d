"""Launch probe: build the Accelerator through trainkit and report the process group it formed.

Each process prints one line ``PROBE rank=R world=W processes=P sum=S backend=B``, where S is the all-reduced sum of
(rank + 1) over the group: 3.0 for one group of two processes, 1.0 for a process that is alone.
Run by tests/test_trainkit_launch.py under ``accelerate launch``.
"""

from __future__ import annotations

import sys
import tempfile

import torch
import torch.distributed as dist

from trainkit.accel import build_accelerator
from trainkit.sections import RunConfig


def main() -> None:
    accelerator = build_accelerator(RunConfig(tensorboard=False), tempfile.mkdtemp(prefix="ddp_probe_"))
    value = torch.tensor([accelerator.process_index + 1.0], device=accelerator.device)
    total = accelerator.reduce(value, reduction="sum").item()
    world = dist.get_world_size() if dist.is_initialized() else 1
    backend = dist.get_backend() if dist.is_initialized() else "none"
    # One write per line: the processes share the launcher's stdout, and print() writes the newline separately.
    sys.stdout.write(
        f"PROBE rank={accelerator.process_index} world={world} processes={accelerator.num_processes} "
        f"sum={total} backend={backend}\n"
    )
    sys.stdout.flush()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if dist.is_initialized():
        dist.destroy_process_group()
    sys.exit(0)


if __name__ == "__main__":
    main()
