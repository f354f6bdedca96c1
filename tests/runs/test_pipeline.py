"""``python -m asc_kd.pipeline`` end to end on the tiny scenes: seeds, the ensemble, tables with
mean ± std and the checkpoint each row reports, manifest, resume, force."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fit_helpers import (
    PIPELINE_SYSTEM,
    PIPELINE_TEACHERS,
    REPO,
    TinyPipeline,
    command_line,
    copy_pipeline,
    offline_run,
    pipeline_argv,
    tree_state,
    wandb_records,
)

import asc_kd.deployment.quantize
import asc_kd.runs.pipeline
import asc_kd.training.logits
from asc_kd.core.errors import ConfigError
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.deployment.complexity import MAX_PARAM_BYTES
from asc_kd.pipeline import DEMO_TEACHERS, build_parser, main, parse_args
from asc_kd.runs.pipeline import Pipeline, PipelineConfig
from asc_kd.runs.resources import ExecutorConfig
from asc_kd.tracking.lineage import ARTIFACT_TYPES

#: One worker builds the session's tiny pipeline for every test that reads it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="pipeline")]

STEMS = [Path(recipe).stem for recipe in PIPELINE_TEACHERS]
GROUPS = ("real", "seen", "unseen")
METRICS = ["accuracy", "macro_accuracy", "log_loss", *(f"accuracy_{g}" for g in GROUPS)]
SUMMARY = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
TABLE1_COLUMNS = ["teacher", "precision", "selection", "seeds", *SUMMARY]
TABLE2_COLUMNS = [
    "system",
    "precision",
    "selection",
    "seeds",
    *SUMMARY,
    "mem_bytes",
    "artifact_bytes",
    "params",
    "params_fused",
    "macs",
]
SYSTEM1_MACS = 28_840_396
SYSTEM1_PARAMS = 127_684


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "pipeline.json").read_text())


def test_manifest_records_every_run(tiny_pipeline: TinyPipeline) -> None:
    manifest = _manifest(tiny_pipeline.out)
    teachers = [f"teacher:{stem}-seed0" for stem in STEMS]
    students = [f"student:{PIPELINE_SYSTEM}-seed{s}" for s in (0, 1)]
    int8 = [f"int8:{PIPELINE_SYSTEM}-seed{s}" for s in (0, 1)]
    assert [key for key in manifest if key != "wandb_group"] == [*teachers, "logits", *students, *int8]
    for key in (*teachers, *students):
        entry = manifest[key]
        assert Path(entry["checkpoint"]).is_file() and Path(entry["checkpoint"]).name == "last.ckpt"
        assert entry["selection"] == "last"
        assert 0.0 <= entry["test"]["test/acc"] <= 1.0, key
    assert Path(manifest["logits"]["file"]) == tiny_pipeline.out / "teachers" / "ensemble_train.npz"
    # Each (recipe, seed) run keeps its own folder, config and seed.
    for stem in STEMS:
        assert (tiny_pipeline.out / "teachers" / f"{stem}-seed0" / "config.yaml").is_file()
    for seed in (0, 1):
        config = (
            tiny_pipeline.out / "students" / f"{PIPELINE_SYSTEM}-seed{seed}" / "config.yaml"
        ).read_text()
        assert f"seed_everything: {seed}" in config
    checkpoints = {manifest[k]["checkpoint"] for k in students}
    assert len(checkpoints) == 2  # two seeds, two checkpoints, nothing overwritten


#: A job's line when it ends: state, run, elapsed time, test accuracy (``asc_kd.runs.record.job_line``).
ELAPSED = r"(\d+ s|\d+ min \d+ s)"


def test_every_job_says_when_it_ends_how_long_it_took_and_its_accuracy(tiny_pipeline: TinyPipeline) -> None:
    """Each stage line is followed by its job's line: state, run, elapsed time, test accuracy."""
    said = [line for line in tiny_pipeline.said if line.startswith(("stage ", "done  "))]
    expected = [
        line
        for stage, run, metric in [
            *[(f"teachers: fitting {stem}, seed 0", f"teacher {stem} seed 0", "test") for stem in STEMS],
            ("logits: ensemble of teacher", "logits", "ensemble test"),
            *[
                (
                    f"students: fitting {PIPELINE_SYSTEM}, seed {s}",
                    f"student {PIPELINE_SYSTEM} seed {s}",
                    "test",
                )
                for s in (0, 1)
            ],
            *[
                (f"quantize: {PIPELINE_SYSTEM}, seed {s}", f"int8 {PIPELINE_SYSTEM} seed {s}", "int8 test")
                for s in (0, 1)
            ],
        ]
        for line in (re.escape(f"stage {stage}"), rf"done  {run}  {ELAPSED}  {metric} accuracy [01]\.\d{{3}}")
    ]
    assert len(said) == len(expected), said
    for line, pattern in zip(said, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def _alias(artifact: dict[str, Any]) -> str:
    (alias,) = [a for a in artifact["aliases"] if a.startswith("sha256-")]
    return alias


def test_wandb_runs_form_one_group_with_lineage(tiny_pipeline: TinyPipeline) -> None:
    runs = [offline_run(folder) for folder in sorted(tiny_pipeline.out.rglob("offline-run-*"))]
    group = _manifest(tiny_pipeline.out)["wandb_group"]
    assert {run.group for run in runs} == {group} and group.startswith("out-")
    jobs = sorted(run.job_type for run in runs)
    # system1's QuantizationExport made the int8 models in the student runs: no quantize runs.
    assert jobs == ["logits", "student", "student", "tables", "teacher", "teacher"]
    # (W&B also logs each wandb.Table as a "run_table" artifact of its own.)
    logged = {(a["type"], a["name"]): a for run in runs for a in run.artifacts if a["type"] in ARTIFACT_TYPES}
    assert sorted(logged) == sorted(
        [
            *[("model", f"model-{stem}-seed0") for stem in STEMS],
            *[("model", f"model-{PIPELINE_SYSTEM}-seed{s}") for s in (0, 1)],
            ("teacher-logits", "teacher-logits-train"),
            *[("int8-model", f"int8-{PIPELINE_SYSTEM}-seed{s}") for s in (0, 1)],
            ("results-table", "table1"),
            ("results-table", "table2"),
        ]
    )

    def inputs(job: str) -> list[list[tuple[str, str]]]:
        return [
            [(item["name"], item["alias"]) for item in run.config.get("asc_kd_inputs", [])]
            for run in runs
            if run.job_type == job
        ]

    def ref(kind: str, name: str) -> tuple[str, str]:
        return name, _alias(logged[(kind, name)])

    # Teacher runs -> logits: the ensemble teacher's checkpoint, the very version its run logged.
    assert inputs("logits") == [[ref("model", f"model-{STEMS[0]}-seed0")]]
    logits = logged[("teacher-logits", "teacher-logits-train")]
    assert [(i["name"], i["alias"]) for i in logits["metadata"]["inputs"]] == inputs("logits")[0]
    assert logits["metadata"]["dataset_fingerprint"] and logits["metadata"]["split"] == "train"
    # Logits -> students -> int8 models and Table 2.
    assert inputs("student") == [[ref("teacher-logits", "teacher-logits-train")]] * 2
    (tables,) = inputs("tables")
    for seed in (0, 1):
        assert ref("model", f"model-{PIPELINE_SYSTEM}-seed{seed}") in tables
        assert ref("int8-model", f"int8-{PIPELINE_SYSTEM}-seed{seed}") in tables
    int8 = logged[("int8-model", f"int8-{PIPELINE_SYSTEM}-seed0")]
    assert int8["metadata"]["mem_bytes"] == SYSTEM1_PARAMS and "acc" in int8["metadata"]["metrics"]
    run = f"{PIPELINE_SYSTEM}-seed0"  # the artifact is named after its run (int8_name)
    assert sorted(int8["files"]) == [f"{run}.int8.json", f"{run}.int8.pt"]
    assert sorted(logged[("results-table", "table2")]["files"]) == [
        "table2.csv",
        "table2.md",
        "table2_seeds.csv",
    ]
    # The dashboards: tables, per-device bars, per-layer complexity.
    keys = {run.job_type: set() for run in runs}
    for run in runs:
        for record in wandb_records(run.folder):
            if record.WhichOneof("record_type") == "history":
                keys[run.job_type] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    assert "table1/_type" in keys["logits"] and "table2/_type" in keys["tables"]
    assert "test/device_accuracy_table/_type" in keys["student"]  # the bar chart's data
    assert "complexity/layers/_type" in keys["student"]


def test_table1_lists_teachers_and_the_ensemble(tiny_pipeline: TinyPipeline) -> None:
    table = pd.read_csv(tiny_pipeline.out / "table1.csv")
    assert list(table.columns) == TABLE1_COLUMNS
    assert list(table["teacher"]) == [*STEMS, f"ensemble of 1 ({STEMS[0]})"]  # --ensemble picks one
    assert (table["seeds"] == 1).all() and table["accuracy_std"].isna().all()
    assert (table["selection"] == "last").all()
    assert (table["precision"] == "fp32").all()  # the default, whatever the host's bf16
    assert table[[f"{m}_mean" for m in METRICS]].notna().all().all()
    seeds = pd.read_csv(tiny_pipeline.out / "table1_seeds.csv")
    assert list(seeds["teacher"]) == list(table["teacher"])
    markdown = (tiny_pipeline.out / "table1.md").read_text()
    shown = [c.removesuffix("_mean") for c in TABLE1_COLUMNS if not c.endswith("_std")]  # mean ± std
    assert markdown.startswith("# Table 1") and "| " + " | ".join(shown) + " |" in markdown
    assert "SYNTHETIC" in markdown.splitlines()[0]  # the tiny root was generated


def test_the_ensemble_logits_are_the_ensemble_teachers_only(tiny_pipeline: TinyPipeline) -> None:
    from asc_kd.data.teacher_logits import load_logits

    _, _, metadata = load_logits(tiny_pipeline.out / "teachers" / "ensemble_train.npz")
    assert [t["name"] for t in metadata["teachers"]] == [STEMS[0]]


def test_table2_gives_mean_and_std_over_seeds(tiny_pipeline: TinyPipeline) -> None:
    table = pd.read_csv(tiny_pipeline.out / "table2.csv")
    assert list(table.columns) == TABLE2_COLUMNS
    assert list(zip(table["system"], table["precision"], strict=True)) == [
        (PIPELINE_SYSTEM, "fp32"),
        (PIPELINE_SYSTEM, "int8"),
    ]
    assert (table["seeds"] == 2).all() and (table["selection"] == "last").all()
    seeds = pd.read_csv(tiny_pipeline.out / "table2_seeds.csv")
    assert sorted(seeds["seed"].unique()) == [0, 1] and len(seeds) == 4
    for precision, rows in seeds.groupby("precision"):
        row = table.set_index("precision").loc[precision]
        for metric in METRICS:
            assert row[f"{metric}_mean"] == pytest.approx(rows[metric].mean()), metric
            assert row[f"{metric}_std"] == pytest.approx(rows[metric].std(ddof=1), nan_ok=True), metric
    rows = table.set_index("precision")
    assert rows.loc["int8", "mem_bytes"] == SYSTEM1_PARAMS <= MAX_PARAM_BYTES  # MEM: params x 1 byte
    assert rows.loc["int8", "artifact_bytes"] == 128_960
    assert rows.loc["fp32", "mem_bytes"] == 4 * SYSTEM1_PARAMS
    assert (table["macs"] == SYSTEM1_MACS).all() and (table["params_fused"] == 127_046).all()
    markdown = (tiny_pipeline.out / "table2.md").read_text()
    assert markdown.startswith("# Table 2") and "SYNTHETIC" in markdown
    assert f"{SYSTEM1_MACS:,}" in markdown


def test_int8_artifact_and_report(tiny_pipeline: TinyPipeline) -> None:
    report = _manifest(tiny_pipeline.out)[f"int8:{PIPELINE_SYSTEM}-seed0"]
    artifact = tiny_pipeline.out / "students" / f"{PIPELINE_SYSTEM}-seed0.int8.pt"
    assert Path(report["artifact"]) == artifact and artifact.is_file()
    written = json.loads(artifact.with_suffix(".json").read_text())
    assert written == {k: v for k, v in report.items() if k not in ("selection", "job")}
    assert report["macs"] == SYSTEM1_MACS and report["mem_bytes"] <= MAX_PARAM_BYTES
    for precision in ("fp32", "int8"):
        confusion = report[precision]["confusion"]
        assert len(confusion) == 10 and all(len(row) == 10 for row in confusion)


def test_dataset_root_is_left_alone(tiny_pipeline: TinyPipeline) -> None:
    assert tree_state(tiny_pipeline.root) == tiny_pipeline.root_before


# -- resume and force ---------------------------------------------------------------------------


def _refuse(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} ran although its output exists")

    return refuse


def test_second_run_skips_every_stage(tiny_pipeline: TinyPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tiny_pipeline.out
    names = ("pipeline.json", "table1.csv", "table2.csv")
    before = {name: (out / name).read_bytes() for name in names}
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")}
    monkeypatch.setattr(asc_kd.runs.pipeline, "fit_run", _refuse("fit_run"))
    monkeypatch.setattr(asc_kd.runs.pipeline, "logits_stage", _refuse("logits_stage"))
    monkeypatch.setattr(asc_kd.runs.pipeline, "quantize_stage", _refuse("quantize_stage"))
    with command_line("python -m asc_kd.pipeline"):
        assert main(tiny_pipeline.argv) == 0
    for name, content in before.items():
        assert (out / name).read_bytes() == content, name
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")} == stamps


def _wrap_stage_functions(monkeypatch: pytest.MonkeyPatch, wrap: Any) -> None:
    """Replace the logits export and the int8 quantization by ``wrap(stage, function)``."""
    for module, name, stage in (  # where the stage functions call them
        (asc_kd.training.logits, "export_logits", "logits"),
        (asc_kd.deployment.quantize, "quantize_task", "quantize"),
    ):
        monkeypatch.setattr(module, name, wrap(stage, getattr(module, name)))


def _copy_with_recorded_fits(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch
) -> tuple[Path, list[str]]:
    """A copy of the finished pipeline whose fits return the first run's results (by run folder),
    so a test sees which stages ran without training again; everything else runs for real."""
    out = copy_pipeline(tiny_pipeline.out, tmp_path / "out")
    # The first run's results, its files included (a forced stage empties the copy's run folders).
    fitted = {
        Path(v["checkpoint"]).parents[1].name: v for v in _manifest(tiny_pipeline.out).values() if "test" in v
    }
    calls: list[str] = []

    def fit(config_file: Path, resume: bool) -> dict[str, Any]:
        calls.append(config_file.parent.name)
        return {k: v for k, v in fitted[config_file.parent.name].items() if k not in ("name", "seed")}

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(asc_kd.runs.pipeline, "fit_run", fit)
    _wrap_stage_functions(monkeypatch, counted)
    return out, calls


def test_force_redoes_every_stage(tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    (out / "pipeline.json").write_text(json.dumps({**_manifest(out), "stale": "entry"}))
    logits = out / "teachers" / "ensemble_train.npz"
    logits_stamp = logits.stat().st_mtime_ns
    (out / "table2.csv").unlink()
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force")
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    students = [f"{PIPELINE_SYSTEM}-seed{s}" for s in (0, 1)]
    assert calls == [*(f"{s}-seed0" for s in STEMS), "logits", *students, "quantize", "quantize"]
    manifest = _manifest(out)
    assert "stale" not in manifest
    assert logits.stat().st_mtime_ns != logits_stamp  # rewritten, not just recorded
    assert manifest["logits"]["file"] == str(logits)
    artifact = out / "students" / f"{PIPELINE_SYSTEM}-seed0.int8.pt"
    assert manifest[f"int8:{PIPELINE_SYSTEM}-seed0"]["artifact"] == str(artifact)
    assert (out / "table2.csv").is_file()


def test_force_fits_anew_over_the_finished_runs(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch
) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    recorded, seen = asc_kd.runs.pipeline.fit_run, []

    def fit(config_file: Path, resume: bool) -> dict[str, Any]:
        seen.append((resume, sorted(path.name for path in config_file.parent.iterdir())))
        return recorded(config_file, resume)

    monkeypatch.setattr(asc_kd.runs.pipeline, "fit_run", fit)
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force", "--stages", "students")
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    assert calls == [f"{PIPELINE_SYSTEM}-seed{s}" for s in (0, 1)]
    # Each fit starts from epoch 0 in a folder holding only its record and the config it is handed.
    assert seen == [(False, [".run.json.lock", "fit_config.yaml", "run.json", "run.json.lock"])] * 2


def test_the_data_options_are_the_fits_and_reach_every_fit(tmp_path: Path) -> None:
    """``--data.*`` before ``--`` go, typed, after the pipeline's root and held-out split, so a
    given ``--data.holdout_file`` would win; only the demo root gets synthetic scenes. A fit is
    handed settings by key, then the options after ``--``, never a command line the pipeline
    made."""
    held = str(tmp_path / "holdout_split.csv")
    given = ["--data.root", "my_scenes", "--data.layout", "folders", "--data.validation=holdout"]
    config = parse_args(["--out", str(tmp_path), *given, "--quiet", "--", "--trainer.devices", "2"])
    assert config.data == {"root": "my_scenes", "layout": "folders", "validation": "holdout"}
    assert config.root == "my_scenes" and config.fit_args == ["--trainer.devices", "2"]
    pipeline = Pipeline(config)
    settings = pipeline._fit_settings(pipeline.student_runs[0])
    assert {key: value for key, value in settings.items() if key.startswith("data.")} == {
        "data.root": "my_scenes",
        "data.holdout_file": held,
        "data.layout": "folders",
        "data.validation": "holdout",
    }
    assert settings["trainer.enable_progress_bar"] is False
    resolved = pipeline.resolved[pipeline.student_runs[0]]
    assert resolved["trainer"]["devices"] == "2" and resolved["data"]["validation"] == "holdout"
    demo = Pipeline(parse_args(["--out", str(tmp_path)]))
    assert demo.config.data == {} and demo.config.root == "data/synthetic"
    assert demo._data() == {"root": "data/synthetic", "generate_synthetic": True, "holdout_file": held}
    no_demo = Pipeline(parse_args(["--out", str(tmp_path), "--no-demo"]))
    assert "generate_synthetic" not in no_demo._data()


def test_the_options_default_to_the_config_classes(tmp_path: Path) -> None:
    """Defaults are declared once, at ``PipelineConfig`` and ``ExecutorConfig``: the command line
    that gives nothing makes the config of their defaults (with the demo's teachers)."""
    defaults = build_parser().get_defaults()
    config = PipelineConfig()
    for key in ("out", "demo", "ensemble", "teacher_logits", "student_config", "students", "stages"):
        assert defaults[key] == getattr(config, key), key
    for key in ("max_epochs", "force", "quiet", "wandb", "wandb_project", "wandb_group", "detach"):
        assert defaults[key] == getattr(config, key), key
    assert defaults["seeds"] == config.teacher_seeds == config.student_seeds
    assert (defaults["executor"], defaults["max_parallel"]) == (
        ExecutorConfig.executor,
        ExecutorConfig.max_parallel,
    )
    assert parse_args([]) == PipelineConfig(teachers=DEMO_TEACHERS)


@pytest.mark.parametrize("option", ["--root", "--cache-dir=cache"])
def test_a_data_option_without_data_is_refused_with_its_name(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--out", str(tmp_path), option, "x"])
    assert exit_info.value.code == 2
    fit_name = "--data.root" if option == "--root" else "--data.cache_dir"
    assert capsys.readouterr().err == (
        f"error: command line: unknown option {option.split('=')[0]}; did you mean {fit_name}? "
        "(the data options are the fit's)\n"
    )


def test_a_data_option_after_the_dashes_is_refused(tmp_path: Path) -> None:
    config = parse_args(["--out", str(tmp_path), "--", "--trainer.devices", "2", "--data.batch_size=16"])
    with pytest.raises(ConfigError, match=r"^--data\.batch_size after --: give the data options before --"):
        Pipeline(config)


def test_the_help_lists_the_fits_data_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--data.root ROOT dataset root. (default: data/synthetic)" in text
    assert "--data.layout {auto,tau22,tau20,folders}" in text and "--data.cache_dir" in text
    assert "--root " not in text and "--cache-dir" not in text


def test_students_replace_the_default_systems_and_join_chosen_ones(tmp_path: Path) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: tiny_student\n")

    def names(*argv: str) -> list[str]:
        return [run.name for run in Pipeline(parse_args(["--out", str(tmp_path), *argv])).student_runs]

    assert names() == ["system1", "system2", "system3", "system4"]
    assert names("--students", str(recipe)) == ["tiny_student"]
    assert names("--systems", "system2", "--students", str(recipe), "students/system4") == [
        "system2",
        "tiny_student",
        "system4",
    ]
    with pytest.raises(ConfigError, match=f"no recipe '{tmp_path}/missing.yaml': not a file"):
        names("--students", str(tmp_path / "missing.yaml"))


def test_a_recipe_choosing_other_clips_than_the_stages_read_is_refused(tmp_path: Path) -> None:
    """A recipe's ``data.validation`` (or layout, split file...) would give its fits other clips
    than the logits and quantize stages read: refused, naming the file and the pipeline option;
    the same value given to the pipeline is accepted, and options that choose no clips
    (``batch_size``) stay the recipe's own."""
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(
        "name: mine\nmodel:\n  class_path: ClassificationTask\n  init_args:\n    model: debug\n"
        "data:\n  validation: holdout\n  batch_size: 8\n"
    )
    for option in ("--students", "--teachers"):
        with pytest.raises(ConfigError) as error:
            Pipeline(parse_args(["--out", str(tmp_path), option, str(recipe)]))
        assert str(error.value) == (
            f"{recipe}: data.validation: holdout would give its runs other clips than the pipeline's "
            "stages read (--data.validation test); give it to the pipeline as --data.validation holdout "
            "(every fit and stage then reads it) and remove it from the recipe"
        )
        Pipeline(parse_args(["--out", str(tmp_path), option, str(recipe), "--data.validation", "holdout"]))


def test_a_recipe_the_fit_would_refuse_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """Every fit's configuration is resolved by the fit's parser when the pipeline starts: a key
    the DataModule does not take stops it there, naming the recipe, with nothing written."""
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: mine\ndata:\n  init_args:\n    validation: holdout\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="init_args"):
        Pipeline(parse_args(["--out", str(out), "--students", str(recipe), "--data.validation", "holdout"]))
    assert not out.exists()


def test_your_own_student_recipe_runs_under_its_own_name(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch
) -> None:
    """``--students mine.yaml`` beside ``--systems system1`` (already trained in the copy): the new
    student is fitted, quantized and gets Table 2 rows named by its recipe's ``name:``."""
    out = copy_pipeline(tiny_pipeline.out, tmp_path / "out")
    recipe = tmp_path / "mine.yaml"  # the file's stem is not the name
    recipe.write_text("name: tiny_student\nmodel:\n  init_args:\n    model: debug\n")
    stages = ("--stages", "students", "quantize", "tables")
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--students", str(recipe), *stages)
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    for seed in (0, 1):
        summary = json.loads((out / "students" / f"tiny_student-seed{seed}" / "summary.json").read_text())
        assert summary["config"]["name"] == "tiny_student"
        assert summary["config"]["model"]["init_args"]["model"] == "debug"
        assert summary["config"]["model"]["class_path"].endswith("DistillationTask")  # --student-config
    table = pd.read_csv(out / "table2.csv")
    assert list(zip(table["system"], table["precision"], table["seeds"], strict=True)) == [
        (PIPELINE_SYSTEM, "fp32", 2),
        (PIPELINE_SYSTEM, "int8", 2),
        ("tiny_student", "fp32", 2),
        ("tiny_student", "int8", 2),
    ]
    assert table.set_index(["system", "precision"]).loc[("tiny_student", "int8"), "params"] < 10_000


def test_the_closing_line_names_only_tables_that_exist(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    for name in ("table1.md", "table1.csv", "table1_seeds.csv"):  # as if no logits stage ever ran here
        (out / name).unlink()
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--stages", "quantize", "tables")
    with command_line("python -m asc_kd.pipeline"):
        assert main([arg for arg in argv if arg != "--quiet"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Tables:")]
    assert line == f"Tables: {out}/table2.md (per seed: *_seeds.csv); runs in {out}/"
    assert calls == []


def test_quiet_prints_the_stage_lines_and_nothing_else(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    """``python -m asc_kd.pipeline --quiet`` as a user runs it, W&B not silenced beforehand: two
    real student fits, their W&B runs, int8 exports, tests and Table 2 print the stage lines, the
    decision lines and each job's line when it ends only."""
    out = copy_pipeline(tiny_pipeline.out, tmp_path / "out")
    argv = pipeline_argv(
        tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force", "--stages", "students", "tables"
    )
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SILENT"}
    done = subprocess.run(
        [sys.executable, "-m", "asc_kd.pipeline", *argv],
        env={**env, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = r"accuracy [01]\.\d{3}"
    expected = [
        *(
            line
            for seed in (0, 1)
            for line in (
                re.escape(f"stage students: fitting {PIPELINE_SYSTEM}, seed {seed}"),
                rf"done  student {PIPELINE_SYSTEM} seed {seed}  {ELAPSED}  test {accuracy}",
            )
        ),
        # Table 2 reads the int8 copies: made of the old checkpoints, they are made anew.
        *(
            re.escape(
                f"redoing stages/int8-{PIPELINE_SYSTEM}-seed{seed}: what it read changed "
                f"(student:{PIPELINE_SYSTEM}-seed{seed})"
            )
            for seed in (0, 1)
        ),
        *(
            line
            for seed in (0, 1)
            for line in (
                re.escape(f"stage quantize: {PIPELINE_SYSTEM}, seed {seed}"),
                rf"done  int8 {PIPELINE_SYSTEM} seed {seed}  {ELAPSED}  int8 test {accuracy}",
            )
        ),
        re.escape(f"wrote Table 2 to {out}/table2.md, {out}/table2.csv, {out}/table2_seeds.csv"),
    ]
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(printed) == len(expected), printed
    for line, pattern in zip(printed, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def test_force_redoes_only_the_chosen_stages(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch
) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    artifact = out / "students" / f"{PIPELINE_SYSTEM}-seed0.int8.pt"
    artifact_stamp = artifact.stat().st_mtime_ns
    kept = {k: v for k, v in _manifest(out).items() if not k.startswith("int8:")}
    argv = pipeline_argv(
        tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force", "--stages", "quantize", "tables"
    )
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    assert calls == ["quantize", "quantize"]  # no fit, no logits: only the forced stage ran
    assert artifact.stat().st_mtime_ns != artifact_stamp
    manifest = _manifest(out)
    assert {k: v for k, v in manifest.items() if not k.startswith("int8:")} == kept


def test_unknown_ensemble_name_is_refused(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    argv = pipeline_argv(tiny_root, cache_dir, tmp_path / "out", "--ensemble", "nonesuch")
    with command_line("python -m asc_kd.pipeline"), pytest.raises(ValueError, match="nonesuch"):
        main(argv)


def test_every_stage_sees_the_fits_data_options(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's data options (here a held-out validation split, the cache and the batch
    size) reach every fit and the logits and quantize stages: every DataModule of the run serves
    the same training and test clips, from the same cache, with the pipeline's one held-out split."""
    from asc_kd.data.datamodule import SceneDataModule

    seen: dict[str, tuple[frozenset[str], frozenset[str], str]] = {}
    settings: dict[str, tuple[Path, int, str | None]] = {}
    who = ["?"]

    def recorded(label: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            who[0] = label(*args) if callable(label) else label
            return function(*args, **kwargs)

        return call

    setup = SceneDataModule.setup

    def spy(self: SceneDataModule, stage: str | None = None) -> None:
        setup(self, stage)
        train, test = (frozenset(self.datasets[s].frame["filename"]) for s in ("train", "test"))
        seen[who[0]] = (train, test, self.hparams.validation)
        settings[who[0]] = (self.cache_dir, self.hparams.batch_size, self.hparams.holdout_file)

    monkeypatch.setattr(SceneDataModule, "setup", spy)
    monkeypatch.setattr(
        asc_kd.runs.pipeline,
        "fit_run",
        recorded(lambda config_file, resume: config_file.parent.name, asc_kd.runs.pipeline.fit_run),
    )
    _wrap_stage_functions(monkeypatch, recorded)
    teacher = PIPELINE_TEACHERS[0]
    out = tmp_path / "out"
    argv = pipeline_argv(
        tiny_root,
        cache_dir,
        out,
        *("--teachers", str(teacher), "--ensemble", teacher.stem, "--student-seeds", "1", "--no-wandb"),
        "--force",  # the quantize stage quantizes anew instead of copying the fit's int8 export
        *("--data.validation", "holdout", "--data.holdout_fraction=0.5"),
    )
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    fits = {f"{teacher.stem}-seed0", f"{PIPELINE_SYSTEM}-seed0"}
    assert fits | {"logits", "quantize"} <= set(seen), sorted(seen)
    assert len({(train, test) for train, test, _ in seen.values()}) == 1
    assert {validation for *_, validation in seen.values()} == {"holdout"}
    assert set(settings.values()) == {(cache_dir, 16, str(out / "holdout_split.csv"))}, settings
    train, test, _ = seen["logits"]
    every_train_clip = TAU22DataModule(root=str(tiny_root), validation="none").frames()["train"]
    assert 0 < len(train) < len(every_train_clip)  # half the recordings were held out


def test_a_changed_config_is_refused_naming_its_keys_writing_nothing_then_done_with_force(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch
) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    before = tree_state(out)
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--stages", "teachers")
    argv[argv.index("--max-epochs") + 1] = "2"
    with command_line("python -m asc_kd.pipeline"), pytest.raises(ConfigError) as refused:
        main(argv)
    runs = "; ".join(f"teachers/{Path(t).stem}-seed0 (trainer.max_epochs: 1 -> 2)" for t in PIPELINE_TEACHERS)
    assert str(refused.value) == (
        f"2 run(s) in {out} were made under another configuration: {runs}. Redo them with --force "
        "(the chosen stages run anew), or give another --out to keep both"
    )
    assert tree_state(out) == before and calls == []
    with command_line("python -m asc_kd.pipeline"):
        assert main([*argv[: argv.index("--")], "--force", *argv[argv.index("--") :]]) == 0
    assert calls == [f"{Path(t).stem}-seed0" for t in PIPELINE_TEACHERS]
    record = json.loads((out / "teachers" / "teacher-seed0" / "run.json").read_text())
    assert record["config"]["trainer"]["max_epochs"] == 2 and record["state"] == "done"


def test_a_rerun_says_what_it_reuses_and_status_reads_the_records(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    out, calls = _copy_with_recorded_fits(tiny_pipeline, tmp_path, monkeypatch)
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out)
    with command_line("python -m asc_kd.pipeline"), caplog.at_level("INFO"):
        assert main(argv) == 0
    assert calls == []
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reusing")]
    assert said[:3] == [
        f"reusing teachers/{Path(PIPELINE_TEACHERS[0]).stem}-seed0: done, same config",
        f"reusing teachers/{Path(PIPELINE_TEACHERS[1]).stem}-seed0: done, same config",
        "reusing stages/logits: done, same config",
    ]
    assert len(said) == 7
    from asc_kd.runs.status import rows

    table = rows(out)
    assert [(r["kind"], r["recipe"], r["seed"], r["state"]) for r in table] == [
        ("teacher", "teacher", "0", "done"),
        ("teacher", "teacher_small", "0", "done"),
        ("logits", "logits", "-", "done"),
        ("student", PIPELINE_SYSTEM, "0", "done"),
        ("student", PIPELINE_SYSTEM, "1", "done"),
        ("int8", PIPELINE_SYSTEM, "0", "done"),
        ("int8", PIPELINE_SYSTEM, "1", "done"),
    ]
    assert table[0]["epoch"] == "1/1" and table[0]["metric"].startswith("val/acc=")
    # The record keeps the full content hash of the clips the fit read (the tiny runs use a cache).
    recorded = json.loads((tiny_pipeline.out / "teachers" / "teacher-seed0" / "run.json").read_text())
    assert recorded["result"]["data"]["kind"] == "content" and len(recorded["result"]["data"]["hash"]) == 64
    done = subprocess.run(
        [sys.executable, "-m", "asc_kd", "status", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "7 of 7 run(s) done"
    (out / "students" / f"{PIPELINE_SYSTEM}-seed1" / "run.json").write_text(
        (out / "students" / f"{PIPELINE_SYSTEM}-seed1" / "run.json").read_text().replace('"done"', '"failed"')
    )
    from asc_kd.runs.status import status

    assert status(out)[1] == 1


def test_your_own_recipe_composes_last_and_a_flag_over_it_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under the demo, the overlay shrinks the packaged recipes but never a value your own recipe
    sets; a pipeline flag still wins, in one line."""
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(
        "name: mine\nmodel:\n  init_args:\n    model: debug\n    lr: 0.01\n"
        "trainer:\n  max_epochs: 1\n  log_every_n_steps: 2\ndata:\n  batch_size: 8\n"
    )
    pipeline = Pipeline(parse_args(["--out", str(tmp_path / "out"), "--students", str(recipe)]))
    (run,) = pipeline.student_runs
    assert run.configs[-1] == recipe and run.configs[-2].name == "synthetic.yaml"
    config = pipeline.resolved[run]
    assert config["trainer"]["max_epochs"] == 1 and config["trainer"]["log_every_n_steps"] == 2
    assert config["data"]["batch_size"] == 8 and config["model"]["init_args"]["lr"] == 0.01
    with caplog.at_level("INFO"):
        pipeline = Pipeline(
            parse_args(["--out", str(tmp_path / "out"), "--students", str(recipe), "--max-epochs", "3"])
        )
    assert pipeline.resolved[pipeline.student_runs[0]]["trainer"]["max_epochs"] == 3
    assert f"--max-epochs 3 overrides trainer.max_epochs: 1 of {recipe}" in caplog.messages
    assert not (tmp_path / "out").exists()  # building the plan writes nothing


def test_a_second_driver_on_the_same_out_is_refused_naming_the_first(tmp_path: Path) -> None:
    from asc_kd.runs.driver import drive
    from asc_kd.runs.record import RunBusy, writer_lock

    out = tmp_path / "out"
    with writer_lock(out / "driver.json"), pytest.raises(RunBusy) as busy:
        drive(parse_args(["--out", str(out), "--stages", "tables"]))
    assert f"another driver runs the pipeline in {out}" in str(busy.value)
    assert f"asc-kd pipeline --cancel --out {out}" in str(busy.value)


def test_a_run_whose_owner_lives_is_adopted_and_one_whose_owner_died_is_resumed(
    tiny_pipeline: TinyPipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from asc_kd.runs.record import read_record, update_record

    out = copy_pipeline(tiny_pipeline.out, tmp_path / "out")
    pipeline = Pipeline(parse_args(pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out)))
    run = pipeline.teacher_runs[0]
    path, last = pipeline._record_path(run), pipeline._folder(run) / "checkpoints" / "last.ckpt"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = {"executor": "local", "job_id": str(owner.pid), "host": socket.gethostname()}
        update_record(path, lambda r: r.update(state="running", owner=me))
        with caplog.at_level("INFO"):
            action, _ = pipeline._decide(run.path, path, pipeline.resolved[run], {}, last)
        assert action == "adopt"
        assert f"adopting {run.path}: running pid {owner.pid} on {socket.gethostname()}; waiting for it" in (
            caplog.messages
        )
    finally:
        owner.kill()
        owner.wait()
    caplog.clear()
    with caplog.at_level("INFO"):
        action, record = pipeline._decide(run.path, path, pipeline.resolved[run], {}, last)
    assert action == "resume" and read_record(path)["state"] == "running"
    assert caplog.messages == [
        f"resuming {run.path} from its last checkpoint: its owner (pid {owner.pid} on "
        f"{socket.gethostname()}) is gone"
    ]


def test_an_inline_job_that_raises_gets_its_line_before_the_error(
    tiny_pipeline: TinyPipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from asc_kd.runs.executors import Job, JobCall
    from asc_kd.runs.record import update_record

    out = copy_pipeline(tiny_pipeline.out, tmp_path / "out")
    pipeline = Pipeline(parse_args(pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out)))

    def job(name: str, work: Any) -> Job:
        record = tmp_path / name / "run.json"
        update_record(
            record, lambda r: r.update(key=f"teacher:{name}-seed0", kind="teacher", name=name, seed=0)
        )
        return Job(
            f"teacher:{name}-seed0",
            "teacher",
            f"stage teachers: fitting {name}, seed 0",
            JobCall(work, record=record),
        )

    def bad() -> dict[str, Any]:
        raise ValueError("model 'nonesuch' is not known")

    with caplog.at_level("INFO"), pytest.raises(ValueError, match="nonesuch"):
        pipeline._execute([job("good", lambda: {"test": {"test/acc": 0.25}}), job("bad", bad)])
    said = [m for m in caplog.messages if m.startswith(("stage ", "done ", "failed "))]
    expected = [
        re.escape("stage teachers: fitting good, seed 0"),
        rf"done  teacher good seed 0  {ELAPSED}  test accuracy 0\.250",
        re.escape("stage teachers: fitting bad, seed 0"),
        rf"failed  teacher bad seed 0  {ELAPSED}  model 'nonesuch' is not known",
    ]
    assert len(said) == len(expected), said
    for line, pattern in zip(said, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
