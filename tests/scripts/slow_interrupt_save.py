"""``python -m vision.train`` whose interrupt-time checkpoint save takes a minute (tests only).

After the first SIGINT the loop finishes its step and starts saving; here that save touches ``SLOW_SAVE_MARKER``
and then sleeps inside the write of the RNG file, so a test can send the second Ctrl-C while the checkpoint is
half-written. The training code itself is unchanged.
"""

import os
import sys
import time
from pathlib import Path

import trainkit.checkpoints as checkpoints
from trainkit.interrupts import GracefulStop
from vision.train import main

_real_write_rng = checkpoints.state_files.write_rng
_real_save_and_exit = GracefulStop.save_and_exit
_stopping = [False]


def _write_rng(path):
    if _stopping[0]:
        Path(os.environ["SLOW_SAVE_MARKER"]).touch()
        time.sleep(60)
    return _real_write_rng(path)


def _save_and_exit(self, *args, **kwargs):
    _stopping[0] = True
    return _real_save_and_exit(self, *args, **kwargs)


checkpoints.state_files.write_rng = _write_rng
GracefulStop.save_and_exit = _save_and_exit
main(sys.argv[1:])
