"""One error style for every command of the project: a user error is one line on stderr, a bug keeps its traceback.

A command raises ``UsageError`` for input that is wrong as typed (an unknown option value, a malformed recipe key)
and ``UserError`` for input that cannot be used (a missing or corrupt file, data that do not fit, a refused
resume). ``run_main`` turns either into one line, ``<prog>: error: <message>``, and the exit status 2 (usage) or
1 (failure). Any other exception is a bug in our code and keeps its full traceback. ``--debug`` anywhere on the
command line (or ``RESMLP_DEBUG=1`` in the environment) shows the traceback of user errors too::

    from resmlp.cli import UsageError, UserError, add_debug_flag, run_main

    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog="python -m resmlp.export")
        add_debug_flag(parser)                     # lists --debug in --help
        args = parser.parse_args(argv)
        if not Path(args.checkpoint).is_file():
            raise UserError(f"checkpoint not found: {args.checkpoint}; pass an existing .pth file")
        ...
        return 0

    if __name__ == "__main__":
        run_main(main, prog="resmlp.export")       # never returns: exits with main's status

``command(prog)`` is the same as a decorator; the decorated function keeps its signature ``main(argv=None)`` and,
called from Python (tests), raises ``SystemExit(status)`` after printing the line, like argparse does.

Exception types that other packages already raise for bad input can be registered once with
``register_user_error`` (``resmlp.CheckpointError`` is registered here), so ``run_main`` treats them as user
errors without every command catching them. The message should name the problem *and* the fix; newlines in it
are folded into spaces so it stays one line.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .checkpoint import CheckpointError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "RESMLP_DEBUG"
USAGE_STATUS = 2
FAILURE_STATUS = 1


class UserError(Exception):
    """Input that cannot be used (missing or damaged file, inconsistent data): one line, exit status 1.

    Args:
        message: What is wrong and how to fix it.
        status: Exit status for this instance (default: the class's ``status``); 130 for an interrupted run.
    """

    status = FAILURE_STATUS
    main_process_only = False  # True: under a multi-process launch only rank 0 prints it (every rank raises it)

    def __init__(self, message: str, *, status: int | None = None) -> None:
        # A DataLoader worker's error comes back as "Caught X in DataLoader worker process N. Original Traceback
        # ...": keep the original message, the traceback says nothing a user needs.
        cls = type(self)
        marker = f"{cls.__module__}.{cls.__qualname__}: "
        if str(message).startswith("Caught ") and marker in str(message):
            message = str(message)[str(message).rfind(marker) + len(marker) :].strip()
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(UserError):
    """Input that is wrong as typed (an option value, a recipe key): one line, exit status 2."""

    status = USAGE_STATUS


# type -> exit status, for exception types of other modules that always mean bad input.
_REGISTERED: dict[type[BaseException], int] = {CheckpointError: FAILURE_STATUS}


def register_user_error(error_type: type[BaseException], status: int = FAILURE_STATUS) -> None:
    """Treat ``error_type`` (and its subclasses) as a user error with exit status ``status`` in ``run_main``."""
    _REGISTERED[error_type] = status


def user_error_status(err: BaseException) -> int | None:
    """The exit status of ``err`` if it is a user error, else None (a bug: show the traceback)."""
    if isinstance(err, UserError):
        return err.status
    for error_type, status in _REGISTERED.items():
        if isinstance(err, error_type):
            return int(getattr(err, "status", status))
    return None


_WORKER_TRACEBACK = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s+Original Traceback")


def one_line(message: Any) -> str:
    """``message`` as a single line: newlines folded, surrounding quotes of a ``KeyError`` removed, and a
    DataLoader worker's traceback reduced to the original error message."""
    text = str(message)
    if isinstance(message, KeyError) and len(message.args) == 1:
        text = str(message.args[0])
    if _WORKER_TRACEBACK.match(text):
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split()).strip()


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether ``--debug`` is in ``argv`` (default ``sys.argv``) or ``RESMLP_DEBUG`` is set to a true value."""
    argv = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` to ``parser`` so ``--help`` lists it (``run_main`` acts on it before parsing)."""
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the full traceback of errors")


def print_error(prog: str | None, message: Any) -> None:
    """Write ``<prog>: error: <message>`` as one line on stderr."""
    prefix = f"{prog}: error: " if prog else "error: "
    print(prefix + one_line(message), file=sys.stderr, flush=True)


def run_main(main: Callable[..., Any], argv: Sequence[str] | None = None, *, prog: str | None = None) -> Any:
    """Call ``main(argv)``; user errors become one line on stderr and ``SystemExit(status)``.

    When called with ``argv=None`` from ``if __name__ == "__main__"``, the process exits with ``main``'s return
    value (an int status, 0 for None). Called with an explicit ``argv`` (tests), a successful ``main``'s return
    value is returned. ``argv`` reaches ``main`` unchanged: its parser should define ``--debug``
    (``add_debug_flag``) so that the flag parses and shows in ``--help``.
    """
    as_script = argv is None
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    try:
        result = main(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print_error(prog, "interrupted (Ctrl-C)")
        raise SystemExit(130) from None
    except Exception as err:
        status = user_error_status(err)
        if status is None or debug:
            raise
        if not (getattr(err, "main_process_only", False) and _rank() != 0):
            print_error(prog, err)
        raise SystemExit(status) from None
    if as_script:
        raise SystemExit(result if isinstance(result, int) else 0)
    return result


def command(prog: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of ``run_main``: ``@command("vision.evaluate") def main(argv=None): ...``."""

    def decorate(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def wrapper(argv: Sequence[str] | None = None) -> Any:
            return run_main(main, argv, prog=prog)

        wrapper.__wrapped__ = main
        return wrapper

    return decorate


__all__ = [
    "DEBUG_ENV",
    "DEBUG_FLAG",
    "UsageError",
    "UserError",
    "add_debug_flag",
    "command",
    "debug_requested",
    "one_line",
    "print_error",
    "register_user_error",
    "run_main",
    "user_error_status",
]
