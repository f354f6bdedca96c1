"""The package's shape: no import cycles, commands stay thin, TAU stays in its reader, tests
mirror the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fit_helpers import REPO

PACKAGE = REPO / "asc_kd"
#: ``python -m`` entry points: they parse arguments and call library functions.
COMMANDS = {
    "asc_kd.fit",
    "asc_kd.logits",
    "asc_kd.quantize",
    "asc_kd.predict",
    "asc_kd.export",
    "asc_kd.pipeline",
    "asc_kd.bench",
    "asc_kd.relink",
    "asc_kd.data.check",
    "asc_kd.recipes.__main__",
    "asc_kd.__main__",  # asc-kd: every command behind one name
}
#: The only modules that may know TAU's labels: its reader, the layout registry, its generator.
TAU_MODULES = {"asc_kd.data.tau", "asc_kd.data.layouts", "asc_kd.data.synthetic"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """asc_kd modules ``name`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
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
            "_command",
            "_print",
            "_resumed_wandb_run",
            "_finish_wandb",
            "usage",
            "_fit",
        }, name
        assert classes in ([], ["AscKdCLI"]), name


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
    stems = [
        name.rsplit(".", 1)[-1]
        for name in MODULES
        if MODULES[name].name not in ("__init__.py", "__main__.py")
    ]
    assert sorted({s for s in stems if stems.count(s) > 1}) == []


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


def test_tests_mirror_the_package() -> None:
    tests = REPO / "tests"
    for package in ("data", "models", "tasks", "augmentations", "callbacks"):
        modules = {p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__"}
        covered = {p.stem.removeprefix("test_") for p in (tests / package).glob("test_*.py")}
        assert covered, package
        assert covered <= modules | {"models", "teachers", "tasks", "teacher_training"}, package
