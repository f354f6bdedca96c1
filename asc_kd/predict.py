"""``python -m asc_kd.predict MODEL``: the DCASE submission file for a folder or a split.

    python -m asc_kd.predict system1-seed0.int8.pt --folder EVAL_ROOT/audio --out submission.csv
    python -m asc_kd.predict last.ckpt --data.root DATA       # the dataset's predict split

A dataset is read with the fit's ``--data.*`` options (its layout, split files...), which default
to those the model's fit recorded (``asc_kd.data.options.fit_defaults``); its predict split is
TAU's ``evaluation_setup/fold1_test.csv``. MODEL is a checkpoint of any asc_kd task or
an int8 artifact (``*.int8.pt``). The output is tab-separated: ``filename``, ``scene_label`` and
one probability column per class of the model, in its class order. Every audio file soundfile
reads is taken, whatever the case of its extension (other files are listed as skipped);
recordings of any length, rate and channel count are mixed to mono, resampled to the model's
rate, scored in windows of the model's length with a configurable hop, and one row per file
written with the softmax of the mean window logits, the rule validation and test score files by
(``--per-window`` writes one row per window with its start time instead).
"""

from __future__ import annotations

import logging
import sys

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.data.options import add_datamodule_arguments, build_datamodule, fit_defaults, given_data, gives
from asc_kd.deployment.predict import folder_files, load_scorer, predict_files, write_submission


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.predict", __doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint (.ckpt) or int8 artifact (.int8.pt)")
    parser.add_argument(
        "--folder",
        help="folder of audio files (e.g. the evaluation set's audio/), searched recursively; "
        "or give --data.root for a dataset's predict split",
    )
    parser.add_argument("--out", default="submission.csv", help="submission file to write")
    parser.add_argument(
        "--hop-seconds",
        type=float,
        default=None,
        help="hop between the model's windows (default: the window length, as validation and test)",
    )
    parser.add_argument("--per-window", action="store_true", help="one row per window, with its start_s")
    add_datamodule_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    data = given_data(parser, argv)
    if (args.folder is None) == (not gives(data, "root")):
        parser.error("give either --folder (audio files) or --data.root (a dataset's predict split)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    scorer = load_scorer(args.model)
    if args.folder:
        root, filenames = folder_files(args.folder)
    else:
        datamodule = build_datamodule(data, fit_defaults(data, {args.model: scorer.data}))
        root = datamodule.root
        filenames = list(datamodule.layout.listing("predict")["filename"])
    frame = predict_files(scorer, root, filenames, args.hop_seconds, args.per_window)
    out = write_submission(frame, args.out)
    print(f"wrote {len(frame)} rows x {len(scorer.classes)} class probabilities to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
