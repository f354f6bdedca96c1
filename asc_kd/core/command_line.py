"""The command line of every ``python -m asc_kd.<command>``: one parser style, and one wrapper
that ends a command on a user error with one line (``asc_kd.core.errors``) instead of a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from asc_kd.core.allocator import keep_freed_memory
from asc_kd.core.errors import error_line, user_error
from asc_kd.core.noise import silence


def debugging(argv: list[str] | None = None) -> bool:
    """Whether full tracebacks were asked for (``ASC_KD_DEBUG=1`` or ``--debug``)."""
    args = sys.argv[1:] if argv is None else argv
    return os.environ.get("ASC_KD_DEBUG", "") not in ("", "0") or "--debug" in args


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's ``main``; a user error becomes one line on stderr and exit code 1."""
    silence()
    keep_freed_memory()
    debug = debugging(argv)
    if argv is None:
        argv = sys.argv[1:]
    argv = [a for a in argv if a != "--debug"]
    try:
        return main(argv)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        cause = user_error(err)
        if cause is None or debug:
            raise
        print(f"error: {error_line(cause)}", file=sys.stderr)
        print("(ASC_KD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default once: texts that explain their default (``(default:
    the model's own)``) keep their words; flags (off unless given), required options and
    positionals show none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.required or (action.nargs == 0 and action.default is False):
            return text
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose "unrecognized arguments" error names the fit's spelling of a data
    option typed without ``data.`` (``--root`` -> ``--data.root``), for the commands that take the
    fit's ``--data.*`` options."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            fit_names = []
            for arg in message.split(":", 1)[1].split():
                name = "--data." + arg.split("=", 1)[0].removeprefix("--").replace("-", "_")
                if arg.startswith("--") and name in self._option_string_actions:
                    fit_names.append(name)
            if fit_names:
                message += f" (the data options are the fit's: {', '.join(fit_names)})"
        super().error(message)


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of every ``python -m asc_kd.<command>``: defaults in ``--help``, no
    abbreviated options (a typo must not silently pick another option)."""
    return CommandParser(
        prog=prog, description=description, formatter_class=HelpFormatter, allow_abbrev=False
    )


def given_on_command_line(args: list[str], option: str) -> bool:
    """Whether ``option`` (``--a.b``) was typed in ``args``, as ``--a.b value`` or ``--a.b=value``."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)
