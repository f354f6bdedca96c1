"""``logits``, ``quantize`` and ``predict`` after a fit read their data as the fit did: the options
its checkpoint records are their defaults (``asc_kd.data.options.fit_defaults``), so
``--data.root`` alone is enough; a typed option wins and a contradiction is named."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile
import torch
from fit_helpers import TINY_TEACHER, command_line, fit_args

import asc_kd.logits
import asc_kd.predict
import asc_kd.quantize
from asc_kd.core.errors import ConfigError
from asc_kd.data.options import GivenData, build_datamodule
from asc_kd.data.spec import DatasetError
from asc_kd.data.teacher_logits import load_logits
from asc_kd.fit import main as fit
from asc_kd.tasks.restore import read_checkpoint

pytestmark = pytest.mark.slow

#: The fit's data options that its commands are not given again.
CHOSEN = {"clip_seconds": 2.0, "recording_pattern": "none"}


def _fit(root: Path, cache_dir: Path, out: Path, *options: str) -> Path:
    """The tiny teacher fitted on ``root`` with ``options``: its checkpoint (on the students'
    lighter front-end, not tested, no W&B: what matters is what it records)."""
    quick = ["--model.init_args.frontend", "student_mel", "--test", "false", "--trainer.logger", "false"]
    with command_line("python -m asc_kd.fit"):
        fit([*fit_args(root, cache_dir, out, *TINY_TEACHER), *quick, *options])
    return out / "teacher-seed0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def uneven_root(folders_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny folder dataset with one clip cut to 1.5 s: the clips differ in length, so the
    dataset cannot be read without ``--data.clip_seconds``."""
    root = tmp_path_factory.mktemp("uneven") / "scenes"
    shutil.copytree(folders_root, root)
    clip = sorted(root.rglob("*.wav"))[0]
    audio, rate = soundfile.read(clip)
    soundfile.write(clip, audio[: int(1.5 * rate)], rate)
    return root


