"""``python -m asc_kd.pipeline`` end to end on the tiny scenes: tables, manifest, resume, force."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fit_helpers import (
    PIPELINE_SYSTEM,
    PIPELINE_TEACHERS,
    TinyPipeline,
    command_line,
    pipeline_argv,
    tree_state,
)

import asc_kd.logits
import asc_kd.pipeline
import asc_kd.quantize
from asc_kd.complexity import MAX_PARAM_BYTES
from asc_kd.pipeline import main

pytest_plugins = ["fit_fixtures"]

TABLE1_COLUMNS = ["teacher", "acc", "macro_acc", "log_loss", "acc_real", "acc_seen", "acc_unseen"]
TABLE2_COLUMNS = [
    "system",
    "precision",
    "acc",
    "log_loss",
    "acc_real",
    "acc_seen",
    "acc_unseen",
    "mem_bytes",
    "macs",
]
SYSTEM1_MACS = 28_840_396
STEMS = [Path(recipe).stem for recipe in PIPELINE_TEACHERS]


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "pipeline.json").read_text())


def test_manifest_records_every_stage(tiny_pipeline: TinyPipeline) -> None:
    manifest = _manifest(tiny_pipeline.out)
    keys = [f"teacher{i}:{stem}" for i, stem in enumerate(STEMS)]
    keys += ["logits", f"student:{PIPELINE_SYSTEM}", f"int8:{PIPELINE_SYSTEM}"]
    assert list(manifest) == keys
    for key in (*keys[:2], f"student:{PIPELINE_SYSTEM}"):
        assert Path(manifest[key]["checkpoint"]).is_file(), key
        assert 0.0 <= manifest[key]["test"]["test/acc"] <= 1.0, key
    assert Path(manifest["logits"]["file"]) == tiny_pipeline.out / "teachers" / "ensemble_train.npz"
    assert Path(manifest["logits"]["file"]).is_file()
    # Each run keeps its own folder under --out.
    for stem in STEMS:
        assert (tiny_pipeline.out / "teachers" / stem / "config.yaml").is_file()
    assert (tiny_pipeline.out / "students" / PIPELINE_SYSTEM / "config.yaml").is_file()


def test_table1_lists_teachers_and_ensemble(tiny_pipeline: TinyPipeline) -> None:
    table = pd.read_csv(tiny_pipeline.out / "table1.csv")
    assert list(table.columns) == TABLE1_COLUMNS
    assert len(table) == 3 and table["teacher"].iloc[-1] == "ensemble of 2"
    assert table[TABLE1_COLUMNS[1:]].notna().all().all()
    markdown = (tiny_pipeline.out / "table1.md").read_text()
    assert markdown.startswith("# Table 1")
    assert "| " + " | ".join(TABLE1_COLUMNS) + " |" in markdown


def test_table1_tells_teachers_apart(tiny_pipeline: TinyPipeline) -> None:
    teachers = pd.read_csv(tiny_pipeline.out / "table1.csv")["teacher"].iloc[:-1]
    assert teachers.is_unique


def test_table2_has_fp32_and_int8_rows(tiny_pipeline: TinyPipeline) -> None:
    table = pd.read_csv(tiny_pipeline.out / "table2.csv")
    assert list(table.columns) == TABLE2_COLUMNS
    assert list(zip(table["system"], table["precision"], strict=True)) == [
        (PIPELINE_SYSTEM, "fp32"),
        (PIPELINE_SYSTEM, "int8"),
    ]
    rows = table.set_index("precision")
    assert rows.loc["int8", "mem_bytes"] <= MAX_PARAM_BYTES
    assert rows.loc["fp32", "mem_bytes"] > MAX_PARAM_BYTES  # 4 bytes a parameter
    assert (table["macs"] == SYSTEM1_MACS).all()
    for column in ("acc", "acc_real", "acc_seen", "acc_unseen"):
        assert table[column].between(0, 1).all(), column
    markdown = (tiny_pipeline.out / "table2.md").read_text()
    assert markdown.startswith("# Table 2") and "SYNTHETIC" in markdown
    assert f"{SYSTEM1_MACS:,}" in markdown


def test_int8_artifact_and_report(tiny_pipeline: TinyPipeline) -> None:
    report = _manifest(tiny_pipeline.out)[f"int8:{PIPELINE_SYSTEM}"]
    artifact = tiny_pipeline.out / "students" / f"{PIPELINE_SYSTEM}.int8.pt"
    assert Path(report["artifact"]) == artifact and artifact.is_file()
    assert json.loads(artifact.with_suffix(".json").read_text()) == report
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
    before = {name: (out / name).read_bytes() for name in ("pipeline.json", "table1.csv", "table2.csv")}
    monkeypatch.setattr(asc_kd.pipeline, "_fit", _refuse("_fit"))
    monkeypatch.setattr(asc_kd.logits, "export_logits", _refuse("export_logits"))
    monkeypatch.setattr(asc_kd.quantize, "quantize_task", _refuse("quantize_task"))
    with command_line("python -m asc_kd.pipeline"):
        assert main(tiny_pipeline.argv) == 0
    for name, content in before.items():
        assert (out / name).read_bytes() == content, name


def test_force_redoes_every_stage(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_pipeline.out, out)
    (out / "pipeline.json").write_text(json.dumps({**_manifest(out), "stale": "entry"}))
    (out / "table2.csv").unlink()
    # Fits are replaced by the first run's results (by run folder); the rest runs for real.
    fitted = {Path(v["checkpoint"]).parents[1].name: v for v in _manifest(out).values() if "test" in v}
    calls: list[str] = []

    def fit(configs: list[Path], run_dir: Path, extra: list[str]) -> dict[str, Any]:
        calls.append(run_dir.name)
        return fitted[run_dir.name]

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(asc_kd.pipeline, "_fit", fit)
    monkeypatch.setattr(asc_kd.logits, "export_logits", counted("logits", asc_kd.logits.export_logits))
    monkeypatch.setattr(asc_kd.quantize, "quantize_task", counted("quantize", asc_kd.quantize.quantize_task))
    argv = pipeline_argv(tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force")
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    assert calls == [*STEMS, "logits", PIPELINE_SYSTEM, "quantize"]
    manifest = _manifest(out)
    assert "stale" not in manifest
    assert manifest["logits"]["file"] == str(out / "teachers" / "ensemble_train.npz")
    artifact = out / "students" / f"{PIPELINE_SYSTEM}.int8.pt"
    assert manifest[f"int8:{PIPELINE_SYSTEM}"]["artifact"] == str(artifact)
    assert (out / "table2.csv").is_file()


def test_force_redoes_only_the_chosen_stages(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_pipeline.out, out)
    argv = pipeline_argv(
        tiny_pipeline.root, tiny_pipeline.cache_dir, out, "--force", "--stages", "quantize", "tables"
    )
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    assert f"student:{PIPELINE_SYSTEM}" in _manifest(out)
