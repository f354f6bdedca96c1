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
from asc_kd.core.errors import ConfigError
from asc_kd.recipes import resolve_recipe

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "asc_kd" / "recipes" / "README.md"]


def _text(page: Path) -> str:
    return page.read_text()


def _expand(word: str) -> list[str]:
    """``teachers/{passt,ast}`` -> ``teachers/passt``, ``teachers/ast`` (as bash expands it)."""
    parts = re.split(r"\{([^{}]*)\}", word)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _links(page: Path) -> list[str]:
    """The relative link targets of ``page`` (web addresses left out)."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text(page))
    return [target for target in targets if not re.match(r"\w+://", target)]


def test_every_link_resolves() -> None:
    links = [(page, target) for page in PAGES for target in _links(page)]
    assert links  # the pattern finds the pages' links: one that found none would check nothing
    broken = [
        f"{page.relative_to(REPO)} links to {target}"
        for page, target in links
        if not (page.parent / target).exists()
    ]
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_exists(page: Path) -> None:
    text = _text(page)
    commands = re.findall(r"\basc-kd ([a-z][\w.]*)", text)
    modules = re.findall(r"python -m (asc_kd(?:\.[a-z_]+)*)\b", text)
    assert commands or modules  # every page names a command; a pattern that found none checks nothing
    for command in commands:
        assert command in COMMANDS, f"{page.name}: asc-kd {command}"
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module}"


def _recipes_named(page: Path) -> list[str]:
    """The shipped recipes ``page`` names after ``--config``, ``--recipe``, ``--teachers``,
    ``--students`` or ``--student-config``: placeholders, checkpoints and the reader's own files
    left out."""
    text = _text(page).replace("\\\n", " ")
    names = []
    for _option, value in re.findall(
        r"--(config|recipe|teachers|students|student-config)[ =]([^\s`|]+)", text
    ):
        for name in _expand(value):
            own_file = name.endswith((".yaml", ".yml")) and not name.startswith("asc_kd/")
            if not (name.isupper() or name.endswith((".ckpt", ".pt")) or "..." in name or own_file):
                names.append(name)
    return names


def test_every_recipe_named_exists() -> None:
    named = [(page, name) for page in PAGES for name in _recipes_named(page)]
    assert named  # the pattern finds the recipes the pages name: one that found none would check nothing
    missing = []
    for page, name in named:
        try:
            resolve_recipe(name)  # a shipped recipe's name or a path in the repository
        except ConfigError as error:
            missing.append(f"{page.relative_to(REPO)}: {error}")
    assert missing == []


def _pipeline_commands(text: str) -> list[list[str]]:
    """The words of every ``python -m asc_kd.pipeline`` / ``asc-kd pipeline`` command in ``text``,
    up to its code span's end, its line's end or a ``#`` comment, braces expanded."""
    commands = []
    for tail in re.findall(r"(?:python -m asc_kd\.pipeline|asc-kd pipeline)\b([^`\n#|]*)", text):
        words = [word for token in shlex.split(tail) for word in _expand(token)]
        commands.append([word for word in words if word != "..."])  # "...": options left out
    return commands


def test_the_pipeline_commands_parse() -> None:
    """Every pipeline command the pages write parses with the pipeline's own parser (a data
    option spelled ``--root`` instead of ``--data.root``, say, does not), its data options before
    ``--``."""
    from asc_kd.pipeline import parse_args

    commands = [words for page in PAGES for words in _pipeline_commands(_text(page).replace("\\\n", " "))]
    assert any("--data.root" in words for words in commands)  # the pages' commands were found
    for words in commands:
        if "--help" not in words:
            fit_args = parse_args(words).fit_args  # argparse exits on --root
            assert not any(arg.startswith("--data.") for arg in fit_args), words


def test_the_performance_page_is_the_reports() -> None:
    """The page has the report's preamble and its machine sections, each with the machine's table
    and dated rows of the report's commands."""
    import re

    from asc_kd.benchmarks.report import REPORT, machine_sections

    text = (REPO / "docs" / "performance.md").read_text()
    page = text.splitlines()
    assert page[0] == "# Performance"
    assert page[2].startswith("Written by `python -m asc_kd.bench report`, one section per machine")
    sections = machine_sections(text)
    assert sections
    commands = {f"`{command}`" for command, *_ in REPORT.values()}
    for key, lines in sections.items():
        cpu = next(line for line in lines if line.startswith("| CPU | "))
        assert key.startswith(cpu.removeprefix("| CPU | ").removesuffix(" |")), key
        assert any(line.startswith("| versions | ") for line in lines)
        rows = [line for line in lines if line.startswith("| `")]
        assert rows and all(row.split(" | ")[0].removeprefix("| ") in commands for row in rows)
        assert all(re.search(r" \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|$", row) for row in rows), key
