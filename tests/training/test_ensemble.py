"""Teacher ensembles: the saved logits are the mean of each teacher's own logits for the same
clip, published weights files load through a recipe, and the ensemble is chosen apart from
Table 1's rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fit_helpers import content_hash_by_hand

from asc_kd.core.errors import ConfigError
from asc_kd.data.cache import fingerprint_files
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import SCENES, TAU22
from asc_kd.data.teacher_logits import load_logits
from asc_kd.evaluation.inference import autocast, fast_bf16, hardware_bf16, uses_bf16
from asc_kd.logits import main
from asc_kd.models.pretrained import WeightsError
from asc_kd.recipes import RECIPES, read_recipe
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task
from asc_kd.training.logits import TeacherRun, export_logits, load_teacher

PASST_TINY = RECIPES / "demo" / "teachers" / "passt_tiny.yaml"


def _datamodule(tiny_root: Path, cache_dir: Path) -> TAU22DataModule:
    return TAU22DataModule(root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, eval_batch_size=64)


def _own_logits(paths: list[Path], datamodule: TAU22DataModule, names: list[str]) -> torch.Tensor:
    """Each teacher on each named clip, read from the cache by name: no export code involved."""
    cache = datamodule.datasets["train"].audio
    waveform = cache.read([cache.row_of[name] for name in names])
    with torch.no_grad():
        return torch.stack([load_task(p)(waveform) for p in paths])


#: How far one teacher's logits may move under bf16 autocast: 8 mantissa bits, a few layers.
BF16_ATOL = 5e-2


def test_saved_logits_are_the_mean_of_each_teacher_for_the_same_clip(
    two_teachers: list[Path], tiny_root: Path, cache_dir: Path, tmp_path: Path, bf16_branch: bool
) -> None:
    datamodule = _datamodule(tiny_root, cache_dir)
    runs = [TeacherRun(str(p), "debug", seed) for seed, p in enumerate(two_teachers)]
    out = tmp_path / "ensemble.npz"
    table = export_logits(runs, datamodule, out, table=tmp_path / "table1", precision="auto")
    keys, logits, metadata = load_logits(out, split="train", classes=SCENES)
    assert sorted(keys) == sorted(datamodule.datasets["train"].keys)
    picked = [keys[i] for i in (0, 7, 55, len(keys) - 1)]
    each = _own_logits(two_teachers, datamodule, picked)
    assert not torch.allclose(each[0], each[1])
    rows = [keys.index(name) for name in picked]
    # auto: bf16 autocast exactly where fast_bf16 says so, and the file and Table 1 say which.
    assert metadata["precision"] == ("bf16" if bf16_branch else "fp32")
    assert set(table["precision"]) == {metadata["precision"]}
    if bf16_branch:
        torch.testing.assert_close(logits[rows], each.mean(0), rtol=0, atol=BF16_ATOL)
        assert not torch.allclose(logits[rows], each.mean(0), rtol=0, atol=1e-6)  # bf16 did run
    else:
        torch.testing.assert_close(logits[rows], each.mean(0), rtol=0, atol=1e-5)
    assert [t["checkpoint"] for t in metadata["teachers"]] == [str(p) for p in two_teachers]
    assert metadata["classes"] == list(SCENES) and metadata["windowed"] is False
    # What the clips were: their sampled fingerprint and, from the cache, their full content hash.
    assert metadata["dataset_fingerprint"] == fingerprint_files(tiny_root, keys)
    assert metadata["dataset_content_hash"] == content_hash_by_hand(tiny_root, keys)
    # Table 1: one row per teacher name (two seeds summarised) and the ensemble.
    assert list(table["teacher"]) == ["debug", "ensemble of 2 (debug)"]
    assert list(table["seeds"]) == [2, 1]
    seeds = pd.read_csv(tmp_path / "table1_seeds.csv")
    assert table.loc[0, "accuracy_mean"] == pytest.approx(seeds["accuracy"][:2].mean())


def test_the_ensemble_is_chosen_apart_from_the_table_rows(
    two_teachers: list[Path], tiny_root: Path, cache_dir: Path, tmp_path: Path, bf16_branch: bool
) -> None:
    """The command's default precision is fp32 on every host: the same logits at 1e-5."""
    datamodule = _datamodule(tiny_root, cache_dir)
    out = tmp_path / "ensemble.npz"
    args = [
        *map(str, two_teachers),
        "--names",
        "passt",
        "ast",
        "--ensemble",
        "passt",
        "--data.root",
        str(tiny_root),
    ]
    assert (
        main([*args, "--data.cache_dir", str(cache_dir), "--out", str(out), "--table", str(tmp_path / "t1")])
        == 0
    )
    table = pd.read_csv(tmp_path / "t1.csv")
    assert list(table["teacher"]) == ["passt", "ast", "ensemble of 1 (passt)"]
    assert (table["precision"] == "fp32").all()
    keys, logits, metadata = load_logits(out)
    assert metadata["precision"] == "fp32"
    datamodule.setup("fit")
    torch.testing.assert_close(
        logits[:3], _own_logits(two_teachers[:1], datamodule, keys[:3])[0], rtol=0, atol=1e-5
    )
    with pytest.raises(ConfigError, match="match no teacher"):
        main(
            [
                *map(str, two_teachers),
                "--names",
                "passt",
                "ast",
                "--ensemble",
                "nonesuch",
                "--data.root",
                str(tiny_root),
            ]
        )


