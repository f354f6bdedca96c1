"""``python -m asc_kd.fit``: train a task from YAML configs, then test the reported checkpoint.

    python -m asc_kd.fit --config base --config students/kd --config students/system1 --data.root DATA

Configs compose left to right and any key can be overridden on the command line (``--help``
lists every option); a config is a shipped recipe's name (``python -m asc_kd.recipes list``) or a
YAML file; see ``asc_kd.training.fit``.
"""

from __future__ import annotations

import os
import sys

from asc_kd.core.command_line import run_command
from asc_kd.training.fit import AscKdCLI, fit, run_files

__all__ = ["AscKdCLI", "command", "main"]


def main(args: list[str] | None = None) -> AscKdCLI:
    """Fit, then test the reported checkpoint on the development-test split; say where the
    files went."""
    cli = fit(sys.argv[1:] if args is None else args, __doc__.split("\n\n")[0])
    if cli.summary is not None:
        print(run_files(cli.summary))
    return cli


def command(argv: list[str] | None) -> int:
    """``main`` as a command (``run_command``'s exit code)."""
    main(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WANDB_SILENT", "true")
    sys.exit(run_command(command))
