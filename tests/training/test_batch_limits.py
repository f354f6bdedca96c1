"""``--trainer.limit_train_batches 1`` is one batch and ``1.0`` the whole epoch, as Lightning
documents for an int and a float, typed on the command line or in a YAML recipe alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fit_helpers import TINY_TEACHER, fit_args
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser

from asc_kd.fit import main
from asc_kd.training.fit import keep_typed_ints

pytestmark = pytest.mark.usefixtures("fit_command")

#: Lightning's options that read an int as a count of batches and a float as a fraction.
COUNT_OR_FRACTION = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
    "val_check_interval",
)


def _parser() -> LightningArgumentParser:
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.add_argument("--config", action="config")
    parser.add_argument("--ratio", type=float | int | None, default=None)  # float first on purpose
    keep_typed_ints(parser)
    return parser


@pytest.mark.parametrize("typed", ["1", "1.0", "2", "0", "0.25"])
def test_every_count_or_fraction_keeps_the_type_it_was_typed_in(typed: str, tmp_path: Path) -> None:
    expected = float(typed) if "." in typed else int(typed)
    parser = _parser()
    given = [f"--trainer.{key}={typed}" for key in COUNT_OR_FRACTION]
    from_command_line = parser.parse_args([*given, f"--ratio={typed}"])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"ratio: {typed}\ntrainer:\n" + "".join(f"  {key}: {typed}\n" for key in COUNT_OR_FRACTION)
    )
    from_yaml = parser.parse_args(["--config", str(recipe)])
    for config in (from_command_line, from_yaml):
        values = [config.trainer[key] for key in COUNT_OR_FRACTION] + [config.ratio]
        assert values == [expected] * len(values)
        assert [type(v) for v in values] == [type(expected)] * len(values)


@pytest.mark.parametrize("source", ["command line", "yaml"])
@pytest.mark.parametrize("typed", ["1", "1.0"])
def test_one_is_one_batch_and_one_point_zero_the_whole_epoch(
    source: str, typed: str, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # The tiny set's training split: 10 scenes x (8 device-a clips + 2 on each of 5 other
    # devices) = 180 clips, in batches of 64 with the partial last one dropped: 2 steps. Its
    # test split (the validation split): 10 scenes x 2 clips x 9 devices = 180, 90 at a time: 2.
    limits = {"limit_train_batches": typed, "limit_val_batches": typed}
    if source == "yaml":
        recipe = tmp_path / "limits.yaml"
        recipe.write_text(yaml.safe_dump({"trainer": {k: yaml.safe_load(v) for k, v in limits.items()}}))
        given = ["--config", str(recipe)]
    else:
        given = [arg for key, value in limits.items() for arg in (f"--trainer.{key}", value)]
    cli = main(
        [
            *fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER),
            *given,
            *("--data.batch_size", "64", "--data.eval_batch_size", "90"),
            *("--trainer.logger", "false", "--test", "false"),
        ]
    )
    assert cli.trainer.global_step == cli.trainer.num_val_batches[0] == (2 if typed == "1.0" else 1)