# -- published weights files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two PaSST teachers saved as plain state dicts: the key layout of CP-JKU's passt_25x.pt."""
    folder = tmp_path_factory.mktemp("weights")
    paths = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        with pytest.warns(UserWarning, match="random weights"):
            task = ClassificationTask(
                **{**read_recipe(PASST_TINY), "model_kwargs": {**read_recipe(PASST_TINY)["model_kwargs"]}}
            )
        state = task.model.state_dict()
        assert "head.1.weight" in state and not any(k.startswith(("model.", "net.")) for k in state)
        paths.append(folder / f"passt_{seed}.pt")
        torch.save(state, paths[-1])
    return paths


def test_weights_files_load_through_their_recipe(
    weights_files: list[Path], tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    datamodule = _datamodule(tiny_root, cache_dir)
    out = tmp_path / "ensemble.npz"
    data = ["--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)]
    assert (
        main([*map(str, weights_files), "--recipe", str(PASST_TINY), *data, "--out", str(out), "--table", ""])
        == 0
    )
    keys, logits, metadata = load_logits(out)
    assert [t["recipe"] for t in metadata["teachers"]] == [str(PASST_TINY)] * 2
    datamodule.setup("fit")
    cache = datamodule.datasets["train"].audio
    waveform = cache.read([cache.row_of[keys[0]]])
    expected = []
    for path in weights_files:
        with pytest.warns(UserWarning, match="random weights"):
            task = ClassificationTask(**read_recipe(PASST_TINY), spec=TAU22).eval()
        task.model.load_state_dict(torch.load(path, weights_only=True))
        with torch.no_grad():
            expected.append(task(waveform)[0])
    torch.testing.assert_close(logits[0], torch.stack(expected).mean(0), rtol=0, atol=1e-5)


def test_a_recipe_names_its_front_end_in_its_task_not_its_data(tmp_path: Path) -> None:
    arguments = read_recipe(PASST_TINY)
    assert arguments["frontend"] == "passt_mel" and arguments["frontend_kwargs"] == {"freqm": 16, "timem": 10}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  init_args:\n    model: debug\ndata:\n  sample_rate: 16000\n")
    assert read_recipe(recipe) == {"model": "debug", "sample_rate": 16000}
    recipe.write_text("model:\n  init_args:\n    model: debug\ndata:\n  frontend: passt_mel\n")
    message = f"{recipe}: data.frontend is an option of the task: move it to model.init_args.frontend"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        read_recipe(recipe)


def test_a_weights_file_without_the_classifier_is_refused(
    weights_files: list[Path], tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    state = torch.load(weights_files[0], weights_only=True)
    broken = tmp_path / "no_head.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("head")}, broken)
    run = TeacherRun(str(broken), "passt", recipe=str(PASST_TINY))
    with pytest.raises(WeightsError, match="lacks .* tensors") as info:
        load_teacher(run, _datamodule(tiny_root, cache_dir))
    assert str(broken) in str(info.value) and "head" in str(info.value)
    assert np.isfinite(state["head.1.weight"].numpy()).all()


def test_precision_means_bf16_only_when_asked_or_fast(bf16_branch: bool) -> None:
    cpu = torch.device("cpu")
    assert fast_bf16(cpu) is bf16_branch
    assert uses_bf16(cpu, "bf16") and not uses_bf16(cpu, "fp32")
    assert uses_bf16(cpu, "auto") is bf16_branch
    assert isinstance(autocast(cpu, "bf16"), torch.autocast)
    assert not isinstance(autocast(cpu, "fp32"), torch.autocast)


def test_the_fast_bf16_override_takes_only_0_or_1(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv("ASC_KD_FAST_BF16", raising=False)
    assert fast_bf16(cpu) is hardware_bf16(cpu)
    monkeypatch.setenv("ASC_KD_FAST_BF16", "yes")
    with pytest.raises(ValueError, match="ASC_KD_FAST_BF16 must be 0 or 1, got 'yes'"):
        fast_bf16(cpu)
