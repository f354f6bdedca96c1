"""``python -m asc_kd.fit``: options, config composition, a fit-then-test run, W&B offline."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import wandb
import yaml
from fit_helpers import (
    CONF,
    TINY_SYSTEM1,
    TINY_TEACHER,
    command_line,
    fit_args,
    offline_runs,
    other_audio,
    other_audio_in,
    tree_state,
    wandb_config,
    wandb_records,
    write_teacher_logits,
)

from asc_kd.augmentations import Mixup
from asc_kd.callbacks import ComplexityCheck
from asc_kd.core.command_line import run_command
from asc_kd.data.cache import _content_sample, fingerprint_files
from asc_kd.data.tau import TAU22, read_split
from asc_kd.deployment.complexity import ComplexityError
from asc_kd.fit import AscKdCLI, command, main
from asc_kd.recipes import RECIPES
from asc_kd.tasks import DistillationTask
from asc_kd.tasks.restore import read_checkpoint

pytestmark = pytest.mark.usefixtures("fit_command")

SYSTEM1_MACS = 28_840_396


def _complexity(cli: AscKdCLI) -> ComplexityCheck:
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, ComplexityCheck)]
    return callback


def test_help_documents_the_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    result = capsys.readouterr()
    for option in (
        "--config",
        "--model",
        "--data.root",
        "--data.teacher_logits",
        "--trainer.max_epochs",
        "--checkpoint.selection",
        "--checkpoint.monitor",
        "--data.layout",
        "--data.validation",
        "--complexity.allow_over_limits",
        "--ckpt_path",
        "--test",
        "--overwrite",
    ):
        assert option in result.out, option


# -- one teacher fit, shared --------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_run(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AscKdCLI:
    """A debug teacher fitted and tested through the CLI, its W&B offline run finished."""
    out = tmp_path_factory.mktemp("fit_teacher")
    with command_line("python -m asc_kd.fit"):  # finishing the run flushes its log to disk
        return main(fit_args(tiny_root, cache_dir, out, *TINY_TEACHER))


def test_fit_then_test_reports_the_last_checkpoint(teacher_run: AscKdCLI) -> None:
    trainer = teacher_run.trainer
    out = Path(trainer.default_root_dir)
    assert trainer.current_epoch == 1 and trainer.global_step == 2
    callback = trainer.checkpoint_callback
    assert callback.selection == "last" and callback.selection_label == "last"
    last = Path(callback.selected_path)
    assert last.name == "last.ckpt" and last.is_file() and out in last.parents
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no best-on-test file
    assert read_checkpoint(last)["asc_kd"]["selection"] == "last"
    assert read_checkpoint(last)["asc_kd"]["run"] == {"recipe": "teacher", "seed": 0}


def test_the_data_links_its_spec_whole_into_the_task(teacher_run: AscKdCLI) -> None:
    """The spec is computed from the dataset on disk when the DataModule is built: it is in the
    task and its checkpoint (plain data), and in no config a user edits."""
    assert teacher_run.model.spec == teacher_run.datamodule.spec == TAU22
    last = teacher_run.trainer.checkpoint_callback.selected_path
    assert read_checkpoint(last)["hyper_parameters"]["spec"] == TAU22.as_dict()
    config = yaml.safe_load((Path(teacher_run.trainer.default_root_dir) / "config.yaml").read_text())
    assert "spec" not in config["model"]["init_args"]


def test_test_metrics_after_fit(teacher_run: AscKdCLI) -> None:
    metrics = teacher_run.trainer.callback_metrics
    for key in ("test/acc", "test/macro_acc", "test/acc_seen", "test/acc_unseen", "test/acc_device_s6"):
        assert 0.0 <= metrics[key].item() <= 1.0, key
    assert math.isfinite(metrics["test/log_loss"].item())


def test_wandb_offline_run_config_holds_the_complexity(teacher_run: AscKdCLI) -> None:
    out = Path(teacher_run.trainer.default_root_dir)
    (run_dir,) = offline_runs(out)
    config = wandb_config(run_dir)
    counted = _complexity(teacher_run).result
    assert counted is not None
    for key, value in counted.summary().items():
        assert config[f"complexity/{key}"] == value, key
    assert config["complexity/input_shape"] == list(counted.input_shape)
    # The resolved CLI config is the rest of the run config.
    assert config["model"]["init_args"]["model"] == "debug"
    assert config["data"]["root"] == teacher_run.config["data"]["root"]
    assert config["trainer"]["max_epochs"] == 1


def _history_keys(run_dir: Path) -> set[str]:
    return {
        item.key or "/".join(item.nested_key)
        for record in wandb_records(run_dir)
        if record.WhichOneof("record_type") == "history"
        for item in record.history.item
    }


def test_the_run_folder_holds_config_and_a_readable_summary(teacher_run: AscKdCLI) -> None:
    folder = Path(teacher_run.trainer.default_root_dir)
    assert folder.name == "teacher-seed0"
    assert yaml.safe_load((folder / "config.yaml").read_text())["name"] == "teacher"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"] == "teacher-seed0"
    metrics = teacher_run.trainer.callback_metrics
    assert summary["metrics"]["test/acc"] == pytest.approx(float(metrics["test/acc"]))
    assert summary["complexity"] == _complexity(teacher_run).result.summary()
    assert summary["files"]["reported_checkpoint"] == str(folder / "checkpoints" / "last.ckpt")
    assert summary["files"]["selection"] == "last"
    assert summary["config"]["model"]["init_args"]["model"] == "debug"
    (run_dir,) = offline_runs(folder)
    assert json.loads((run_dir / "files" / "asc_kd_summary.json").read_text()) == summary


def test_the_learning_rate_is_logged_every_step(teacher_run: AscKdCLI) -> None:
    (run_dir,) = offline_runs(Path(teacher_run.trainer.default_root_dir))
    assert "lr-Adam" in _history_keys(run_dir)
    lrs = [
        float(item.value_json)
        for record in wandb_records(run_dir)
        if record.WhichOneof("record_type") == "history"
        for item in record.history.item
        if (item.key or "/".join(item.nested_key)) == "lr-Adam"
    ]
    assert lrs == [pytest.approx(0.003)] * 2  # tests/conf/teacher.yaml: constant 0.003, 2 steps


def test_every_logged_value_is_in_the_runs_metrics_csv(teacher_run: AscKdCLI) -> None:
    folder = Path(teacher_run.trainer.default_root_dir)
    path = folder / "csv" / "version_0" / "metrics.csv"
    assert json.loads((folder / "summary.json").read_text())["files"]["metrics_csv"] == str(path)
    metrics = pd.read_csv(path)
    assert list(metrics["lr-Adam"].dropna()) == [pytest.approx(0.003)] * 2  # as in W&B, above
    assert metrics["train/loss_step"].notna().sum() == 2  # log_every_n_steps 1, 2 steps
    assert metrics["train/loss"].notna().sum() == 1  # the mean of the one epoch
    (test_acc,) = metrics["test/acc"].dropna()
    assert test_acc == pytest.approx(float(teacher_run.trainer.callback_metrics["test/acc"]))
    (run_dir,) = offline_runs(folder)  # beside W&B, not instead of it
    assert {"lr-Adam", "train/loss", "val/acc", "test/acc"} <= _history_keys(run_dir)


def test_the_learning_rate_is_logged_every_epoch_however_short(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # 2 steps an epoch, a log every 5 steps: Lightning alone would log the learning rate once.
    args = [
        *fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER),
        "--trainer.logger",
        "false",
        "--test",
        "false",
    ]
    main([*args, "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "5"])
    metrics = pd.read_csv(tmp_path / "teacher-seed0" / "csv" / "version_0" / "metrics.csv")
    logged = metrics.dropna(subset=["lr-Adam"])
    assert list(logged["step"]) == [0, 2, 4]  # each epoch's first step
    assert list(logged["lr-Adam"]) == [pytest.approx(0.003)] * 3


def test_a_student_logs_its_training_loss_every_epoch_however_short(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # 3 batches an epoch, a log every 5 steps: one step-level value in 6 steps, but every epoch's mean.
    logits = write_teacher_logits(tiny_root, tmp_path / "ensemble_train.npz")
    recipe = (RECIPES / "base.yaml", RECIPES / "students" / "kd.yaml", CONF / "student.yaml")
    args = [
        *fit_args(tiny_root, cache_dir, tmp_path, *recipe),
        *("--name", "kd_debug", "--model.init_args.model", "debug", "--data.teacher_logits", str(logits)),
        *("--trainer.limit_train_batches", "3", "--trainer.max_epochs", "2"),
        *("--trainer.log_every_n_steps", "5", "--trainer.logger", "false", "--test", "false"),
    ]
    main(args)
    metrics = pd.read_csv(tmp_path / "kd_debug-seed0" / "csv" / "version_0" / "metrics.csv")
    epochs = metrics.dropna(subset=["train/loss"])
    assert list(epochs["epoch"]) == [0, 1]
    for term in ("label_loss", "kd_loss"):
        assert epochs[f"train/{term}"].notna().all() and (epochs[f"train/{term}"] > 0).all()
    # Means are linear: each epoch's mean loss is kd.yaml's 0.1 x label + 0.9 x KD of the means.
    expected = 0.1 * epochs["train/label_loss"] + 0.9 * epochs["train/kd_loss"]
    assert list(epochs["train/loss"]) == pytest.approx(list(expected), rel=1e-5)
    assert list(metrics.dropna(subset=["train/loss_step"])["step"]) == [4]  # the 5th step


def test_the_wandb_run_is_named_after_recipe_and_seed(teacher_run: AscKdCLI) -> None:
    assert teacher_run.trainer.logger.experiment.name == "teacher-seed0"


def test_each_seed_has_its_own_folder() -> None:
    from jsonargparse import Namespace

    from asc_kd.training.fit import run_folder

    config = Namespace({"name": "kd_system1", "seed_everything": 3, "trainer.default_root_dir": "runs"})
    assert run_folder(config) == Path("runs/kd_system1-seed3")
    config["seed_everything"] = 4
    assert run_folder(config) == Path("runs/kd_system1-seed4")
    config = Namespace({"name": None, "model.init_args.model": "mypkg.models:TinyCNN", "seed_everything": 0})
    assert run_folder(config) == Path("outputs/TinyCNN-seed0")
    # A run folder given as the root is not nested again (the pipeline passes it).
    config = Namespace({"name": "x", "seed_everything": 1, "trainer.default_root_dir": "runs/x-seed1"})
    assert run_folder(config) == Path("runs/x-seed1")


# -- a distillation recipe composed from four files ---------------------------------------------


def test_kd_recipe_composes_with_logits_file(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    logits = write_teacher_logits(tiny_root, tmp_path / "ensemble_train.npz")
    args = fit_args(tiny_root, cache_dir, tmp_path, *TINY_SYSTEM1)
    cli = main([*args, "--data.teacher_logits", str(logits)])

    task = cli.model
    assert type(task) is DistillationTask
    assert task.hparams.model == "system1"  # system1.yaml
    assert task.hparams.temperature == 3.0 and task.hparams.label_weight == 0.1  # kd.yaml
    assert task.hparams.warmup_epochs == 0  # tests/conf/student.yaml, composed last
    assert cli.datamodule.hparams.teacher_logits == str(logits)
    mixups = [c for c in cli.trainer.callbacks if isinstance(c, Mixup)]
    assert len(mixups) == 1 and mixups[0].alpha == 0.3
    counted = _complexity(cli).result
    assert counted.macs == SYSTEM1_MACS and counted.within_limits
    assert cli.trainer.global_step == 2
    assert Path(cli.trainer.checkpoint_callback.selected_path).is_file()
    assert "test/acc" in cli.trainer.callback_metrics
    assert task.frontend.preemphasis == 0.97  # kd.yaml's CP-JKU front-end


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model.init_args.lrr", "0.1"],
            "command line: unknown option --model.init_args.lrr; did you mean --model.init_args.lr?",
        ),
        (
            ["--data.batchsize", "16"],
            "command line: unknown option --data.batchsize; did you mean --data.batch_size?",
        ),
        (
            ["--config", "typo.yaml"],
            "{tmp}/typo.yaml: unknown key 'max_epoch' under 'trainer'; did you mean max_epochs?",
        ),
        (
            ["--config", "model_typo.yaml"],
            "{tmp}/model_typo.yaml: unknown key 'temprature' under 'model.init_args'; "
            "did you mean temperature?",
        ),
        (
            ["--config", "bad_value.yaml"],
            "{tmp}/bad_value.yaml: trainer.max_epochs = two is not valid (expected int)",
        ),
        (
            ["--config", "old_config.yaml"],
            "{tmp}/old_config.yaml: data.frontend is an option of the task: "
            "move it to model.init_args.frontend",  # the file's first wrong key
        ),
        (
            ["--data.frontend_kwargs.freqm", "0"],
            "command line: --data.frontend_kwargs.freqm is an option of the task: "
            "give it as --model.init_args.frontend_kwargs.freqm",
        ),
    ],
    ids=[
        "model-cli",
        "data-cli",
        "trainer-file",
        "model-file",
        "value-file",
        "task-key-file",
        "task-key-cli",
    ],
)
def test_a_wrong_key_or_value_is_one_line_naming_where_and_what(
    extra: list[str],
    message: str,
    tiny_root: Path,
    cache_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from asc_kd.core.command_line import run_command
    from asc_kd.fit import command

    (tmp_path / "typo.yaml").write_text("trainer:\n  max_epoch: 1\n")
    (tmp_path / "model_typo.yaml").write_text(
        "model:\n  class_path: DistillationTask\n  init_args:\n    temprature: 2\n"
    )
    (tmp_path / "bad_value.yaml").write_text("trainer:\n  max_epochs: two\n")
    # A run's config.yaml as fits wrote it when the data section named the front-end.
    (tmp_path / "old_config.yaml").write_text(
        "data:\n  frontend: passt_mel\n  frontend_kwargs:\n    timem: 20\n"
    )
    extra = [str(tmp_path / arg) if arg.endswith(".yaml") else arg for arg in extra]
    code = run_command(command, [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), *extra])
    on_the_command_line = message.startswith("command line: ")  # argparse's exit code 2, no traceback
    assert code == (2 if on_the_command_line else 1)
    assert capsys.readouterr().err.splitlines() == [
        "error: " + message.format(tmp=tmp_path),
        *([] if on_the_command_line else ["(ASC_KD_DEBUG=1 shows the traceback)"]),
    ]  # no usage: that is --help's
    assert not (tmp_path / "teacher-seed0").exists()  # nothing started


def test_complexity_stops_an_over_limit_model(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    args = [
        *fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER),
        "--model.init_args.model_kwargs",
        '{"width": 64}',
    ]
    with pytest.raises(ComplexityError, match=r"model 'debug' exceeds the DCASE limits: MACs") as error:
        main(args)
    assert str(error.value).endswith("; to train it anyway: --complexity.allow_over_limits true")
    assert not (tmp_path / "teacher-seed0").exists()  # no empty run folder left behind
    wandb.finish()

    cli = main([*args, "--complexity.allow_over_limits", "true", "--test", "false"])
    counted = _complexity(cli).result
    assert counted is not None and not counted.within_limits
    assert cli.trainer.state.finished and cli.trainer.global_step == 2


def test_each_fit_in_one_process_gets_its_own_wandb_run(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    runs = []
    for name in ("first", "second"):
        args = fit_args(tiny_root, cache_dir, tmp_path / name, *TINY_TEACHER)
        cli = main([*args, "--test", "false"])
        runs.append(cli.trainer.logger.experiment.id)
    assert runs[0] != runs[1]
    assert len(offline_runs(tmp_path / "second" / "teacher-seed0")) == 1


# -- resuming continues the same W&B run ---------------------------------------------------------


def _history(run_dir: Path) -> list[dict[str, float]]:
    """The logged rows of an offline run: ``_step`` and ``epoch`` of each."""
    rows = []
    for record in wandb_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if key in ("_step", "epoch"):
                    row[key] = float(item.value_json)
            rows.append(row)
    return rows


def _run_id(run_dir: Path) -> str:
    """The W&B run id an offline run folder logs to (its ``run-<id>.wandb``)."""
    (log,) = run_dir.glob("run-*.wandb")
    return log.stem.removeprefix("run-")


def test_resume_last_finds_the_run_folder_and_continues_the_wandb_run(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER)
    first = main([*args, "--test", "false"])
    folder = tmp_path / "teacher-seed0"  # tests/conf/teacher.yaml's name and seed 0
    assert Path(first.trainer.default_root_dir) == folder
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert str(folder) in capsys.readouterr().out  # fit says where its files went
    resumed = main([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last", "--test", "false"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 4
    runs = sorted(offline_runs(folder), key=lambda run: run.stat().st_mtime_ns)
    # W&B offline writes the resumed part into a second folder under the same run id;
    # `wandb sync` uploads both into one run. The id is read from each folder's log
    # (run-<id>.wandb): the folder's name gains a "-1" when both parts start in the same second.
    assert len(runs) == 2
    assert [_run_id(run) for run in runs] == [first.trainer.logger.version] * 2
    before, after = (_history(run) for run in runs)
    assert {row["epoch"] for row in before} == {0} and {row["epoch"] for row in after} == {1}
    # The step count continues: nothing of the first part is logged again under its steps.
    assert max(row["_step"] for row in before) < min(row["_step"] for row in after)
    for run in runs:
        assert (run / "files" / "asc_kd_config.yaml").is_file()
        assert wandb_config(run)["model"]["init_args"]["model"] == "debug"


def test_a_new_fit_never_mixes_into_a_finished_run(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asc_kd.core.command_line import run_command
    from asc_kd.fit import command

    args = [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), "--test", "false"]
    first = main(args)
    folder = tmp_path / "teacher-seed0"
    (first_run,) = offline_runs(folder)

    def outputs() -> dict[str, tuple[int, int]]:  # W&B's own logs may still be flushed meanwhile
        return {path: state for path, state in tree_state(folder).items() if not path.startswith("wandb/")}

    before = outputs()
    capsys.readouterr()
    assert run_command(command, args) == 1
    error = capsys.readouterr().err.splitlines()[0]
    assert error == (
        f"error: {folder} holds a finished run (summary.json): resume it with --ckpt_path last, fit it "
        "anew with --overwrite true (empties the folder), or give another --name or --seed_everything"
    )
    assert outputs() == before and offline_runs(folder) == [first_run]  # nothing written, nothing started

    second = main([*args, "--overwrite", "true"])
    (second_run,) = offline_runs(folder)  # the first run's W&B files are gone with it
    assert second_run != first_run
    assert second.trainer.logger.experiment.id != first.trainer.logger.experiment.id
    assert sorted(p.name for p in (folder / "csv").iterdir()) == ["version_0"]
    assert json.loads((folder / "summary.json").read_text())["files"]["wandb_run"].startswith(str(second_run))


def test_resume_from_a_last_ckpt_path(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    args = [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), "--test", "false"]
    main([*args, "--trainer.logger", "false"])
    last = tmp_path / "teacher-seed0" / "checkpoints" / "last.ckpt"
    resumed = main(
        [*args, "--trainer.logger", "false", "--trainer.max_epochs", "2", "--ckpt_path", str(last)]
    )
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 4


def _fit_once(root: Path, cache_dir: Path, out: Path) -> tuple[list[str], Path]:
    """A tiny teacher's fit on ``root`` without test or logger: its arguments and its last.ckpt."""
    args = [*fit_args(root, cache_dir, out, *TINY_TEACHER), "--test", "false", "--trainer.logger", "false"]
    main(args)
    return args, out / "teacher-seed0" / "checkpoints" / "last.ckpt"


