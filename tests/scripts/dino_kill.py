"""``python -m ssl_dino.train`` that signals itself after the teacher update of step ``DINO_KILL_AT_STEP`` (counted
from the start of this process), i.e. mid-step, before that step's log and checkpoint: a kill -9 for the tests, or
with ``DINO_SIGNAL=INT`` a Ctrl-C at a known step."""

from __future__ import annotations

import os
import signal
import sys

import ssl_dino.train as dino_train

KILL_AT = int(os.environ["DINO_KILL_AT_STEP"])
SIGNAL = getattr(signal, f"SIG{os.environ.get('DINO_SIGNAL', 'KILL')}")
_real_update = dino_train.update_teacher
_done = [0]


def _update_then_maybe_die(*args, **kwargs):
    _real_update(*args, **kwargs)
    _done[0] += 1
    if _done[0] == KILL_AT:
        os.kill(os.getpid(), SIGNAL)


dino_train.update_teacher = _update_then_maybe_die

if __name__ == "__main__":
    dino_train.main(sys.argv[1:])
