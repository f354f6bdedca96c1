"""``asc-kd COMMAND ...`` (or ``python -m asc_kd COMMAND ...``): every command behind one name.

    asc-kd fit --config base --config students/kd --config students/system1 --data.root DATA
    asc-kd pipeline --seeds 3
    asc-kd recipes list
    asc-kd docs training

Each command is also ``python -m asc_kd.<module>``; ``asc-kd COMMAND --help`` shows its options,
``asc-kd --version`` (``-V``) the version.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import sys
from pathlib import Path

from asc_kd.core.command_line import run_command, typed_as

#: command -> (module, what it does); each module has ``main(argv) -> int`` (the fit: ``command``).
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("asc_kd.fit", "train a recipe, then test the reported checkpoint"),
    "logits": ("asc_kd.logits", "teacher ensemble logits and Table 1"),
    "quantize": ("asc_kd.quantize", "int8 post-training quantization and its report"),
    "predict": ("asc_kd.predict", "score audio files, write the DCASE submission CSV"),
    "package": ("asc_kd.package", "a DCASE submission package (outputs, meta files, zip) from student runs"),
    "export": ("asc_kd.export", "a student as ONNX, checked against PyTorch"),
    "pipeline": ("asc_kd.pipeline", "the whole system: teachers, logits, students, int8, tables"),
    "status": ("asc_kd.status", "where a pipeline's runs stand, from their records"),
    "tables": ("asc_kd.tables", "Tables 1 and 2 (mean ± std over seeds) from any run folders"),
    "check": ("asc_kd.check", "is this a complete, readable scene dataset?"),
    "bench": ("asc_kd.bench", "speed benchmarks with same-run ratios"),
    "recipes": ("asc_kd.recipes.__main__", "list, show or copy the shipped recipes"),
    "complexity": ("asc_kd.complexity", "MACs and parameter memory, the NeSsi way"),
    "synthetic": ("asc_kd.synthetic", "write synthetic scenes in a dataset layout"),
    "relink": ("asc_kd.relink", "draw the W&B lineage of synced offline runs"),
    "docs": ("asc_kd.docs.__main__", "the documentation pages: list them, or print one"),
}
#: ``asc-kd`` or ``python -m asc_kd``, as the user typed it: the usage lines say it.
TYPED_NAME = "python -m asc_kd" if Path(sys.argv[0]).resolve() == Path(__file__).resolve() else "asc-kd"


def usage(argv: list[str]) -> int:
    """``asc-kd`` or ``asc-kd --help``: the commands; ``asc-kd --version``: the version."""
    if argv[:1] in (["-V"], ["--version"]):
        try:
            version = importlib.metadata.version("asc_kd")
        except importlib.metadata.PackageNotFoundError:  # a checkout on the path, not installed
            from asc_kd import __version__ as version
        print(f"asc_kd {version}")
        return 0
    name, width = TYPED_NAME, max(map(len, COMMANDS))
    lines = [f"  {command:<{width}}  {text}" for command, (_, text) in COMMANDS.items()]
    print(
        f"usage: {name} COMMAND [options]   ({name} COMMAND --help)\n\ncommands:\n"
        + "\n".join(lines)
        + f"\n\n{name} docs lists the documentation pages; {name} --version prints the version."
    )
    return 0 if argv else 2


def main(argv: list[str] | None = None) -> int:
    """Run ``asc-kd COMMAND ARGS``; exit 2 with one line for an unknown command."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "-V", "--version"):
        return run_command(usage, args)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"`{TYPED_NAME} --help` lists the commands"
        print(f"error: command line: unknown command {command!r}; {hint}", file=sys.stderr)
        return 2
    module = COMMANDS[command][0]
    with typed_as(f"python -m {module.removesuffix('.__main__')}", f"{TYPED_NAME} {command}"):
        module_object = importlib.import_module(module)
        return run_command(getattr(module_object, "command", module_object.main), rest)


if __name__ == "__main__":
    sys.exit(main())
