"""``asc-kd COMMAND ...`` (or ``python -m asc_kd COMMAND ...``): every command behind one name.

    asc-kd fit --config base --config students/kd --config students/system1 --data.root DATA
    asc-kd pipeline --seeds 3
    asc-kd recipes list

Each command is also ``python -m asc_kd.<module>``; ``asc-kd COMMAND --help`` shows its options.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from asc_kd.core.command_line import run_command

#: command -> (module, what it does); each module has ``main(argv) -> int``.
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
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: asc-kd COMMAND [options]   (asc-kd COMMAND --help)\n\ncommands:\n" + "\n".join(lines)


def _fit(argv: list[str] | None) -> int:
    from asc_kd.fit import main as fit

    # Lightning's DDP launcher restarts the command as `python -m <__main__'s spec> sys.argv[1:]`:
    # make that `python -m asc_kd.fit ARGS`, the command this one stands for.
    sys.modules["__main__"].__spec__ = importlib.util.find_spec("asc_kd.fit")
    sys.argv = [sys.argv[0], *(argv or [])]
    fit(None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``asc-kd COMMAND ARGS``; exit 2 with the command list for an unknown command."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"asc-kd: unknown command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    if command == "fit":
        return run_command(_fit, rest)
    module = importlib.import_module(COMMANDS[command][0])
    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
