"""The documentation's own-model walkthrough, run as written: ``mywork.py`` and its four commands.

The file and the commands are read from docs/extending.md, so the page cannot drift from what works.
Each command runs through its ``main`` in this process, from a working folder holding only
``mywork.py``; between the fit and the later commands the module and its short model name are
forgotten, so they must be imported again from what the checkpoint records.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import wandb
from fit_helpers import CONF, REPO, command_line, offline_runs, wandb_records

from asc_kd.models import MODELS
from asc_kd.tasks.restore import read_checkpoint

SECTION = "### Your own model and objective, end to end"


def readme_walkthrough() -> tuple[str, list[list[str]]]:
    """The section's Python file and its commands (``python -m`` lines, continuations joined)."""
    text = (REPO / "docs" / "extending.md").read_text()
    section = text[text.index(SECTION) :]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return python, [shlex.split(line) for line in bash.splitlines() if line.strip()]


def test_the_walkthrough_names_a_file_and_four_commands() -> None:
    python, commands = readme_walkthrough()
    assert python.startswith("# mywork.py\n")
    assert [command[:3] for command in commands] == [
        ["python", "-m", f"asc_kd.{name}"] for name in ("fit", "quantize", "export", "predict")
    ]


@pytest.mark.slow
def test_own_model_and_task_fit_quantize_export_predict(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    python, commands = readme_walkthrough()
    work = tmp_path / "work"
    work.mkdir()
    (work / "mywork.py").write_text(python)
    wandb.init(mode="offline", dir=str(tmp_path))  # W&B's service starts outside the work folder
    wandb.finish()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))  # what `python -m` does for the working folder
    # Start and end without the module and its short name (teardown restores what was there).
    monkeypatch.delitem(sys.modules, "mywork", raising=False)
    monkeypatch.delitem(MODELS, "tiny_cnn", raising=False)
    monkeypatch.setenv("ASC_KD_CACHE", str(cache_dir))
    shrink = ["--config", str(CONF / "student.yaml")]  # a few CPU seconds instead of 100 epochs

    for command in commands:
        module, args = command[2], [arg.replace("ROOT", str(tiny_root)) for arg in command[3:]]
        if module == "asc_kd.fit":
            with command_line("python -m asc_kd.fit"):
                cli = importlib.import_module(module).main([*args, *shrink])
            assert type(cli.model).__name__ == "SmoothedLabels" and cli.model.hparams.smoothing == 0.1
            assert type(cli.model.model).__name__ == "TinyCNN"
            (run,) = offline_runs(Path(cli.trainer.default_root_dir))
            logged = {
                item.key or "/".join(item.nested_key)
                for record in wandb_records(run)
                if record.WhichOneof("record_type") == "history"
                for item in record.history.item
            }
            assert {"train/loss", "train/confidence"} <= logged  # every returned entry is logged
            # A new process knows neither the module nor the short name it registered.
            monkeypatch.delitem(sys.modules, "mywork")
            monkeypatch.delitem(MODELS, "tiny_cnn")
        else:
            assert importlib.import_module(module).main(args) == 0, command

    checkpoints = work / "outputs" / "tiny_smoothed-seed0" / "checkpoints"
    record = read_checkpoint(checkpoints / "last.ckpt")["asc_kd"]
    assert record["task_class"] == "mywork:SmoothedLabels"
    assert record["model_import_path"] == "mywork:TinyCNN"
    # system1.yaml's QuantizationExport wrote it, quantize wrote it again: one name, the run's
    assert (checkpoints / "tiny_smoothed-seed0.int8.json").is_file() and not list(
        checkpoints.glob("*last.int8*")
    )
    artifact = torch.jit.load(str(checkpoints / "tiny_smoothed-seed0.int8.pt"))
    assert artifact(torch.zeros(2, 32_000)).shape == (2, 10)
    assert (checkpoints / "last.onnx").is_file()
    submission = pd.read_csv(work / "submission.csv", sep="\t")
    wavs = sorted((tiny_root / "audio").glob("*.wav"))
    assert len(submission) == len(wavs) > 0
    assert submission.drop(columns=["filename", "scene_label"]).notna().all().all()
