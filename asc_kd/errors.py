"""User errors end a command with one clear line; programming errors keep their traceback.

A user error is a problem with what the user gave: a bad dataset, a bad config value, an
unknown model or front-end name, a missing or unreadable file, a model over the limits. Its
message already names the file or field, what was found and what was expected, so a chained
traceback of 20-118 lines only buries it. ``ASC_KD_DEBUG=1`` (or ``--debug``) shows the full
traceback anyway.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Base of the errors a user can act on from the message alone."""


class ConfigError(UserError, ValueError):
    """A configuration value is not one asc_kd accepts; the message names it and the choices."""


#: Built-in errors about files the user named.
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def user_error(error: BaseException) -> BaseException | None:
    """The user error behind ``error`` (itself, or a cause or context it was raised from)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (UserError, *FILE_ERRORS)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def debugging(argv: list[str] | None = None) -> bool:
    """Whether full tracebacks were asked for (``ASC_KD_DEBUG=1`` or ``--debug``)."""
    args = sys.argv[1:] if argv is None else argv
    return os.environ.get("ASC_KD_DEBUG", "") not in ("", "0") or "--debug" in args


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's ``main``; a user error becomes one line on stderr and exit code 1."""
    from asc_kd.allocator import keep_freed_memory
    from asc_kd.noise import silence

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
        message = str(cause) if not isinstance(cause, OSError) or not cause.filename else _file_message(cause)
        print(f"error: {message}", file=sys.stderr)
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


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of every ``python -m asc_kd.<command>``: defaults in ``--help``, no
    abbreviated options (a typo must not silently pick another option)."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter, allow_abbrev=False
    )


def given_on_command_line(args: list[str], option: str) -> bool:
    """Whether ``option`` (``--a.b``) was typed in ``args``, as ``--a.b value`` or ``--a.b=value``."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)


def _file_message(error: OSError) -> str:
    reason = {
        FileNotFoundError: "not found",
        IsADirectoryError: "is a directory, not a file",
        NotADirectoryError: "is not a directory",
        PermissionError: "permission denied",
    }.get(type(error), error.strerror or str(error))
    return f"{error.filename}: {reason}"
