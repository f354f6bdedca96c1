"""``python -m asc_kd.synthetic OUT_DIR``: synthetic acoustic scenes in a layout asc_kd reads.

    python -m asc_kd.synthetic data/synthetic                      # TAU22 layout, the demo's set
    python -m asc_kd.synthetic my_scenes --layout folders --classes 13 --sample-rate 22050

How the scenes are made is ``asc_kd.data.synthetic``; accuracies on them are synthetic.
"""

from __future__ import annotations

import argparse
import logging
import sys

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.data.synthetic import DEFAULT_SECONDS, SyntheticConfig, generate, write_linked

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    defaults = SyntheticConfig()
    parser = command_parser(
        "python -m asc_kd.synthetic",
        "Write synthetic acoustic scenes in a layout asc_kd reads (results are synthetic).",
    )
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument(
        "--layout", choices=list(DEFAULT_SECONDS), default=defaults.layout, help="dataset layout"
    )
    parser.add_argument(
        "--train-segments-per-scene",
        type=int,
        default=defaults.train_segments_per_scene,
        help="TAU: training segments per scene on device a (a segment is one clip of one recording "
        "location; the same segment may also be recorded on other devices)",
    )
    parser.add_argument(
        "--test-segments-per-scene",
        type=int,
        default=defaults.test_segments_per_scene,
        help="TAU: test segments per scene, each recorded on all nine devices (9 clips a segment)",
    )
    parser.add_argument(
        "--other-device-fraction",
        type=float,
        default=defaults.other_device_fraction,
        help="TAU: share of training segments also recorded on each of b, c, s1-s3",
    )
    parser.add_argument(
        "--jitter", type=float, default=defaults.jitter, help="per-clip variation; larger is harder"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="everything derives from it")
    parser.add_argument(
        "--clip-seconds", type=float, default=None, help="clip length (default: 1; tau20: 10)"
    )
    parser.add_argument("--classes", type=int, default=defaults.n_classes, help="folders: number of classes")
    parser.add_argument(
        "--sample-rate", type=int, default=defaults.sample_rate, help="folders: file sample rate"
    )
    parser.add_argument(
        "--recordings-per-class",
        type=int,
        default=defaults.recordings_per_class,
        help="folders: recordings per class",
    )
    parser.add_argument(
        "--segments-per-recording",
        type=int,
        default=defaults.segments_per_recording,
        help="folders: clips cut from each recording",
    )
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
    config = SyntheticConfig(
        train_segments_per_scene=args.train_segments_per_scene,
        test_segments_per_scene=args.test_segments_per_scene,
        other_device_fraction=args.other_device_fraction,
        jitter=args.jitter,
        seed=args.seed,
        layout=args.layout,
        clip_seconds=args.clip_seconds,
        n_classes=args.classes,
        sample_rate=args.sample_rate,
        recordings_per_class=args.recordings_per_class,
        segments_per_recording=args.segments_per_recording,
    )
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