@pytest.fixture(scope="module")
def checkpoint(uneven_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher fitted with ``--data.clip_seconds 2 --data.recording_pattern none``."""
    options = [f"--data.{key}={value}" for key, value in CHOSEN.items()]
    return _fit(uneven_root, cache_dir, tmp_path_factory.mktemp("fit_folders"), *options)


def test_without_the_record_the_clips_cannot_be_read(uneven_root: Path, cache_dir: Path) -> None:
    """What the commands met before they took the record: the dataset's own lengths."""
    datamodule = build_datamodule(GivenData({"root": str(uneven_root), "cache_dir": str(cache_dir)}))
    with pytest.raises(DatasetError, match="clips differ in length"):
        datamodule.spec  # noqa: B018  (what a fit reads first: the classes, rate and clip length)


def test_logits_with_only_the_root_cover_the_fits_training_split(
    checkpoint: Path, uneven_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "logits.npz"
    argv = [str(checkpoint), "--data.root", str(uneven_root), "--out", str(out), "--table", ""]
    assert asc_kd.logits.main(argv) == 0
    keys, logits, _ = load_logits(out)
    root = str(uneven_root)
    as_fit = build_datamodule(GivenData({"root": root, **CHOSEN})).frames()["train"]
    by_recording = build_datamodule(GivenData({"root": root, "clip_seconds": 2.0})).frames()["train"]
    files = list(dict.fromkeys(key.rpartition("#")[0] for key in keys))  # 2-s clips: two 1-s windows
    assert files == list(as_fit["filename"]) and logits.shape == (2 * len(files), 13)
    # The recording pattern chose the split: the default one holds out other clips.
    assert set(files) != set(by_recording["filename"])


def test_quantize_with_only_the_root_reads_the_fits_clips_and_records_them(
    checkpoint: Path, uneven_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "teacher.int8.pt"
    assert asc_kd.quantize.main([str(checkpoint), "--data.root", str(uneven_root), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())["data"]
    assert (data["clip_seconds"], data["recording_pattern"], data["cache_dir"]) == (
        2.0,
        "none",
        str(cache_dir),
    )
    # The artifact keeps them: predict reads a dataset with them, and names a contradiction.
    with pytest.raises(ConfigError) as refused:
        asc_kd.predict.main([str(out), "--data.root", str(uneven_root), "--data.segment_seconds", "2"])
    assert str(refused.value).startswith(
        f"--data.segment_seconds 2.0 contradicts {out}: it reads windows of 1.0 s"
    )


def test_a_typed_option_wins_and_is_named_in_one_line(
    checkpoint: Path, uneven_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "teacher.int8.pt"
    argv = [str(checkpoint), "--data.root", str(uneven_root), "--out", str(out), "--data.clip_seconds", "1.5"]
    with caplog.at_level(logging.WARNING, logger="asc_kd.data.options"):
        assert asc_kd.quantize.main(argv) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "asc_kd.data.options"] == [
        f"--data.clip_seconds 1.5 differs from the 2.0 that {checkpoint} was fit with: the model is "
        "scored on other clips or splits than its fit read"
    ]
    data = json.loads(out.with_suffix(".json").read_text())["data"]
    assert (data["clip_seconds"], data["recording_pattern"]) == (1.5, "none")


@pytest.mark.parametrize("command", ["logits", "quantize", "predict"])
def test_a_rate_other_than_the_models_is_refused_before_anything_is_written(
    command: str, checkpoint: Path, uneven_root: Path, tmp_path: Path
) -> None:
    main = getattr(asc_kd, command).main
    argv = [str(checkpoint), "--data.root", str(uneven_root), "--out", str(tmp_path / "out")]
    with pytest.raises(ConfigError) as refused:
        main([*argv, "--data.sample_rate", "16000"])
    assert str(refused.value) == (
        f"--data.sample_rate 16000 contradicts {checkpoint}: its front-end reads audio at 32000 Hz; "
        "leave --data.sample_rate out (it defaults to the model's)"
    )
    assert list(tmp_path.iterdir()) == []


def test_teachers_fit_on_other_clips_are_named(
    checkpoint: Path, uneven_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "other.ckpt"
    stored = read_checkpoint(checkpoint)
    stored["datamodule_hyper_parameters"]["recording_pattern"] = "x(?P<recording>.+)"
    torch.save(stored, other)
    out = tmp_path / "logits.npz"
    argv = [str(checkpoint), str(other), "--data.root", str(uneven_root), "--out", str(out), "--table", ""]
    with pytest.raises(ConfigError) as refused:
        asc_kd.logits.main(argv)
    assert str(refused.value) == (
        f"{checkpoint} was fit with --data.recording_pattern none, {other} with x(?P<recording>.+); "
        "give --data.recording_pattern to choose the clips they are run on"
    )
    assert not out.exists()
    with caplog.at_level(logging.WARNING, logger="asc_kd.data.options"):
        assert asc_kd.logits.main([*argv, "--data.recording_pattern", "none"]) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "asc_kd.data.options"] == [
        f"--data.recording_pattern none differs from the x(?P<recording>.+) that {other} was fit with: "
        "the model is scored on other clips or splits than its fit read"
    ]


def test_a_fits_held_out_split_and_predict_split_with_only_the_root(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """A fit with ``--data.validation holdout`` writes its held-out clips in its run folder: the
    logits then cover the training split without them, as the students' fit will read it."""
    root = tmp_path / "tau"  # the tiny scenes with 4 files to predict, not 180
    shutil.copytree(
        tiny_root, root, ignore=lambda folder, names: ["audio"] if folder == str(tiny_root) else []
    )
    (root / "audio").symlink_to(tiny_root / "audio")
    listed = pd.read_csv(root / "evaluation_setup" / "fold1_test.csv", sep="\t")[:4]
    listed.to_csv(root / "evaluation_setup" / "fold1_test.csv", sep="\t", index=False)
    checkpoint = _fit(root, cache_dir, tmp_path / "fit", "--data.validation", "holdout", "--data.seed", "3")
    held_out = pd.read_csv(checkpoint.parent.parent / "holdout_split.csv", sep="\t")["filename"]
    train = pd.read_csv(root / "evaluation_setup" / "fold1_train.csv", sep="\t")["filename"]
    out = tmp_path / "logits.npz"
    argv = [str(checkpoint), "--data.root", str(root), "--out", str(out), "--table", ""]
    assert asc_kd.logits.main(argv) == 0
    keys, _, _ = load_logits(out)
    assert 0 < len(held_out) < len(train) and sorted(keys) == sorted(set(train) - set(held_out))
    submission = tmp_path / "submission.csv"
    assert asc_kd.predict.main([str(checkpoint), "--data.root", str(root), "--out", str(submission)]) == 0
    assert list(pd.read_csv(submission, sep="\t")["filename"]) == list(listed["filename"])
