"""``python -m asc_kd.synthetic OUT_DIR``: synthetic acoustic scenes in a layout asc_kd reads.

    python -m asc_kd.synthetic data/synthetic                      # TAU22 layout, the demo's set
    python -m asc_kd.synthetic my_scenes --layout folders --n_classes 13 --sample_rate 22050

How the scenes are made is ``asc_kd.data.synthetic``; accuracies on them are synthetic.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import fields

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.data.synthetic import SyntheticConfig, generate, write_linked

log = logging.getLogger(__name__)


def build_parser() -> CommandParser:
    """The command's options: the output folder, ``SyntheticConfig``'s fields (their defaults and
    texts are the dataclass's) and the hard-linked copy."""
    parser = cli_parser(
        "python -m asc_kd.synthetic",
        "Write synthetic acoustic scenes in a layout asc_kd reads (results are synthetic).",
    )
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_class_arguments(SyntheticConfig)
    parser.add_argument(
        "--linked-clips",
        type=int,
        default=0,
        help="tau22: also write OUT_DIR-linked, a set of this many clips hard-linked to the generated "
        "ones, for timing per-file work at full size (TAU22: 230350; 0: none)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = SyntheticConfig(**{field.name: args[field.name] for field in fields(SyntheticConfig)})
    try:
        out = generate(args.out_dir, config)
    except FileExistsError as err:
        parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("wrote %d %s clips to %s", config.n_clips, config.layout, out)
    if args.linked_clips:
        if config.layout != "tau22":
            parser.error("--linked-clips writes a TAU22 layout; use it with --layout tau22")
        linked = write_linked(out, out.with_name(f"{out.name}-linked"), args.linked_clips)
        log.info("wrote %d hard-linked tau22 clips to %s", args.linked_clips, linked)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
