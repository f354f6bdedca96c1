"""The package's shape: commands at the root, thin, each driving the library module named like
it; no import cycles, and library folders in layers that imports go down; W&B in one package;
TAU stays in its reader; the tests mirror the package, both ways (a test folder per package, a
package for every test folder but end_to_end and project), and a test parametrized over an empty
list fails."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import REPO

PACKAGE = REPO / "asc_kd"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
#: The commands: every module at the package root (``python -m asc_kd.<name>``; ``asc_kd.__main__``
#: is ``asc-kd``), and the recipes and docs packages' ``python -m asc_kd.recipes`` and
#: ``python -m asc_kd.docs``. The library lives in the subpackages below them.
COMMANDS = {
    name for name, path in MODULES.items() if path.parent == PACKAGE and path.name != "__init__.py"
} | {"asc_kd.recipes.__main__", "asc_kd.docs.__main__"}
#: The library part a command drives, where it is not the library module named like the command.
DRIVES = {
    "asc_kd.bench": "asc_kd.benchmarks",
    "asc_kd.relink": "asc_kd.tracking.lineage",
    "asc_kd.recipes.__main__": "asc_kd.recipes",
    "asc_kd.docs.__main__": "asc_kd.docs",
}
#: The only modules that may know TAU's labels: its reader, the layout registry, its generator.
TAU_MODULES = {"asc_kd.data.tau", "asc_kd.data.layouts", "asc_kd.data.synthetic"}


def _imported_names(name: str) -> set[str]:
    """Every name ``name`` imports, at module level or inside functions: ``import a.b`` gives
    ``a.b``, ``from a import b`` gives ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _imports(name: str) -> set[str]:
    """asc_kd modules ``name`` imports, at module level or inside functions."""
    found = {
        imported if imported in MODULES else imported.rpartition(".")[0] for imported in _imported_names(name)
    }
    # Strings handed to import_object name modules too (lazy teacher builders).
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("asc_kd.")
        ):
            module = node.value.split(":")[0]
            if module in MODULES:
                found.add(module)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name) for name in MODULES}


def test_there_are_no_import_cycles() -> None:
    visiting, done, cycles = set(), set(), []

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append(" -> ".join([*path[path.index(node) :], node]))
            return
        visiting.add(node)
        for nxt in sorted(GRAPH[node]):
            visit(nxt, [*path, node])
        visiting.discard(node)
        done.add(node)

    for name in sorted(GRAPH):
        visit(name, [])
    assert cycles == []


#: The library's folders from the bottom up: a folder imports only the folders before it (and
#: ``asc_kd`` itself, for its version). The commands at the package root stand above them all.
LAYERS = [
    "core",
    "docs",
    "recipes",
    "augmentations",
    "data",
    "models",
    "evaluation",
    "tracking",
    "tasks",
    "deployment",
    "callbacks",
    "training",
    "benchmarks",
    "runs",
]


