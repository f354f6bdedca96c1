"""User errors end a command with one clear line; programming errors keep their traceback.

A user error is a problem with what the user gave: a bad dataset, a bad config value, an
unknown model or front-end name, a missing or unreadable file, a model over the limits. Its
message already names the file or field, what was found and what was expected, so a chained
traceback of 20-118 lines only buries it. ``ASC_KD_DEBUG=1`` (or ``--debug``) shows the full
traceback anyway. ``asc_kd.core.command_line`` turns them into that line.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors a user can act on from the message alone."""


class ConfigError(UserError, ValueError):
    """A configuration value is not one asc_kd accepts; the message names it and the choices."""


class UsageError(ConfigError):
    """A command line the command cannot read (an unknown option, a wrong value typed on it): its
    one line ends the command with exit code 2, as argparse's errors do."""


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


def error_line(error: BaseException) -> str:
    """The one line that tells a user error: a file error names the file and what is wrong with it."""
    if not isinstance(error, OSError) or not error.filename:
        return str(error)
    reason = {
        FileNotFoundError: "not found",
        IsADirectoryError: "is a directory, not a file",
        NotADirectoryError: "is not a directory",
        PermissionError: "permission denied",
    }.get(type(error), error.strerror or str(error))
    return f"{error.filename}: {reason}"
