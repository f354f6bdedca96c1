"""``asc-kd package``: a DCASE 2023 Task 1 submission package from student runs, checked against
the template's keys, the runs' own ``summary.json``, the ``complexity`` and ``predict`` commands,
and the refusals that must come before anything is written."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fit_helpers import TINY_SYSTEM1, command_line, fit_args, write_teacher_logits

import asc_kd.complexity
import asc_kd.predict
import asc_kd.runs.package
from asc_kd.core.errors import ConfigError
from asc_kd.data.spec import DatasetError
from asc_kd.data.tau import read_split
from asc_kd.package import main
from asc_kd.runs.package import DCASE2023_TASK1_META_KEYS
from asc_kd.tasks.restore import load_task

LABEL = "Last_INST_task1"


@pytest.fixture(scope="module")
def runs(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """System 1 distilled with seed 0 (its recipe adds Mixup and the int8 export), and a seed 1
    written by hand beside it: a folder whose ``summary.json`` is seed 0's with seed 1 and every
    int8 accuracy ``a`` replaced by ``1 - a`` and the log loss ``l`` by ``l + 1``, so that every
    mean over the two seeds is known: 50 % accuracy, log loss ``l + 0.5``."""
    from asc_kd.fit import main as fit

    out = tmp_path_factory.mktemp("package_runs")
    logits = write_teacher_logits(tiny_root, out / "logits.npz")
    with command_line("python -m asc_kd.fit"):
        fit(
            [
                *fit_args(tiny_root, cache_dir, out, *TINY_SYSTEM1),
                *("--data.teacher_logits", str(logits), "--trainer.logger", "false"),
            ]
        )
    seed0, seed1 = out / "system1-seed0", out / "by_hand" / "system1-seed1"
    summary = _summary(seed0)
    summary["config"]["seed_everything"] = 1
    metrics = summary["int8_metrics"]
    summary["int8_metrics"] = {
        key: value + 1 if key.startswith("log_loss") else 1 - value for key, value in metrics.items()
    }
    seed1.mkdir(parents=True)
    (seed1 / "summary.json").write_text(json.dumps(summary))
    return [seed0, seed1]


@pytest.fixture(scope="module")
def eval_audio(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    audio = tmp_path_factory.mktemp("evaluation") / "audio"
    audio.mkdir()
    for name in read_split(tiny_root, "test")["filename"][:3]:
        shutil.copy(tiny_root / name, audio)
    return audio


@pytest.fixture(scope="module")
def packaged(runs: list[Path], eval_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One system of both seeds, packaged by the command; what it printed."""
    out = tmp_path_factory.mktemp("package") / "submission"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        seeds = ",".join(map(str, runs))
        assert main([seeds, "--label", LABEL, "--folder", str(eval_audio), "--out", str(out)]) == 0
    return {"out": out, "printed": printed.getvalue()}


def _meta(out: Path, n: int = 1) -> dict[str, Any]:
    return yaml.safe_load((out / "task1" / f"{LABEL}_{n}" / f"{LABEL}_{n}.meta.yaml").read_text())


def _summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "summary.json").read_text())


def _missing(meta: Any, keys: dict[str, Any], where: str = "") -> list[str]:
    """The template's keys (``DCASE2023_TASK1_META_KEYS``) that ``meta`` lacks, as dotted paths."""
    missing = []
    for key, inner in keys.items():
        if key == "*":
            assert meta, where  # one block per class or device, and at least one
            missing += [m for name, block in meta.items() for m in _missing(block, inner, f"{where}.{name}")]
        elif not isinstance(meta, dict) or key not in meta:
            missing.append(f"{where}.{key}")
        elif isinstance(inner, dict):
            missing += _missing(meta[key], inner, f"{where}.{key}")
        elif isinstance(inner, list):
            items = meta[key] or []
            missing += [
                m for i, item in enumerate(items) for m in _missing(item, inner[0], f"{where}.{key}[{i}]")
            ]
    return missing


def _todos(meta: Any, where: str = "") -> list[str]:
    if isinstance(meta, dict):
        return [t for k, v in meta.items() for t in _todos(v, f"{where}.{k}" if where else k)]
    if isinstance(meta, list):
        return [t for i, v in enumerate(meta) for t in _todos(v, f"{where}[{i}]")]
    return [where] if isinstance(meta, str) and meta.startswith("TODO:") else []


def test_the_package_is_laid_out_as_the_validator_reads_it(packaged: dict[str, Any]) -> None:
    out = packaged["out"]
    name = f"{LABEL}_1"
    expected = [f"task1/{name}/{name}.meta.yaml", f"task1/{name}/{name}.output.csv"]
    with zipfile.ZipFile(out.with_name("submission.zip")) as bundle:
        assert sorted(bundle.namelist()) == expected
        for entry in expected:
            assert bundle.read(entry) == (out / entry).read_bytes()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == expected
    assert sorted(p.name for p in out.parent.iterdir()) == ["submission", "submission.zip"]  # no partials


