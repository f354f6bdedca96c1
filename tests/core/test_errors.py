"""User errors end a command with one clear line and exit 1; ``ASC_KD_DEBUG`` brings the
traceback back; programming errors keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import REPO

from asc_kd.core.command_line import run_command
from asc_kd.core.errors import ConfigError, user_error
from asc_kd.data.spec import DatasetError
from asc_kd.recipes import RECIPES


def _fails_with(error: BaseException):
    def main(argv):
        raise error

    return main


def test_a_user_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(_fails_with(DatasetError("data/x/meta.csv: missing column(s) identifier")), []) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: data/x/meta.csv: missing column(s) identifier",
        "(ASC_KD_DEBUG=1 shows the traceback)",
    ]


def test_a_user_error_behind_a_library_error_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        try:
            raise ConfigError("unknown model 'system9'")
        except ConfigError as inner:
            raise ValueError("Does not validate against any of the Union subtypes") from inner
    except ValueError as wrapped:
        outer = wrapped
    assert str(user_error(outer)) == "unknown model 'system9'"
    assert run_command(_fails_with(outer), []) == 1
    assert capsys.readouterr().err.startswith("error: unknown model 'system9'\n")


def test_missing_files_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    error = FileNotFoundError(2, "No such file or directory", "runs/last.ckpt")
    assert run_command(_fails_with(error), []) == 1
    assert capsys.readouterr().err.startswith("error: runs/last.ckpt: not found\n")


def test_programming_errors_keep_their_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        run_command(_fails_with(ZeroDivisionError("a bug")), [])


@pytest.mark.parametrize("how", ["environment", "flag"])
def test_debug_shows_the_traceback(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = []
    if how == "environment":
        monkeypatch.setenv("ASC_KD_DEBUG", "1")
    else:
        argv = ["--debug"]
    seen = []

    def main(args):
        seen.append(args)
        raise DatasetError("broken")

    with pytest.raises(DatasetError):
        run_command(main, argv)
    assert seen == [[]]  # --debug is not passed on


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=environment
    )


def test_commands_end_user_errors_in_one_line(tiny_root: Path, tmp_path: Path, capsys) -> None:
    from asc_kd.check import main as check
    from asc_kd.quantize import main as quantize

    assert run_command(quantize, [str(tmp_path / "missing.ckpt"), "--data.root", str(tiny_root)]) == 1
    assert capsys.readouterr().err.startswith(f"error: checkpoint {tmp_path / 'missing.ckpt'} not found\n")
    nothing = ["--data.root", str(tmp_path / "nothing"), "--data.layout", "tau22"]
    assert run_command(check, nothing) == 1
    assert capsys.readouterr().err.startswith(
        f"error: dataset root {tmp_path / 'nothing'} is missing or empty;"
    )


@pytest.mark.slow
def test_fit_ends_a_user_error_in_one_line_and_debug_shows_the_traceback(
    tiny_root: Path, tmp_path: Path
) -> None:
    """The error happens inside LightningCLI's instantiation, under jsonargparse's own error."""
    args = [
        "asc_kd.fit",
        *("--config", str(RECIPES / "base.yaml"), "--config", str(RECIPES / "teachers/passt.yaml")),
        *("--data.root", str(tiny_root), "--trainer.logger", "false"),
        *("--trainer.default_root_dir", str(tmp_path / "out")),
    ]
    done = _run(*args)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "passt-s-f128-p16-s10-ap.476-swa.pt not found" in line
    assert "--model.init_args.model_kwargs.checkpoint null" in line  # how to go without weights
    debug = _run(*args, "--model.init_args.model", "system9", env={"ASC_KD_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "unknown model 'system9'" in debug.stderr
