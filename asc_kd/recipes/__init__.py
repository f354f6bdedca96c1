"""The shipped recipes: YAML configs that travel with the package, named by their path here.

A recipe's name is its path below this folder without ``.yaml``: ``base``,
``students/system1``, ``teachers/passt``, ``demo/synthetic``. Every command that takes a recipe
takes a name (optionally written ``recipe:students/system1``) or a YAML file's path; an existing
file wins, so a copied and edited recipe (``python -m asc_kd.recipes copy DIR``) is used as it is.
Because the files are package data, a wheel installed without the repository, a SLURM job started
in another folder and a Docker image all find them.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from asc_kd.core.errors import ConfigError

#: The folder of the shipped recipes (inside the installed package).
RECIPES = Path(__file__).resolve().parent
#: Written before a name to say it is a shipped recipe, never a file.
PREFIX = "recipe:"


def list_recipes() -> list[str]:
    """Every shipped recipe's name, sorted."""
    return sorted(str(path.relative_to(RECIPES).with_suffix("")) for path in RECIPES.rglob("*.yaml"))


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe's file: an existing path as it is, else the shipped recipe of that name.

    ``students/system1``, ``students/system1.yaml`` and ``recipe:students/system1`` name the same
    shipped file. Raises ``ConfigError`` naming the closest names when neither exists.
    """
    text = str(name_or_path)
    if not text.startswith(PREFIX) and Path(text).is_file():
        return Path(text)
    name = text.removeprefix(PREFIX).removesuffix(".yaml")
    path = RECIPES / f"{name}.yaml"
    if name and path.is_file() and path.resolve().is_relative_to(RECIPES):
        return path
    names = list_recipes()
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise ConfigError(
        f"no recipe {text!r}: not a file, and no shipped recipe has that name. "
        f"{hint}(`python -m asc_kd.recipes list` lists them)"
    )


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The task arguments of a recipe YAML (a teacher's, for its logits or its complexity): model
    and front-end, the data's rate and window, no optimiser."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"teacher recipe {path} not found")
    config = yaml.safe_load(path.read_text()) or {}
    init = dict((config.get("model") or {}).get("init_args") or {})
    data = config.get("data") or {}
    if "model" not in init:
        raise ConfigError(f"{path}: no model.init_args.model; it is not a task recipe")
    for key in ("frontend", "frontend_kwargs"):
        if key in data:  # as a fit would, rather than read the recipe on the default front-end
            raise ConfigError(
                f"{path}: data.{key} is an option of the task: move it to model.init_args.{key}"
            )
    arguments = {
        key: init[key] for key in ("model", "model_kwargs", "frontend", "frontend_kwargs") if key in init
    }
    arguments.update({key: data[key] for key in ("sample_rate", "segment_seconds") if key in data})
    return arguments


def recipe_config(recipe: Path) -> dict[str, Any]:
    """A recipe file's top-level mapping (empty for a missing or non-mapping file)."""
    config = yaml.safe_load(recipe.read_text()) if recipe.is_file() else None
    return config if isinstance(config, dict) else {}


def recipe_value(recipes: Iterable[Path], key: str) -> tuple[Any, Path] | None:
    """The value the last of ``recipes`` that sets ``key`` (dotted: ``data.batch_size``; found
    under ``init_args`` too, as a fit reads it) gives it, and that recipe; None when none sets it."""
    found = None
    for recipe in recipes:
        node: Any = recipe_config(recipe)
        for part in key.split("."):
            if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
                node = node["init_args"]
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            found = (node, recipe)
    return found


_MISSING = object()


def expand_config_args(args: list[str]) -> list[str]:
    """``args`` with every ``--config NAME`` (or ``--config=NAME``) of a shipped recipe as its path.

    Paths to existing files and inline YAML are left as they are.
    """
    out: list[str] = []
    expect = False
    for arg in args:
        if expect:
            out.append(_config_value(arg))
            expect = False
        elif arg == "--config":
            out.append(arg)
            expect = True
        elif arg.startswith("--config="):
            out.append("--config=" + _config_value(arg.split("=", 1)[1]))
        else:
            out.append(arg)
    return out


def _config_value(value: str) -> str:
    """A ``--config`` value: a file or inline YAML (``{trainer: {max_epochs: 1}}``) as it is,
    anything else a recipe name (a missing file is then the one-line error of a missing recipe)."""
    if Path(value).is_file() or (not value.startswith(PREFIX) and any(c in value for c in ":{\n")):
        return value
    return str(resolve_recipe(value))


def copy_recipes(destination: str | Path) -> list[Path]:
    """Copy every shipped recipe (and the recipes' README) into ``destination`` for editing.

    Refuses to overwrite an existing file, so a copy never clobbers edited recipes.
    """
    destination = Path(destination)
    sources = sorted([*RECIPES.rglob("*.yaml"), RECIPES / "README.md"])
    targets = [destination / source.relative_to(RECIPES) for source in sources]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise ConfigError(
            f"{existing[0]} exists ({len(existing)} of the recipes' files are already in {destination}); "
            "copy into an empty or new folder"
        )
    for source, target in zip(sources, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return targets