def test_the_meta_file_has_every_key_of_the_template(packaged: dict[str, Any], runs: list[Path]) -> None:
    meta = _meta(packaged["out"])
    assert _missing(meta, DCASE2023_TASK1_META_KEYS) == []
    submission = meta["submission"]
    assert submission["label"] == f"{LABEL}_1"
    (author,) = submission["authors"]
    assert (author["lastname"], author["affiliation"]["abbreviation"], author["corresponding"]) == (
        "Last",
        "INST",
        True,
    )
    metrics = _summary(runs[0])["int8_metrics"]
    results = meta["results"]["development_dataset"]
    for kind in ("class", "device"):
        names = [k.removeprefix(f"acc_{kind}_") for k in metrics if k.startswith(f"acc_{kind}_")]
        assert sorted(results[f"{kind}_wise"]) == sorted(names), kind


def test_the_numbers_are_the_runs_summaries_and_the_complexity_commands(
    packaged: dict[str, Any], runs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    meta = _meta(packaged["out"])
    summaries = [_summary(run) for run in runs]
    checkpoint = summaries[0]["int8"]["source_checkpoint"]
    assert asc_kd.complexity.main([checkpoint, "--json"]) == 0
    counted = json.loads(capsys.readouterr().out)
    complexity = meta["system"]["complexity"]
    assert complexity["total_parameters"] == counted["params"]
    assert complexity["macs"] == counted["macs"]
    assert complexity["total_model_size"] == counted["mem_bytes"] == counted["params"]  # int8: 1 byte each
    assert complexity["memory_use"] == round(counted["mem_bytes"] / 1024, 2)
    model = load_task(checkpoint).model
    assert complexity["total_parameters_non_zero"] == sum(int((p != 0).sum()) for p in model.parameters())

    # The mean of a and 1 - a (see the runs fixture): 50 %, or none for a device without clips.
    seed0 = summaries[0]["int8_metrics"]
    results = meta["results"]["development_dataset"]
    assert results["overall"]["accuracy"] == pytest.approx(50.0)
    assert results["overall"]["logloss"] == pytest.approx(seed0["log_loss"] + 0.5, abs=1e-4)
    for kind in ("class", "device"):
        for name, block in results[f"{kind}_wise"].items():
            expected = None if math.isnan(seed0[f"acc_{kind}_{name}"]) else pytest.approx(50.0)
            assert block["accuracy"] == expected, name
            loss = seed0[f"log_loss_{kind}_{name}"]
            assert block["logloss"] == (None if math.isnan(loss) else pytest.approx(loss + 0.5, abs=1e-4)), (
                name
            )
    assert any(block["accuracy"] is not None for block in results["device_wise"].values())
    description = meta["system"]["description"]
    assert description["input_sampling_rate"] == "32kHz"
    assert "mixup (alpha=0.3" in description["data_augmentation"]  # students/system1.yaml
    assert "frequency masking (up to 48 mel bins)" in description["data_augmentation"]  # students/kd.yaml
    assert (
        "n_mels=256" in description["acoustic_features"]
        and "hop_length=737" in description["acoustic_features"]
    )
    assert "knowledge distillation" in description["machine_learning_method"]
    assert "temperature 3.0" in description["machine_learning_method"]
    header = (packaged["out"] / "task1" / f"{LABEL}_1" / f"{LABEL}_1.meta.yaml").read_text()
    assert "mean over seed(s) 0, 1" in header and "SYNTHETIC" in header


def test_the_output_file_is_the_predict_commands(
    packaged: dict[str, Any], runs: list[Path], eval_audio: Path, tmp_path: Path
) -> None:
    artifact = _summary(runs[0])["files"]["int8_artifact"]  # the first seed's model is submitted
    assert asc_kd.predict.main([artifact, "--folder", str(eval_audio), "--out", str(tmp_path / "p.csv")]) == 0
    output = packaged["out"] / "task1" / f"{LABEL}_1" / f"{LABEL}_1.output.csv"
    assert output.read_bytes() == (tmp_path / "p.csv").read_bytes()
    assert output.read_text().splitlines()[1].startswith("audio/")


def test_the_values_left_to_write_are_listed(packaged: dict[str, Any]) -> None:
    meta = _meta(packaged["out"])
    todos = _todos(meta)
    assert "submission.authors[0].email" in todos and "system.source_code" in todos
    printed = packaged["printed"]
    listed = [line.strip() for line in printed.splitlines() if line.startswith("  ")]
    # One line for a value of every class or device.
    collapsed = {re.sub(r"\.(class_wise|device_wise)\.[^.]+\.", r".\1.*.", todo) for todo in todos}
    assert sorted(listed) == sorted(collapsed)
    assert not [line for line in listed if line.startswith("results.")]  # every result is the runs'


def test_systems_are_numbered_in_order_and_force_replaces(
    runs: list[Path], eval_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "submission"
    (out / "old").mkdir(parents=True)
    (out / "old" / "file").write_text("an earlier package")
    args = [str(runs[1]), str(runs[0]), "--label", LABEL, "--folder", str(eval_audio), "--out", str(out)]
    assert main([*args, "--force"]) == 0
    assert not (out / "old").exists()
    for n, run in ((1, runs[1]), (2, runs[0])):
        meta = _meta(out, n)
        assert meta["submission"]["label"] == f"{LABEL}_{n}"
        accuracy = _summary(run)["int8_metrics"]["acc"]
        assert meta["results"]["development_dataset"]["overall"]["accuracy"] == round(100 * accuracy, 2)
    with zipfile.ZipFile(tmp_path / "submission.zip") as bundle:
        assert len(bundle.namelist()) == 4
    assert f"{LABEL}_2: outputs of {runs[0]}" in capsys.readouterr().out


def _copy_with(run: Path, where: Path, change: Any) -> Path:
    copy = where / run.name
    shutil.copytree(run, copy)
    summary = _summary(copy)
    change(summary)
    (copy / "summary.json").write_text(json.dumps(summary))
    return copy


REFUSALS = [
    ("label index", {"label": "Last_INST_task1_1"}, ConfigError, "without the system index"),
    ("label spaces", {"label": "Last INST_task1"}, ConfigError, "is Lastname_INST_task1"),
    ("label task", {"label": "Last_INST_task2"}, ConfigError, "is Lastname_INST_task1"),
    ("five systems", {"systems": ["0"] * 5}, ConfigError, "5 systems given; a DCASE submission holds 1 to 4"),
    ("missing run", {"systems": ["missing"]}, FileNotFoundError, "missing"),
    ("no int8", {"systems": ["no_int8"]}, ConfigError, "the run made no int8 artifact"),
    ("no checkpoint", {"systems": ["no_checkpoint"]}, FileNotFoundError, "gone.ckpt.*is missing"),
    ("no summary", {"systems": ["empty"]}, ConfigError, "no summary.json; give the folder of a finished"),
    ("pipeline", {"systems": ["pipeline"]}, ConfigError, "is a pipeline's folder: give its student run"),
    ("twice", {"systems": ["0", "0"]}, ConfigError, "is given twice .systems 1 and 2."),
    ("seeds twice", {"systems": ["0,seed0_again"]}, ConfigError, r"seeds \[0, 0\] repeat"),
    ("not empty", {"out_holds": "x"}, ConfigError, "is not empty; give --force"),
    ("zip exists", {"zip_exists": True}, ConfigError, "submission.zip exists; give --force"),
    ("no audio", {"folder": "no_audio"}, DatasetError, "holds no audio files"),
]


@pytest.mark.parametrize(("case", "given", "error", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_come_before_anything_is_written(
    case: str,
    given: dict[str, Any],
    error: type,
    message: str,
    runs: list[Path],
    eval_audio: Path,
    tmp_path: Path,
) -> None:
    made = tmp_path / "made"
    (made / "empty").mkdir(parents=True)
    (made / "pipeline").mkdir()
    (made / "pipeline" / "pipeline.json").write_text("{}")
    (made / "no_audio").mkdir()
    (made / "no_audio" / "notes.txt").write_text("not audio")
    gone = str(made / "gone.ckpt")
    folders = {  # made when a case names them
        "0": lambda: runs[0],
        "missing": lambda: made / "missing",
        "empty": lambda: made / "empty",
        "pipeline": lambda: made / "pipeline",
        "no_int8": lambda: _copy_with(runs[0], made / "a", lambda s: s["files"].update(int8_artifact=None)),
        "no_checkpoint": lambda: _copy_with(
            runs[0], made / "b", lambda s: s["int8"].update(source_checkpoint=gone)
        ),
        "seed0_again": lambda: _copy_with(runs[0], made / "c", lambda s: None),
    }
    systems = [
        ",".join(str(folders[p]()) for p in system.split(",")) for system in given.get("systems", ["0"])
    ]
    folder = made / given["folder"] if "folder" in given else eval_audio
    work = tmp_path / "work"
    out = work / "submission"
    work.mkdir()
    if "out_holds" in given:
        out.mkdir()
        (out / "x").write_text("kept")
    if given.get("zip_exists"):
        (work / "submission.zip").write_text("kept")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    label = given.get("label", LABEL)
    with pytest.raises(error, match=message):
        main([*systems, "--label", label, "--folder", str(folder), "--out", str(out)])
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before


def test_a_failure_while_writing_leaves_the_earlier_package(
    runs: list[Path], eval_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "submission"
    args = [str(runs[0]), "--label", LABEL, "--folder", str(eval_audio), "--out", str(out)]
    assert main(args) == 0
    earlier = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real = asc_kd.runs.package.predict_files
    calls = []

    def second_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("stopped while writing system 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(asc_kd.runs.package, "predict_files", second_fails)
    with pytest.raises(RuntimeError, match="stopped while writing system 2"):
        main([str(runs[0]), str(runs[1]), *args[1:], "--force"])
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission", "submission.zip"]
