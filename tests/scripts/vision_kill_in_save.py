"""``python -m vision.train`` with a SIGKILL at the commit of one checkpoint (tests only).

The process dies after the checkpoint's files are written and before the staging directory is renamed into place:
the worst moment for a crash. ``KILL_IN_SAVE_AT_STEP`` names the step. The training code itself is unchanged.
"""

import os
import signal
import sys

from vision.train import main

KILL_AT = f".incomplete-step_{int(os.environ['KILL_IN_SAVE_AT_STEP']):09d}"
_real_replace = os.replace


def _replace(src, dst):
    if os.path.basename(str(src)) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_replace(src, dst)


os.replace = _replace
main(sys.argv[1:])
