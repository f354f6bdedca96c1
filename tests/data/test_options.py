"""``asc_kd.data.options``: every command that reads a dataset takes the fit's ``--data.*`` options
and builds its DataModule from them with the one builder."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fit_helpers import command_line

import asc_kd.check
import asc_kd.data.options
import asc_kd.deployment.quantize as deployment_quantize
import asc_kd.logits
import asc_kd.quantize
import asc_kd.training.logits as training_logits
from asc_kd.bench import build_parser as bench_parser
from asc_kd.bench import main as bench_main
from asc_kd.core.command_line import run_command
from asc_kd.core.errors import ConfigError
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.options import (
    FIT_OPTIONS,
    GivenData,
    build_datamodule,
    data_option_names,
    fit_defaults,
    recorded_options,
)
from asc_kd.training.fit import fit
from asc_kd.training.logits import TeacherRun

#: Each dataset-reading command's parser, by the name a user types.
PARSERS = {
    "logits": asc_kd.logits.build_parser,
    "quantize": asc_kd.quantize.build_parser,
    "data.check": asc_kd.check.build_parser,
    **{
        f"bench {name}": lambda name=name: bench_parser()._subparsers._group_actions[0].choices[name]
        for name in ("data", "train", "quant", "keys")
    },
}


@pytest.fixture(scope="module")
def fit_data_options() -> set[str]:
    """The ``--data.*`` names ``python -m asc_kd.fit --help`` lists."""
    import contextlib
    import io

    text = io.StringIO()
    with command_line("python -m asc_kd.fit"), contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        fit(["--help"])
    return set(re.findall(r"--data\.(\w+)", text.getvalue()))


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_dataset_command_takes_the_fits_data_options(command: str, fit_data_options: set[str]) -> None:
    assert {"root", "layout", "cache_dir", "validation", "holdout_file"} < fit_data_options
    assert set(data_option_names(PARSERS[command]())) == fit_data_options


class _Built(Exception):
    """Stops a command once its DataModule is built."""

    def __init__(self, datamodule: SceneDataModule) -> None:
        self.datamodule = datamodule


def _stop_at_the_datamodule(monkeypatch: pytest.MonkeyPatch) -> None:
    real = asc_kd.data.options.build_datamodule

    def built(*args, **kwargs) -> SceneDataModule:
        raise _Built(real(*args, **kwargs))

    for module in (training_logits, deployment_quantize, asc_kd.data.options, asc_kd.check):
        monkeypatch.setattr(module, "build_datamodule", built)
    monkeypatch.setattr(deployment_quantize, "load_task", lambda path: SimpleNamespace())
    monkeypatch.setattr(asc_kd.logits, "describe", lambda path, name, recipe: TeacherRun(path, "t"))
    # What the teacher's fit recorded (nothing) and the student's (its model's rate and window).
    monkeypatch.setattr(training_logits, "fit_data_options", lambda path: {})
    recorded = {"sample_rate": 16_000, "segment_seconds": 0.5}
    monkeypatch.setattr(deployment_quantize, "fit_data_options", lambda path: recorded)


#: The command line of each command before its data options, and the defaults it keeps.
COMMANDS = {
    "logits": (asc_kd.logits.main, ["t.ckpt"], {"num_workers": 0, "batch_size": 64, "eval_batch_size": 64}),
    "quantize": (
        asc_kd.quantize.main,
        ["s.ckpt"],
        {"num_workers": 0, "sample_rate": 16_000, "segment_seconds": 0.5},
    ),
    "data.check": (asc_kd.check.main, [], {"num_workers": None, "batch_size": 64}),
    "bench data": (bench_main, ["data"], {"num_workers": 0}),
    "bench train --fit": (bench_main, ["train", "--fit", "--batch-size", "8"], {"batch_size": 8}),
    "bench quant": (bench_main, ["quant"], {"num_workers": 0}),
    "bench keys": (bench_main, ["keys"], {"validation": "none"}),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_non_default_data_option_reaches_each_commands_datamodule(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main, head, kept = COMMANDS[command]
    _stop_at_the_datamodule(monkeypatch)
    holdout = str(tmp_path / "holdout.csv")
    data = ["--data.root", str(tmp_path), "--data.layout", "folders", "--data.test_fraction", "0.5"]
    if command != "bench keys":  # keys lists train and test only
        data += ["--data.validation", "holdout", "--data.holdout_file", holdout]
    with pytest.raises(_Built) as built:
        main([*head, *data])
    hparams = built.value.datamodule.hparams
    assert (hparams.root, hparams.layout, hparams.test_fraction) == (str(tmp_path), "folders", 0.5)
    if command != "bench keys":
        assert (hparams.validation, hparams.holdout_file) == ("holdout", holdout)
    assert {key: hparams[key] for key in kept} == kept


def test_the_builder_takes_given_values_defaults_and_overrides() -> None:
    given = GivenData({"root": "R", "batch_size": 16, "seed": 4})
    datamodule = build_datamodule(given, {"batch_size": 8, "num_workers": 0}, use_cache=False)
    hparams = datamodule.hparams
    # The given values beat the defaults, the defaults beat the fit's, overrides beat all.
    assert (hparams.root, hparams.batch_size, hparams.seed) == ("R", 16, 4)
    assert (hparams.num_workers, hparams.eval_batch_size, hparams.use_cache) == (0, 256, False)


@pytest.mark.parametrize(
    ("main", "head"), [(asc_kd.check.main, []), (asc_kd.quantize.main, ["s.ckpt"])], ids=["check", "quantize"]
)
def test_a_bad_data_value_ends_a_command_in_one_line_naming_the_option(
    main, head: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's parser reads the text (its error hook words the line), before any data or
    model is read; the builder is handed typed values."""
    not_int = "--data.batch_size: 'x' is not valid (expected int)"
    for value, line in [
        (["--data.batch_size", "x"], not_int),
        (["--data.batch_size=x"], not_int),
        (["--data.layout", "tau23"], "--data.layout: unknown choice 'tau23'; did you mean tau22?"),
        # nothing close: the choices
        (
            ["--data.layout=xyz"],
            "--data.layout: unknown choice 'xyz'; choose from auto, tau22, tau20, folders",
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            run_command(main, [*head, "--data.root", str(tmp_path), *value])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == f"error: command line: {line}\n"


def test_the_data_check_reads_the_split_the_fits_options_make(folders_root: Path, capsys) -> None:
    """A folders-layout option (the test share) reaches the check as it reaches the fit."""
    tested = []
    for fraction in ("0.25", "0.5"):
        argv = ["--data.root", str(folders_root), "--data.test_fraction", fraction]
        assert asc_kd.check.main(argv) == 0
        tested.append(
            int(re.search(r"^clips per split: .*\btest (\d+)", capsys.readouterr().out, re.M).group(1))
        )
        given = GivenData({"root": str(folders_root), "test_fraction": float(fraction)})
        assert tested[-1] == len(build_datamodule(given).frames()["test"])
    assert tested[0] < tested[1]


# -- the options a fit recorded, as a command's defaults ----------------------------------------
def _record(root: Path, **changes: object) -> dict[str, object]:
    """What a fit on ``root`` with ``--data.clip_seconds 2 --data.recording_pattern none
    --data.cache_dir C`` records (``changes`` replaced)."""
    hparams = build_datamodule(GivenData({"root": str(root), "clip_seconds": 2.0})).hparams
    options = {**hparams, "recording_pattern": "none", "cache_dir": "C", **changes}
    return recorded_options(options)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asc_kd.data.options"]


def test_a_fits_record_hands_on_its_clip_options_not_its_loader_or_training_inputs() -> None:
    hparams = dict(build_datamodule(GivenData({"root": "R", "teacher_logits": "t.npz"})).hparams)
    kept = recorded_options({**hparams, "batch_size": 16, "dir_folder": "irs"})
    assert set(kept) == {"root", *FIT_OPTIONS}
    assert {"clip_seconds", "recording_pattern", "sample_rate", "holdout_file", "cache_dir"} <= set(kept)
    training = {"batch_size", "num_workers", "teacher_logits", "dir_folder", "roll_seconds", "train_crop"}
    assert not training & set(kept) and "generate_synthetic" not in kept


def test_the_record_gives_the_defaults_and_typed_options_win(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = _record(tmp_path)
    args = GivenData({"root": str(tmp_path), "cache_dir": "D", "use_cache": False})
    defaults = fit_defaults(args, {"a.ckpt": record})
    assert "root" not in defaults and "cache_dir" not in defaults and "use_cache" not in defaults
    assert (defaults["clip_seconds"], defaults["recording_pattern"], defaults["sample_rate"]) == (
        2.0,
        "none",
        32000,
    )
    hparams = build_datamodule(args, {"num_workers": 0, **defaults}).hparams
    assert (hparams.clip_seconds, hparams.recording_pattern, hparams.cache_dir) == (2.0, "none", "D")
    assert (hparams.use_cache, hparams.num_workers) == (False, 0)
    assert _warnings(caplog) == []  # another cache is no contradiction
    assert fit_defaults(args, {"weights.pt": {}}) == {}  # a model that records nothing


def test_a_typed_clip_option_or_root_that_differs_is_warned_of_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = _record(tmp_path / "fitted")
    args = GivenData({"root": str(tmp_path), "clip_seconds": 3.0, "recording_pattern": "none"})
    with caplog.at_level(logging.WARNING, logger="asc_kd.data.options"):
        defaults = fit_defaults(args, {"a.ckpt": record})
    assert "clip_seconds" not in defaults and "recording_pattern" not in defaults
    assert _warnings(caplog) == [
        f"a.ckpt was fit on the data at {tmp_path / 'fitted'}; reading {tmp_path} (--data.root)",
        "--data.clip_seconds 3.0 differs from the 2.0 that a.ckpt was fit with: the model is scored "
        "on other clips or splits than its fit read",
    ]
    caplog.clear()
    same = GivenData({"root": str(tmp_path / "x" / ".." / "fitted"), "clip_seconds": 2.0})
    with caplog.at_level(logging.WARNING, logger="asc_kd.data.options"):
        fit_defaults(same, {"a.ckpt": record})
    assert _warnings(caplog) == []  # the same folder by another path, the same length


@pytest.mark.parametrize(
    ("option", "value", "typed", "reads"),
    [
        ("sample_rate", 16000, "16000", "its front-end reads audio at 32000 Hz"),
        ("segment_seconds", 2.0, "2.0", "it reads windows of 1.0 s"),
    ],
)
def test_a_rate_or_window_other_than_the_models_is_refused(
    tmp_path: Path, option: str, value: float, typed: str, reads: str
) -> None:
    args = GivenData({"root": str(tmp_path), option: value})
    with pytest.raises(ConfigError) as refused:
        fit_defaults(args, {"a.ckpt": _record(tmp_path)})
    assert str(refused.value) == (
        f"--data.{option} {typed} contradicts a.ckpt: {reads}; "
        f"leave --data.{option} out (it defaults to the model's)"
    )


def test_models_whose_fits_read_other_clips_are_refused_unless_the_option_is_typed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _record(tmp_path), _record(tmp_path, clip_seconds=3.0, cache_dir="other")
    args = GivenData({"root": str(tmp_path)})
    with pytest.raises(ConfigError) as refused:
        fit_defaults(args, {"a.ckpt": a, "b.ckpt": b})
    assert str(refused.value) == (
        "a.ckpt was fit with --data.clip_seconds 2.0, b.ckpt with 3.0; give --data.clip_seconds to "
        "choose the clips they are run on"
    )
    with caplog.at_level(logging.WARNING, logger="asc_kd.data.options"):
        typed = GivenData({**args.values, "clip_seconds": 2.0})
        defaults = fit_defaults(typed, {"a.ckpt": a, "b.ckpt": b})
    assert defaults["cache_dir"] == "C"  # the first model's cache: not a clip option
    assert _warnings(caplog) == [
        "--data.clip_seconds 2.0 differs from the 3.0 that b.ckpt was fit with: the model is scored "
        "on other clips or splits than its fit read"
    ]
    with pytest.raises(
        ConfigError,
        match=r"^a.ckpt was fit with --data.sample_rate 32000, b.ckpt with "
        r"44100: their models read other clips; run them apart$",
    ):
        fit_defaults(args, {"a.ckpt": a, "b.ckpt": _record(tmp_path, sample_rate=44100)})


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """The benchmarks set torch's thread count; the tests after these keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
