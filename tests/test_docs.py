"""The README and docs/ hold what the code does: links resolve, every command and recipe they
name exists, and the performance page is the one ``python -m asc_kd.bench report`` writes."""

from __future__ import annotations

import importlib.util
import itertools
import re
import shlex
from pathlib import Path

import pytest
from fit_helpers import REPO

from asc_kd.__main__ import COMMANDS
from asc_kd.recipes import resolve_recipe

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "asc_kd" / "recipes" / "README.md"]


def _text(page: Path) -> str:
    return page.read_text()


def _expand(word: str) -> list[str]:
    """``teachers/{passt,ast}`` -> ``teachers/passt``, ``teachers/ast`` (as bash expands it)."""
    parts = re.split(r"\{([^{}]*)\}", word)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text(page)):
        if not re.match(r"\w+://", target):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_exists(page: Path) -> None:
    text = _text(page)
    for command in re.findall(r"\basc-kd ([a-z][\w.]*)", text):
        assert command in COMMANDS, f"{page.name}: asc-kd {command}"
    for module in re.findall(r"python -m (asc_kd(?:\.[a-z_]+)*)\b", text):
        assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_recipe_named_exists(page: Path) -> None:
    text = _text(page).replace("\\\n", " ")
    for _option, value in re.findall(
        r"--(config|recipe|teachers|students|student-config)[ =]([^\s`|]+)", text
    ):
        for name in _expand(value):
            own_file = name.endswith((".yaml", ".yml")) and not name.startswith("asc_kd/")
            if name.isupper() or name.endswith((".ckpt", ".pt")) or "..." in name or own_file:
                continue  # a placeholder, a checkpoint, your own file
            resolve_recipe(name)  # a shipped recipe's name or a path in the repository


def _pipeline_commands(text: str) -> list[list[str]]:
    """The words of every ``python -m asc_kd.pipeline`` / ``asc-kd pipeline`` command in ``text``,
    up to its code span's end, its line's end or a ``#`` comment, braces expanded."""
    commands = []
    for tail in re.findall(r"(?:python -m asc_kd\.pipeline|asc-kd pipeline)\b([^`\n#|]*)", text):
        commands.append([word for token in shlex.split(tail) for word in _expand(token)])
    return commands


def test_the_pipeline_commands_parse() -> None:
    """Every pipeline command the pages write parses with the pipeline's own parser (a data
    option spelled ``--root`` instead of ``--data.root``, say, does not), its data options before
    ``--``."""
    from asc_kd.data.options import given_data_options
    from asc_kd.pipeline import parse_args

    commands = [words for page in PAGES for words in _pipeline_commands(_text(page).replace("\\\n", " "))]
    assert any("--data.root" in words for words in commands)  # the pages' commands were found
    for words in commands:
        if "--help" not in words:
            assert not given_data_options(parse_args(words).fit_args), words  # argparse exits on --root


def test_the_performance_page_is_the_reports() -> None:
    page = (REPO / "docs" / "performance.md").read_text().splitlines()
    assert page[0] == "# Performance"
    assert page[2].startswith("Written by `python -m asc_kd.bench report` on ")
    assert any(line.startswith("| CPU | ") for line in page) and any(
        line.startswith("| versions | ") for line in page
    )
