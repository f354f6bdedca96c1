"""Bring your own dataset: fit -> logits -> distil -> quantize -> predict on 13 classes of 2-s,
22.05 kHz clips in class folders, through the commands a user runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fit_helpers import CONF, command_line, fit_args

from asc_kd.data.layouts import make_layout
from asc_kd.fit import main as fit
from asc_kd.logits import main as logits
from asc_kd.predict import main as predict
from asc_kd.quantize import main as quantize
from asc_kd.recipes import RECIPES

pytestmark = pytest.mark.slow


def test_a_13_class_folder_dataset_end_to_end(folders_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    classes = list(make_layout(folders_root).spec.classes)
    assert len(classes) == 13
    with command_line("python -m asc_kd.fit"):
        teacher = fit(
            fit_args(
                folders_root,
                cache_dir,
                tmp_path / "teacher",
                RECIPES / "base.yaml",
                CONF / "teacher.yaml",
            )
        )
    teacher_ckpt = teacher.trainer.checkpoint_callback.selected_path
    assert list(teacher.model.classes) == classes

    ensemble = tmp_path / "ensemble.npz"
    data = ["--data.root", str(folders_root), "--data.cache_dir", str(cache_dir)]
    assert logits([teacher_ckpt, *data, "--out", str(ensemble), "--table", str(tmp_path / "table1")]) == 0
    assert list(pd.read_csv(tmp_path / "table1.csv")["teacher"]) == ["teacher", "ensemble of 1 (teacher)"]

    recipe = (
        RECIPES / "base.yaml",
        RECIPES / "students/kd.yaml",
        RECIPES / "students/system1.yaml",
    )
    args = fit_args(folders_root, cache_dir, tmp_path / "student", *recipe, CONF / "student.yaml")
    with command_line("python -m asc_kd.fit"):
        student = fit([*args, "--data.teacher_logits", str(ensemble)])
    checkpoint = Path(student.trainer.checkpoint_callback.selected_path)
    assert student.model.model.head[0].out_channels == 13
    fit_end = json.loads((checkpoint.parent / "system1-seed0.int8.json").read_text())  # QuantizationExport
    assert fit_end["classes"] == classes and len(fit_end["int8"]["confusion"]) == 13

    artifact = tmp_path / "system1.int8.pt"
    assert quantize([str(checkpoint), *data, "--out", str(artifact)]) == 0
    report = json.loads(artifact.with_suffix(".json").read_text())
    assert report["classes"] == classes and report["devices"] == []

    audio = tmp_path / "eval"
    for name in ("scene00/rec000-0.wav", "scene12/rec003-1.wav"):
        (audio / Path(name).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(folders_root / name, audio / name)
    for model in (checkpoint, artifact):
        out = tmp_path / f"{Path(model).suffix[1:]}.csv"
        assert predict([str(model), "--folder", str(audio), "--out", str(out)]) == 0
        frame = pd.read_csv(out, sep="\t")
        assert list(frame.columns) == ["filename", "scene_label", *classes]  # 13 probability columns
        assert len(frame) == 2 and set(frame["scene_label"]) <= set(classes)
