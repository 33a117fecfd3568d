"""trainkit.interrupts: the first SIGINT/SIGTERM is a request the loop honours, repeats within the grace period are
the same request, a later one stops the process at once; DataLoader workers ignore both.

The end-to-end behaviour (a real run saves, says how to resume, and the resumed run equals an uninterrupted one) is
tested in test_train_vision.py and test_dino_train.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from trainkit.interrupts import GracefulStop, Interrupted, ignore_in_workers


class FakeManager:
    def __init__(self) -> None:
        self.saved, self.last_saved_step = [], None

    def save(self, step, epoch, batch=0, extra=None):
        self.saved.append((step, epoch, batch))
        self.last_saved_step = step
        return f"checkpoints/step_{step:09d}"

    def latest(self):
        return f"checkpoints/step_{self.last_saved_step:09d}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_becomes_a_request_and_the_exit_says_how_to_resume(signum, capsys):
    previous = signal.getsignal(signum)
    with GracefulStop() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signum)  # no KeyboardInterrupt, no termination
        os.kill(os.getpid(), signum)  # the same Ctrl-C forwarded by a launcher: ignored
        assert stop.requested()
        ckpt = FakeManager()
        with pytest.raises(Interrupted) as err:
            stop.save_and_exit(ckpt, 12, 1, batch=3, resume="outputs/x/checkpoints/step_000000004")
    assert signal.getsignal(signum) is previous  # handlers restored
    assert ckpt.saved == [(12, 1, 3)]
    assert err.value.status == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    message = str(err.value)
    assert f"stopped by {signal.Signals(signum).name} after step 12" in message
    assert "run the same command again with run.resume=auto" in message  # the explicit path would resume the old one
    assert "press Ctrl-C again to stop at once" in capsys.readouterr().err


def test_a_step_saved_just_before_is_not_saved_twice():
    ckpt = FakeManager()
    ckpt.save(20, 2)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(Interrupted, match="step_000000020 is complete"):
            stop.save_and_exit(ckpt, 20, 2, batch=0)
    assert ckpt.saved == [(20, 2, 0)]


def test_a_second_signal_after_the_grace_period_stops_at_once(tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, time
        from trainkit.interrupts import GracefulStop

        with GracefulStop(grace_s=0.2) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # never reached: the second signal takes the default action
        """
    )
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGINT and time.time() - started < 60
    assert "SIGINT again: stopping at once" in proc.stderr


def test_dataloader_workers_ignore_both_signals():
    script = textwrap.dedent(
        """
        import os, signal
        from trainkit.interrupts import ignore_in_workers

        ignore_in_workers(0)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        print("alive")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "alive"
    assert callable(ignore_in_workers)
