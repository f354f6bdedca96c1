"""Deliberate breaks of the science path, each of which some test must catch.

    .venv/bin/python tests/mutations.py [NAME ...]

Copies the repository to a temporary folder, applies one break at a time (the changes issue 15
lists: KD weights, temperature, soft targets, teacher averaging, logits export, fingerprint
check, the artifact's front-end, calibration data, predict's windows and mode, pipeline
--force) and runs the tests that should fail; prints CAUGHT or MISSED for each and exits 1 if
any break went unnoticed. Not part of ``make test``: it runs the selected tests once per break.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent
MUTATIONS = [
    (
        "KD label weight fixed at 1",
        "asc_kd/tasks/distillation.py",
        "            hp.temperature,\n            hp.label_weight,",
        "            hp.temperature,\n            1.0,",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "KD temperature fixed at 1",
        "asc_kd/tasks/distillation.py",
        "            hp.temperature,\n            hp.label_weight,",
        "            1.0,\n            hp.label_weight,",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "Mixup soft targets ignored",
        "asc_kd/tasks/distillation.py",
        '            batch.get("soft_target", batch["target"]),',
        '            batch["target"],',
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "online teachers summed",
        "asc_kd/tasks/distillation.py",
        "for t in self.teachers]).mean(0)",
        "for t in self.teachers]).sum(0)",
        ["tests/tasks/test_distillation.py"],
    ),
    (
        "ensemble summed",
        "asc_kd/ensemble.py",
        "ensemble = ensemble + logits / len(members)",
        "ensemble = ensemble + logits",
        ["tests/test_ensemble.py"],
    ),
    (
        "filenames misaligned in the export",
        "asc_kd/ensemble.py",
        "    keys = dataset.keys\n",
        "    keys = dataset.keys[1:] + dataset.keys[:1]\n",
        ["tests/test_ensemble.py"],
    ),
    (
        "fingerprint check removed",
        "asc_kd/data/datamodule.py",
        "if recorded is not None and recorded != fingerprint_files(self.root, filenames):",
        "if False:",
        ["tests/data/test_datamodule.py"],
    ),
    (
        "artifact with a default front-end",
        "asc_kd/int8.py",
        "    out = export_artifact(task.frontend, quantized, out, metadata)",
        "    out = export_artifact(type(task.frontend)(), quantized, out, metadata)",
        ["tests/test_int8.py"],
    ),
    (
        "calibration on silence",
        "asc_kd/int8.py",
        "(task.features(w) for w in batches)",
        "(task.features(torch.zeros_like(w)) for w in batches)",
        ["tests/test_int8.py"],
    ),
    (
        "predict scores the first window only",
        "asc_kd/submission.py",
        "probabilities = scorer.logits(windows)",
        "probabilities = scorer.logits(windows[:1])",
        ["tests/test_submission.py"],
    ),
    (
        "predict in training mode",
        "asc_kd/submission.py",
        "    task = load_task(path)\n",
        "    task = load_task(path).train()\n",
        ["tests/test_submission.py"],
    ),
    (
        "pipeline --force ignored",
        "asc_kd/stages.py",
        "        if config.force:",
        "        if False:",
        ["tests/test_pipeline.py"],
    ),
]


def main(only: list[str]) -> int:
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, file, old, new, tests in MUTATIONS:
            if only and not any(o in name for o in only):
                continue
            if not _caught(Path(tmp) / "tree", file, old, new, tests):
                missed.append(name)
            print(f"{'MISSED' if name in missed else 'CAUGHT'}: {name}", flush=True)
    return 1 if missed else 0


def _caught(work: Path, file: str, old: str, new: str, tests: list[str]) -> bool:
    shutil.rmtree(work, ignore_errors=True)

    def ignore(folder, names):
        top = {".venv", ".git", "data", "outputs"} if Path(folder) == SRC else set()
        return [n for n in names if n in top or n == "__pycache__" or n.endswith(".ckpt")]

    shutil.copytree(SRC, work, ignore=ignore)
    path = work / file
    text = path.read_text()
    assert text.count(old) == 1, (file, old)
    path.write_text(text.replace(old, new))
    env = {**os.environ, "PYTHONPATH": str(work), "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-o", "addopts=--import-mode=importlib"], cwd=work, env=env, capture_output=True
    )
    return done.returncode != 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