def test_resume_on_changed_data_is_refused_unless_asked(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, last = _fit_once(tiny_root, cache_dir, tmp_path)
    recorded = read_checkpoint(last)["asc_kd"]["dataset_content_hash"]
    other = other_audio(tiny_root, tmp_path / "other")
    resume = [*args, "--data.root", str(other), "--trainer.max_epochs", "2", "--ckpt_path", "last"]
    assert run_command(command, resume) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert line.startswith(
        f"error: --ckpt_path {last} was trained on other data than {other} holds now (dataset content "
        f"hash {recorded[:12]} then, "
    )
    assert recorded[:12] not in line.split(" then, ")[1]
    assert "; 360 of 360 clips hold other audio: " in line  # every clip is played backwards
    assert line.endswith("or on this data on purpose with --checkpoint.resume_on_changed_data true")
    assert read_checkpoint(last)["epoch"] == 0  # nothing was trained or written
    resumed = main([*resume, "--checkpoint.resume_on_changed_data", "true"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 4
    # The checkpoint now records the data it was resumed on: resuming there again needs no flag.
    same = main([*args, "--data.root", str(other), "--trainer.max_epochs", "3", "--ckpt_path", "last"])
    assert same.trainer.current_epoch == 3


@pytest.mark.slow
def test_resume_on_a_clip_rewritten_at_the_same_size_is_refused_naming_it(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sampled fingerprint (names, sizes, 64 clips' bytes) misses a clip outside its sample
    rewritten at the same size; the content hash the cache build took does not."""
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    args, last = _fit_once(data, cache_dir, tmp_path)
    record = read_checkpoint(last)["asc_kd"]
    names = [*read_split(data, "train")["filename"], *read_split(data, "test")["filename"]]
    rewritten = next(name for name in names if name not in _content_sample(names))
    other_audio_in(data / rewritten)
    assert fingerprint_files(data, names) == record["dataset_fingerprint"]  # the fast path sees nothing
    assert run_command(command, [*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert line.startswith(
        f"error: --ckpt_path {last} was trained on other data than {data} holds now (dataset content "
        f"hash {record['dataset_content_hash'][:12]} then, "
    )
    assert f"; 1 of 360 clips hold other audio: {rewritten}); resume on the data it was trained on" in line
    assert read_checkpoint(last)["epoch"] == 0  # nothing was trained or written


def test_resume_last_without_a_checkpoint_starts_fresh_and_says_so(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), "--test", "false"]
    cli = main([*args, "--trainer.logger", "false", "--ckpt_path", "last"])
    assert cli.trainer.global_step == 2
    assert "no " + str(tmp_path / "teacher-seed0" / "checkpoints" / "last.ckpt") in caplog.text


def test_wandb_run_holds_the_test_confusion_matrix_image(teacher_run: AscKdCLI) -> None:
    (run_dir,) = offline_runs(Path(teacher_run.trainer.default_root_dir))
    keys = _history_keys(run_dir)
    assert "test/confusion_matrix/_type" in keys  # W&B stores an image as a nested record
    assert list((run_dir / "files" / "media").rglob("*confusion_matrix*.png"))


def test_data_sample_rate_is_linked_to_the_front_end(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    from asc_kd.data.datamodule import SceneDataModule
    from asc_kd.tasks import ClassificationTask

    args = [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), "--data.sample_rate", "16000"]
    cli = AscKdCLI(ClassificationTask, SceneDataModule, subclass_mode_model=True, run=False, args=args)
    assert cli.datamodule.hparams.sample_rate == 16000
    assert cli.model.hparams.sample_rate == 16000 and cli.model.frontend.sample_rate == 16000
    wandb.finish()


# -- checkpoint selection -----------------------------------------------------------------------


def test_selecting_the_best_epoch_on_the_test_split_needs_an_opt_in(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    args = [*fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER), "--checkpoint.selection", "best"]
    with pytest.raises(ValueError, match="allow_selection_on_test"):
        main(args)
    wandb.finish()
    cli = main([*args, "--checkpoint.allow_selection_on_test", "true", "--test", "false"])
    callback = cli.trainer.checkpoint_callback
    assert callback.selection_label == "best-on-test (biased)"
    best = Path(callback.selected_path)
    assert (
        best.name.startswith("best-")
        and read_checkpoint(best)["asc_kd"]["selection"] == "best-on-test (biased)"
    )


def test_best_on_a_held_out_split(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    args = [
        *fit_args(tiny_root, cache_dir, tmp_path, *TINY_TEACHER),
        "--data.validation",
        "holdout",
        "--checkpoint.selection",
        "best",
        "--trainer.limit_val_batches",
        "1.0",
    ]
    cli = main(args)
    callback = cli.trainer.checkpoint_callback
    assert callback.selection_label == "best-val-holdout"
    assert read_checkpoint(callback.selected_path)["asc_kd"]["selection"] == "best-val-holdout"
    held = pd.read_csv(tmp_path / "teacher-seed0" / "holdout_split.csv", sep="\t")["filename"]
    assert len(held) == len(cli.datamodule.datasets["val"]) > 0
    assert not set(held) & set(cli.datamodule.datasets["train"].frame["filename"])
    assert "test/acc" in cli.trainer.callback_metrics


# -- other layouts ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.xdist_group(name="tau20")
@pytest.mark.parametrize("layout", ["folders", "tau20"])
def test_a_student_recipe_trains_on_other_layouts(
    layout: str, folders_root: Path, tau20_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    root = folders_root if layout == "folders" else tau20_root
    configs = (RECIPES / "base.yaml", RECIPES / "students" / "system1.yaml", CONF / "student.yaml")
    args = [*fit_args(root, cache_dir, tmp_path, *configs), "--data.layout", layout]
    cli = main([*args, "--trainer.callbacks", "[]"])
    task, spec = cli.model, cli.datamodule.spec
    assert list(task.classes) == list(spec.classes) and len(task.classes) == (
        13 if layout == "folders" else 10
    )
    assert task.model.head[0].out_channels == len(spec.classes)
    metrics = cli.trainer.callback_metrics
    assert "test/file/acc" in metrics  # clips longer than the 1-s windows are scored per file too
    if layout == "tau20":
        assert "test/file/acc_unseen" in metrics
