"""The command line of every ``python -m asc_kd.<command>``: one parser style, and one wrapper
that ends a command on a user error with one line (``asc_kd.core.errors``) instead of a
traceback.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NoReturn

from asc_kd.core.allocator import keep_freed_memory
from asc_kd.core.errors import UsageError, error_line, user_error
from asc_kd.core.noise import silence

#: While a command runs under another name than ``python -m asc_kd.<command>`` (``asc-kd fit``):
#: (its ``python -m`` name, the name the user typed).
_TYPED_AS: ContextVar[tuple[str, str] | None] = ContextVar("typed_as", default=None)


@contextmanager
def typed_as(name: str, typed: str) -> Iterator[None]:
    """Within: the parser of the command ``name`` (``python -m asc_kd.fit``) calls itself
    ``typed`` (``asc-kd fit``), in its usage, help and errors: the name the user typed."""
    token = _TYPED_AS.set((name, typed))
    try:
        yield
    finally:
        _TYPED_AS.reset(token)


def program_name(name: str) -> str:
    """``name`` (``python -m asc_kd.fit``), or the name the user typed for that command."""
    typed = _TYPED_AS.get()
    return typed[1] if typed is not None and typed[0] == name else name


def debugging(argv: list[str] | None = None) -> bool:
    """Whether full tracebacks were asked for (``ASC_KD_DEBUG=1`` or ``--debug``)."""
    args = sys.argv[1:] if argv is None else argv
    return os.environ.get("ASC_KD_DEBUG", "") not in ("", "0") or "--debug" in args


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's ``main``; a user error becomes one line on stderr and exit code 1 (2 for a
    command line the command cannot read, as argparse's), a reader that stopped reading
    (``asc-kd recipes list | head -1``) ends it quietly."""
    silence()
    keep_freed_memory()
    debug = debugging(argv)
    if argv is None:
        argv = sys.argv[1:]
    argv = [a for a in argv if a != "--debug"]
    try:
        try:
            return main(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be told apart
    except BrokenPipeError:
        return stdout_closed()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        cause = user_error(err)
        if cause is None or debug:
            raise
        print(f"error: {error_line(cause)}", file=sys.stderr)
        if isinstance(cause, UsageError):
            return 2
        print("(ASC_KD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def stdout_closed() -> int:
    """The exit code of a command whose reader left (``| head -1``): 1, with no traceback and no
    second ``BrokenPipeError`` when Python flushes stdout at exit (Python's "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
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
    """An argparse parser that answers a command line it cannot read in one line and exit code 2,
    without the usage (``--help`` shows it): an unknown option or a misspelt choice with the
    closest valid spelling, in the fit's words (``error: command line: unknown option --epochs;
    did you mean --max-epochs?``), a data option typed without ``data.`` (``--root``) with the
    fit's spelling (``--data.root``)."""

    _given: tuple[str, ...] = ()  # the arguments of the parse under way

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = tuple(sys.argv[1:] if args is None else args)
        try:
            return super().parse_known_args(args, namespace)
        finally:
            self._given = ()

    def error(self, message: str) -> NoReturn:
        """Exit 2 with one line. An unknown option is named first, whatever argparse found
        wrong after it (a required argument missing, a value taken for a positional)."""
        unrecognized = message.startswith("unrecognized arguments:")
        given = message.split(":", 1)[1].split() if unrecognized else list(self._given)
        if unknown := self._unknown_options(given[: given.index("--")] if "--" in given else given):
            message = unknown
        elif choice := re.match(r"argument (.+?): invalid choice: ('.*'|\".*\") \(choose from", message):
            message = self._unknown_choice(choice.group(1), ast.literal_eval(choice.group(2))) or message
        self.exit(2, f"error: command line: {message}\n")

    def _unknown_options(self, arguments: list[str]) -> str | None:
        """``unknown option --epochs; did you mean --max-epochs?``, once for each option in
        ``arguments`` that neither this parser nor its subcommands take."""
        valid = _option_strings(self)
        sentences, data_options = [], False
        for argument in arguments:
            name = argument.split("=", 1)[0]
            if not re.match(r"--?[A-Za-z]", name) or name in valid:
                continue
            fit_name = "--data." + name.removeprefix("--").replace("-", "_")
            if name.startswith("--") and fit_name in valid:
                close, data_options = [fit_name], True
            else:
                close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"`{self.prog} --help` lists the options"
            sentences.append(f"unknown option {name}; {hint}")
        if not sentences:
            return None
        return " ".join(sentences) + (" (the data options are the fit's)" if data_options else "")

    def _unknown_choice(self, name: str, value: str) -> str | None:
        """``--executor: unknown choice 'lokal'; did you mean local?`` (a positional's: ``unknown
        topic 'trainig'; ...``, a subcommand's: ``unknown command 'lsit'; ...``)."""
        for action in self._actions:
            names = ["/".join(action.option_strings), action.metavar, action.dest]
            if action.choices is None or name not in names:
                continue
            if action.option_strings:
                return unknown_choice(name, value, choices_of(action))
            what = "command" if isinstance(action, argparse._SubParsersAction) else name.lower()
            return f"unknown {what} {value!r}; {spelling_hint(value, choices_of(action))}"
        return None


def spelling_hint(value: str, valid: Sequence[str]) -> str:
    """``did you mean local?`` (the closest of ``valid`` to ``value``), else ``choose from ...``."""
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"choose from {', '.join(valid)}"


def unknown_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``--executor: unknown choice 'lokal'; did you mean local?``: the one line for a value
    that is none of an option's ``choices``, in every command (the fit's too)."""
    return f"{name}: unknown choice {value!r}; {spelling_hint(value, choices)}"


def choices_of(action: argparse.Action) -> list[str]:
    """An option's valid values: argparse's ``choices``, or the ones jsonargparse shows as its
    metavar (``{auto,tau22,tau20,folders}`` for a ``Literal``, ``{true,false}`` for a bool)."""
    if action.choices is not None:
        return [str(choice) for choice in action.choices]
    shown = re.fullmatch(r"\{([^{}]+)\}", action.metavar) if isinstance(action.metavar, str) else None
    return shown.group(1).split(",") if shown else []


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option ``parser`` and its subcommands take (an unknown option of a subcommand is
    reported by the command's parser)."""
    found = list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [o for o in _option_strings(sub) if o not in found]
    return found


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of every ``python -m asc_kd.<command>`` (``prog``; the name the user
    typed, ``asc-kd <command>``, where that differs): defaults in ``--help``, no abbreviated
    options (a typo must not silently pick another option), one-line errors."""
    return CommandParser(
        prog=program_name(prog), description=description, formatter_class=HelpFormatter, allow_abbrev=False
    )


def given_on_command_line(args: list[str], option: str) -> bool:
    """Whether ``option`` (``--a.b``) was typed in ``args``, as ``--a.b value`` or ``--a.b=value``."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)
