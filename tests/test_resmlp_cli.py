"""resmlp.cli: user errors are one line with status 2 (usage) or 1 (failure); bugs and --debug keep tracebacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from resmlp import CheckpointError
from resmlp.cli import UsageError, UserError, command, one_line, run_main


def _raising(error: BaseException):
    def main(argv):
        raise error

    return main


def test_usage_error_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(_raising(UsageError("--size must be positive,\n got -1")), [], prog="tool")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "tool: error: --size must be positive, got -1\n"


def test_failure_and_registered_types_exit_1(capsys):
    for error in (UserError("data folder not found: /x; pass a folder"), CheckpointError("cannot read model.pth")):
        with pytest.raises(SystemExit) as exit_info:
            run_main(_raising(error), [], prog="tool")
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tool: error: ") and "Traceback" not in err


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_main(_raising(ZeroDivisionError("bug")), [], prog="tool")


def test_debug_flag_and_env_show_the_traceback(monkeypatch):
    with pytest.raises(UserError):
        run_main(_raising(UserError("x")), ["--debug"], prog="tool")
    monkeypatch.setenv("RESMLP_DEBUG", "1")
    with pytest.raises(UserError):
        run_main(_raising(UserError("x")), [], prog="tool")


def test_instance_status_and_keyboard_interrupt(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(_raising(UserError("interrupted; resume with ...", status=130)), [], prog="tool")
    assert exit_info.value.code == 130
    with pytest.raises(SystemExit) as exit_info:
        run_main(_raising(KeyboardInterrupt()), [], prog="tool")
    assert exit_info.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


def test_decorator_returns_the_result_in_process():
    @command("tool")
    def main(argv=None):
        return {"argv": argv}

    assert main(["a"]) == {"argv": ["a"]}
    assert main.__wrapped__(["b"]) == {"argv": ["b"]}


def test_one_line_unquotes_key_errors():
    assert one_line(KeyError("no entry 'x'")) == "no entry 'x'"


def test_as_a_script_the_process_exits_with_one_line(tmp_path):
    script = tmp_path / "tool.py"
    script.write_text(
        textwrap.dedent(
            """
            from resmlp.cli import UserError, run_main

            def main(argv):
                raise UserError("checkpoint not found: x.pth; pass an existing file")

            run_main(main, prog="tool")
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "tool: error: checkpoint not found: x.pth; pass an existing file\n"