def _folder(name: str) -> str | None:
    """The library folder of module ``name`` (None for the package itself and the commands)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def test_every_library_folder_has_its_place_in_the_layers() -> None:
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(LAYERS)


def test_imports_point_down_the_layers_folder_by_folder() -> None:
    """Modules may form no cycle, and neither may folders: ``runs`` may use ``training``, never
    the other way, even when the modules involved make no cycle of their own."""
    up = sorted(
        f"{name} -> {imported}"
        for name, imports in GRAPH.items()
        if (low := _folder(name)) is not None
        for imported in imports
        if (high := _folder(imported)) is not None and LAYERS.index(high) > LAYERS.index(low)
    )
    assert up == []


@pytest.mark.parametrize("name", sorted(set(MODULES) - COMMANDS))
def test_no_library_module_imports_a_command(name: str) -> None:
    assert not GRAPH[name] & COMMANDS


def test_commands_are_thin() -> None:
    for name in COMMANDS:
        tree = ast.parse(MODULES[name].read_text())
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        assert set(functions) <= {
            "main",
            "build_parser",
            "parse_args",
            "command",
            "_print",
            "usage",
        }, name
        assert classes == [], name


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("asc_kd.augmentations")))
def test_augmentations_take_tensors_not_the_data_package(name: str) -> None:
    """One direction between folders: the DataModule applies augmentations; augmentations know no
    dataset (what both need, such as the batch's type, lives below both)."""
    assert not {m for m in GRAPH[name] if m.startswith("asc_kd.data")}


@pytest.mark.parametrize("name", sorted(set(MODULES) - TAU_MODULES))
def test_only_the_tau_reader_knows_tau(name: str) -> None:
    assert "asc_kd.data.tau" not in GRAPH[name]


def test_tasks_take_the_dataset_spec_as_one_object() -> None:
    """Classes, devices and device groups reach a task inside its ``DatasetSpec`` (``spec``),
    never as arguments of their own that each caller bundles in its own way."""
    loose = {"classes", "devices", "device_groups"}
    arguments = {}
    for name in (n for n in MODULES if n.startswith("asc_kd.tasks")):
        for node in ast.parse(MODULES[name].read_text()).body:
            if isinstance(node, ast.ClassDef):
                for init in (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"):
                    arguments[node.name] = {a.arg for a in init.args.args + init.args.kwonlyargs}
    assert "spec" in arguments["ClassificationTask"]
    assert {task: sorted(args & loose) for task, args in arguments.items() if args & loose} == {}


def test_module_names_are_unique_across_packages() -> None:
    """One module per name, except a command and the library module it drives (``asc_kd.quantize``
    and ``asc_kd.deployment.quantize``)."""
    stems = [
        name.rsplit(".", 1)[-1]
        for name in sorted(set(MODULES) - COMMANDS)
        if MODULES[name].name not in ("__init__.py", "__main__.py")
    ]
    assert sorted({s for s in stems if stems.count(s) > 1}) == []


def _library_of(command: str) -> str:
    if command in DRIVES:
        return DRIVES[command]
    stem = command.rsplit(".", 1)[-1]
    (library,) = [n for n in set(MODULES) - COMMANDS if n.rsplit(".", 1)[-1] == stem]
    return library


@pytest.mark.parametrize("command", sorted(COMMANDS - {"asc_kd.__main__"}))
def test_every_command_drives_the_library_module_named_like_it(command: str) -> None:
    """A newcomer finds the code behind ``python -m asc_kd.quantize`` by its name, one level
    down (``asc_kd/deployment/quantize.py``), not under an unrelated one."""
    assert _library_of(command) in GRAPH[command]


def test_the_package_root_holds_the_commands_and_asc_kd_lists_them_all() -> None:
    from asc_kd.__main__ import COMMANDS as TABLE

    for command in COMMANDS:
        source = MODULES[command].read_text()
        assert "def main(" in source and 'if __name__ == "__main__":' in source, command
    assert {module for module, _ in TABLE.values()} == COMMANDS - {"asc_kd.__main__"}


def test_wandb_lives_in_one_package() -> None:
    """Every use of W&B (the logger, tables and charts, artifacts, the public API) is in
    ``asc_kd.tracking``; the rest of the package calls it there."""
    users = {
        name
        for name in MODULES
        if any(
            m == "wandb" or m.startswith("wandb.") or m.endswith(".WandbLogger")
            for m in _imported_names(name)
        )
    }
    assert users and all(name.startswith("asc_kd.tracking") for name in users), sorted(users)


def test_only_commands_print() -> None:
    """Library code logs or returns what a command prints; ``run_command``, every command's
    entry, prints the one-line error."""
    printing = {
        name
        for name in set(MODULES) - COMMANDS
        for node in ast.walk(ast.parse(MODULES[name].read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    }
    assert printing == {"asc_kd.core.command_line"}


def test_no_module_assigns_sys_argv() -> None:
    """Configs are handed on as values (a parsed namespace, settings, a config file), never
    through ``sys.argv``: no ``sys.argv = ...``, ``sys.argv[...] = ...`` or ``..., sys.argv = ...``."""

    def assigns_sys_argv(target: ast.expr) -> bool:
        if isinstance(target, ast.Tuple | ast.List):
            return any(assigns_sys_argv(element) for element in target.elts)
        if isinstance(target, ast.Subscript):
            target = target.value
        return ast.unparse(target) == "sys.argv"

    assigning = {
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        and any(
            assigns_sys_argv(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    }
    assert assigning == set()


def test_the_command_line_is_not_in_the_error_types() -> None:
    assert "argparse" not in _imported_names("asc_kd.core.errors")
    assert "asc_kd.core.command_line" in GRAPH["asc_kd.fit"] | GRAPH["asc_kd.__main__"]


def test_public_class_names_are_unique() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                if node.name in seen:
                    duplicates.append(f"{node.name}: {seen[node.name]} and {name}")
                seen[node.name] = name
    assert duplicates == []


def test_public_constants_and_types_are_defined_once() -> None:
    """A capitalised module-level name (constant, type alias) means one thing: defined in one module,
    imported by the others."""
    seen: dict[str, str] = {}
    duplicates = []
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id[0].isupper():
                    if target.id in seen:
                        duplicates.append(f"{target.id}: {seen[target.id]} and {name}")
                    seen[target.id] = name
    assert duplicates == []


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asc_kd"):
                found += [
                    f"{name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []


TESTS = REPO / "tests"
#: Test folders that mirror no package: a user's path through several commands, and the
#: repository as a whole (this file, ruff, the install).
TESTS_OF_NO_PACKAGE = {"end_to_end", "project"}
#: Folders the tests read that hold no test: the tiny recipes and the test cluster's scripts.
NOT_TESTS = {"conf", "cluster"}
PACKAGES = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def _test_folders() -> set[str]:
    return {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}


def test_every_test_folder_mirrors_a_package() -> None:
    """The tests mirror the package: ``tests/<folder>/`` holds the tests of ``asc_kd/<folder>/``
    and of the commands that drive it (``asc_kd.quantize``'s tests beside those of
    ``asc_kd.deployment.quantize``, in ``tests/deployment/``, as ``DRIVES`` and
    ``test_every_command_drives_the_library_module_named_like_it`` pair them). A test of a
    user's path through several commands is in ``tests/end_to_end/``, one of the repository as
    a whole in ``tests/project/``. The helpers every test may import (``conftest.py``,
    ``fit_helpers.py``, ``tiny_checkpoints.py``, ``pipeline_processes.py``) stay at the top of
    ``tests/``, which ``pythonpath`` in pyproject.toml puts on ``sys.path``."""
    assert sorted(_test_folders() - PACKAGES - TESTS_OF_NO_PACKAGE - NOT_TESTS) == []


def test_every_package_has_its_tests() -> None:
    assert PACKAGES  # a glob that found no package would check nothing
    untested = [f for f in sorted(PACKAGES | TESTS_OF_NO_PACKAGE) if not list((TESTS / f).glob("test_*.py"))]
    assert untested == []


def test_every_test_is_in_a_mirror_folder() -> None:
    """No test at the top of ``tests/``, in a folder below a mirror folder, or among the files
    the tests read."""
    found = sorted(TESTS.rglob("test_*.py"))
    assert found  # a glob that found no test would check nothing
    astray = [
        str(p.relative_to(TESTS))
        for p in found
        if p.parent.parent != TESTS or p.parent.name in NOT_TESTS or p.parent.name.startswith(".")
    ]
    assert astray == []


def test_a_parametrized_test_over_an_empty_list_fails(tmp_path: Path) -> None:
    """A test parametrized over what a glob or a registry finds checks nothing when it finds
    nothing: pyproject.toml's ``empty_parameter_set_mark`` makes that a collection error, not a
    skip."""
    test = tmp_path / "test_empty.py"
    test.write_text("import pytest\n\n\n@pytest.mark.parametrize('x', [])\ndef test_x(x):\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "-p", "no:cacheprovider"]
    ran = subprocess.run([*command, str(test)], cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 2, ran.stdout[-2000:]  # interrupted: an error during collection
    assert "Empty parameter set in 'test_x'" in ran.stdout
