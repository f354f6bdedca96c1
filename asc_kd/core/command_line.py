"""The command line of every ``python -m asc_kd.<command>``: one parser style, and one wrapper
that ends a command on a user error with one line (``asc_kd.core.errors``) instead of a
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

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


class CommandHelpFormatter(DefaultHelpFormatter):
    """``--help`` shows every option's default once: texts that explain their default (``(default:
    the model's own)``) keep their words; flags (off unless given), required options, positionals
    and jsonargparse's own ``--config``/``--print_config`` show none. Texts taken from docstrings
    lose their reST quotes (````root````) on the terminal."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").replace("``", "")
        if (
            "default" in text
            or action.required
            or action.default is argparse.SUPPRESS
            or (action.nargs == 0 and action.default is False)
            or (not action.option_strings and action.nargs not in ("?", "*"))
            or isinstance(action, ActionConfigFile | argparse._HelpAction)
        ):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(ArgumentParser):
    """The jsonargparse parser of every command: no abbreviated options (a typo must not silently
    pick another option), ``--config FILE`` and ``--print_config``, and a command line it cannot
    read answered in one line and exit code 2, without the usage (``--help`` shows it).

    The line is made in ``error``, jsonargparse's hook for every parse error, from the command
    line and the parser's own actions, not from the words of jsonargparse's message: an unknown
    option or a misspelt choice with the closest valid spelling, in the fit's words (``error:
    command line: unknown option --epochs; did you mean --max-epochs?``), a data option typed
    without ``data.`` (``--root``) with the fit's spelling (``--data.root``). Any other error is
    jsonargparse's message on one line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", CommandHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("env_prefix", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Exit 2 with one line. An unknown option is named first, whatever jsonargparse found
        wrong after it (a required argument missing, a value taken for a positional)."""
        given = list(getattr(self, "args", None) or [])
        given = given[: given.index("--")] if "--" in given else given
        line = unknown_options(self, given) or self._bad_value(given) or " ".join(message.split())
        self.exit(2, f"error: command line: {line}\n")

    def _bad_value(self, arguments: list[str]) -> str | None:
        """``--executor: unknown choice 'lokal'; did you mean local?`` for the first value in
        ``arguments`` that is none of its option's choices (a positional's: ``unknown topic
        'trainig'; ...``, a subcommand's: ``unknown command 'lsit'; ...``), or ``--seeds: 'x'
        is not valid (expected int)`` for one not of its option's type."""
        parser: argparse.ArgumentParser = self
        positionals = [a for a in parser._actions if not a.option_strings and a.choices]
        i = 0
        while i < len(arguments):
            argument = arguments[i]
            if argument.startswith("-"):
                name, equals, value = argument.partition("=")
                action = parser._option_string_actions.get(name)
                if action is None or action.nargs == 0:
                    i += 1
                    continue
                values = [value] if equals else _values_after(arguments, i, action)
                choices = choices_of(action)
                for value in values:
                    if choices and value not in choices:
                        return unknown_choice(name, value, choices)
                    if not choices and (expected := expected_type(action, value)):
                        return f"{name}: {value!r} is not valid (expected {expected})"
                i += 1 if equals else 1 + len(values)
                continue
            for action in positionals:
                choices = choices_of(action)
                if argument not in choices:
                    sub = isinstance(action, argparse._SubParsersAction)
                    what = "command" if sub else str(action.metavar or action.dest).lower()
                    return f"unknown {what} {argument!r}; {spelling_hint(argument, choices)}"
                if isinstance(action, argparse._SubParsersAction):  # the rest is the subcommand's
                    parser = action.choices[argument]
                    positionals = [a for a in parser._actions if not a.option_strings and a.choices]
                    break
            i += 1
        return None


def unknown_options(parser: argparse.ArgumentParser, arguments: list[str]) -> str | None:
    """``unknown option --epochs; did you mean --max-epochs?``, once for each option in
    ``arguments`` that neither this parser nor its subcommands take."""
    valid = _option_strings(parser)
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
        hint = f"did you mean {close[0]}?" if close else f"`{parser.prog} --help` lists the options"
        sentences.append(f"unknown option {name}; {hint}")
    if not sentences:
        return None
    return " ".join(sentences) + (" (the data options are the fit's)" if data_options else "")


def _values_after(arguments: list[str], i: int, action: argparse.Action) -> list[str]:
    """The values an option at ``arguments[i]`` takes from the words after it."""
    following = list(itertools.takewhile(lambda a: not a.startswith("--"), arguments[i + 1 :]))
    if isinstance(action.nargs, int):
        return following[: action.nargs]
    return following if action.nargs in ("+", "*") else following[:1]


def spelling_hint(value: str, valid: Sequence[str]) -> str:
    """``did you mean local?`` (the closest of ``valid`` to ``value``), else ``choose from ...``."""
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"choose from {', '.join(valid)}"


def unknown_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``--executor: unknown choice 'lokal'; did you mean local?``: the one line for a value
    that is none of an option's ``choices``, in every command (the fit's too)."""
    return f"{name}: unknown choice {value!r}; {spelling_hint(value, choices)}"


def choices_of(action: argparse.Action) -> list[str]:
    """An option's valid values: argparse's ``choices``, or those of its type: a ``Literal``'s
    values, ``true``/``false`` for a bool (jsonargparse's spellings)."""
    if action.choices is not None:
        return [str(choice) for choice in action.choices]
    typehint = getattr(action, "_typehint", None)
    if typehint is bool:
        return ["true", "false"]
    if typing.get_origin(typehint) is typing.Literal:
        return [str(value) for value in typing.get_args(typehint)]
    shown = re.fullmatch(r"\{([^{}]+)\}", action.metavar) if isinstance(action.metavar, str) else None
    return shown.group(1).split(",") if shown else []


def expected_type(action: argparse.Action, value: Any, typed: bool = True) -> str | None:
    """The types an option takes (``int``) when ``value`` is none of them; None when it is one.
    Checked by a parser of that one option (a value typed on the command line is read as YAML,
    as jsonargparse reads it)."""
    typehint = getattr(action, "_typehint", None)
    if typehint is None:
        return None
    probe = ArgumentParser(exit_on_error=False)
    probe.add_argument("--value", type=typehint)
    try:
        if typed:
            probe.parse_args([f"--value={value}"])
        else:
            probe.parse_object({"value": value})
    except (argparse.ArgumentError, TypeError, ValueError):
        members = (
            typing.get_args(typehint)
            if typing.get_origin(typehint) in (typing.Union, types.UnionType)
            else (typehint,)
        )
        names = [getattr(m, "__name__", str(m)) for m in members if m is not type(None)]
        return " or ".join(dict.fromkeys(names)) or "another value"
    return None


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option ``parser`` and its subcommands take (an unknown option of a subcommand is
    reported by the command's parser)."""
    found = list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [o for o in _option_strings(sub) if o not in found]
    return found


def cli_parser(prog: str, description: str) -> CommandParser:
    """The argument parser of every ``python -m asc_kd.<command>`` (``prog``; the name the user
    typed, ``asc-kd <command>``, where that differs): defaults in ``--help``, ``--config FILE``
    (what ``--print_config`` prints, read back), no abbreviated options, one-line errors."""
    parser = CommandParser(prog=program_name(prog), description=description)
    parser.add_argument("--config", action=ActionConfigFile, help=_CONFIG_HELP)
    return parser


_CONFIG_HELP = "options from a YAML file, as --print_config writes them (later options win)"


def subcommand_parser(description: str) -> CommandParser:
    """The parser of one subcommand (``asc-kd recipes show``): the command's conventions, its own
    ``--config`` and ``--print_config`` among them."""
    parser = CommandParser(description=description)
    parser.add_argument("--config", action=ActionConfigFile, help=_CONFIG_HELP)
    return parser


def given_on_command_line(args: list[str], option: str) -> bool:
    """Whether ``option`` (``--a.b``) was typed in ``args``, as ``--a.b value`` or ``--a.b=value``."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)
