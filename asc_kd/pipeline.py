"""``python -m asc_kd.pipeline``: the report's whole system in one command (``make demo``).

    python -m asc_kd.pipeline                       # synthetic scenes, tiny teachers, CPU
    python -m asc_kd.pipeline --root DATA --teachers experiments/teachers/passt.yaml ... \\
        --student-config experiments/students/kd.yaml --no-demo

Stages, each skipped when its output already exists (``--force`` redoes them), so an
interrupted run resumes where it stopped:

1. ``teachers``: fine-tune every teacher recipe (``python -m asc_kd.fit``);
2. ``logits``: average their logits on the train split, write Table 1 (teachers, ensemble);
3. ``students``: distil systems 1-4 from the ensemble logits;
4. ``quantize``: int8 post-training quantization of each student, evaluated like fp32;
5. ``tables``: Table 2 (per system: accuracy, log loss, MEM, MACs, fp32 and int8, per device
   group), markdown and CSV.

Every run's config, checkpoint and metrics stay under ``--out``. With the default synthetic
scenes every accuracy is synthetic.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.io import atomic_write
from asc_kd.tables import to_markdown, write_table

log = logging.getLogger(__name__)

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
STAGES = ("teachers", "logits", "students", "quantize", "tables")
SYSTEMS = ("system1", "system2", "system3", "system4")


def _fit(configs: list[Path], out: Path, extra: list[str]) -> dict[str, Any]:
    """Run ``asc_kd.fit`` and return its best checkpoint and test metrics."""
    from asc_kd.fit import main as fit_main

    args = [arg for config in configs for arg in ("--config", str(config))]
    args += [
        "--trainer.default_root_dir",
        str(out),
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--checkpoint.dirpath",
        str(out / "checkpoints"),
        *extra,
    ]
    cli = fit_main(args)
    best = cli.trainer.checkpoint_callback.best_model_path
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    return {"checkpoint": best, "test": metrics}


def _stage_of(key: str) -> str | None:
    """The stage that wrote a manifest entry."""
    prefix = key.split(":", 1)[0]
    if prefix.startswith("teacher"):
        return "teachers"
    return {"logits": "logits", "student": "students", "int8": "quantize"}.get(prefix)


class Pipeline:
    """The stages above, with a manifest (``pipeline.json``) recording what each produced."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.manifest_path = self.out / "pipeline.json"
        self.manifest: dict[str, Any] = (
            json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}
        )
        if args.force:  # forget what the chosen stages made; keep the others' outputs
            self.manifest = {
                k: v for k, v in self.manifest.items() if _stage_of(k) not in (None, *args.stages)
            }

    def _save(self) -> None:
        with atomic_write(self.manifest_path) as handle:
            json.dump(self.manifest, handle, indent=2)

    def _done(self, key: str, *paths: str) -> bool:
        """Whether a step's recorded output exists (``--force`` redoes the chosen stages only)."""
        return key in self.manifest and all(Path(p).exists() for p in paths if p)

    def _data_args(self) -> list[str]:
        args = ["--data.root", self.args.root]
        if self.args.cache_dir:
            args += ["--data.cache_dir", self.args.cache_dir]
        if self.args.demo:
            args += ["--data.generate_synthetic", "true"]
        if self.args.max_epochs:
            args += ["--trainer.max_epochs", str(self.args.max_epochs)]
        return [*args, "--trainer.enable_progress_bar", str(not self.args.quiet).lower(), *self.args.fit_args]

    def teachers(self) -> list[str]:
        checkpoints = []
        for index, recipe in enumerate(self.args.teachers):
            key = f"teacher{index}:{Path(recipe).stem}"
            if not self._done(key, self.manifest.get(key, {}).get("checkpoint", "")):
                log.info("stage teachers: fitting %s", recipe)
                configs = [EXPERIMENTS / "base.yaml", Path(recipe)]
                self.manifest[key] = _fit(
                    configs, self.out / "teachers" / Path(recipe).stem, self._data_args()
                )
                self._save()
            checkpoints.append(self.manifest[key]["checkpoint"])
        return checkpoints

    def logits(self, checkpoints: list[str]) -> str:
        from asc_kd.data.datamodule import TAU22DataModule
        from asc_kd.logits import export_logits

        out = str(self.out / "teachers" / "ensemble_train.npz")
        if not self._done("logits", out):
            log.info("stage logits: ensemble of %d teachers", len(checkpoints))
            datamodule = TAU22DataModule(
                root=self.args.root,
                cache_dir=self.args.cache_dir,
                num_workers=0,
                generate_synthetic=self.args.demo,
            )
            names = [Path(recipe).stem for recipe in self.args.teachers]
            frame = export_logits(checkpoints, datamodule, out, "train", self.out / "table1", names=names)
            self.manifest["logits"] = {"file": out, "table1": frame.to_dict("records")}
            self._save()
        return out

    def students(self, logits: str) -> dict[str, str]:
        checkpoints = {}
        for system in self.args.systems:
            key = f"student:{system}"
            if not self._done(key, self.manifest.get(key, {}).get("checkpoint", "")):
                log.info("stage students: distilling %s", system)
                configs = [
                    EXPERIMENTS / "base.yaml",
                    Path(self.args.student_config),
                    EXPERIMENTS / "students" / f"{system}.yaml",
                ]
                if self.args.demo:
                    configs.append(EXPERIMENTS / "demo" / "synthetic.yaml")
                extra = [*self._data_args(), "--data.teacher_logits", logits]
                self.manifest[key] = _fit(configs, self.out / "students" / system, extra)
                self._save()
            checkpoints[system] = self.manifest[key]["checkpoint"]
        return checkpoints

    def quantize(self, checkpoints: dict[str, str]) -> dict[str, dict]:
        from asc_kd.checkpoints import load_task
        from asc_kd.data.datamodule import TAU22DataModule
        from asc_kd.quantize import quantize_task

        reports = {}
        datamodule = TAU22DataModule(root=self.args.root, cache_dir=self.args.cache_dir, num_workers=0)
        for system, checkpoint in checkpoints.items():
            key = f"int8:{system}"
            artifact = str(self.out / "students" / f"{system}.int8.pt")
            if not self._done(key, artifact):
                log.info("stage quantize: %s", system)
                made_at_fit_end = Path(checkpoint).parent / f"{system}.int8.json"  # QuantizationExport
                if made_at_fit_end.is_file() and not self.args.force:
                    report = json.loads(made_at_fit_end.read_text())
                    shutil.copyfile(report["artifact"], artifact)
                    report["artifact"] = artifact
                    with atomic_write(Path(artifact).with_suffix(".json")) as handle:
                        json.dump(report, handle, indent=2)
                else:
                    report = quantize_task(load_task(checkpoint), datamodule, artifact, source=checkpoint)
                self.manifest[key] = report
                self._save()
            reports[system] = self.manifest[key]
        return reports

    def tables(self, reports: dict[str, dict]) -> pd.DataFrame:
        rows = []
        for system, report in reports.items():
            for precision in ("fp32", "int8"):
                metrics = report[precision]
                rows.append(
                    {
                        "system": system,
                        "precision": precision,
                        "acc": metrics["acc"],
                        "log_loss": metrics["log_loss"],
                        "acc_real": metrics["acc_real"],
                        "acc_seen": metrics["acc_seen"],
                        "acc_unseen": metrics["acc_unseen"],
                        "mem_bytes": report["mem_bytes"] if precision == "int8" else 4 * report["params"],
                        "macs": report["macs"],
                    }
                )
        frame = pd.DataFrame(rows)
        title = "Table 2: students on the development-test split"
        if self.args.demo:
            title += " (SYNTHETIC scenes: not TAU22 numbers)"
        write_table(frame, self.out / "table2", title=title)
        return frame

    def run(self) -> None:
        stages = set(self.args.stages)
        teachers = self.teachers() if stages & {"teachers", "logits"} else []
        logits = (
            self.logits(teachers)
            if "logits" in stages
            else (self.args.teacher_logits or self.manifest.get("logits", {}).get("file"))
        )
        students = self.students(logits) if "students" in stages else {}
        if stages & {"quantize", "tables"}:
            students = students or {s: self.manifest[f"student:{s}"]["checkpoint"] for s in self.args.systems}
            reports = self.quantize(students)
            if "tables" in stages:
                table1 = self.out / "table1.md"
                if table1.is_file():
                    print(table1.read_text())
                frame = self.tables(reports)
                print(to_markdown(frame))
                print(f"\nTables and runs are in {self.out}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data/synthetic", help="dataset root (default: synthetic scenes)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="outputs/pipeline")
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="synthetic scenes and CPU-sized recipes (--no-demo for the full recipe)",
    )
    parser.add_argument("--teachers", nargs="+", default=None, help="teacher recipes (YAML)")
    parser.add_argument("--teacher-logits", default=None, help="existing logits file when skipping teachers")
    parser.add_argument("--student-config", default=str(EXPERIMENTS / "students" / "kd.yaml"))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--max-epochs", type=int, default=None, help="override every recipe's epochs")
    parser.add_argument("--force", action="store_true", help="redo stages whose outputs exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("fit_args", nargs=argparse.REMAINDER, help="extra `asc_kd.fit` options after --")
    args = parser.parse_args(argv)
    args.fit_args = [a for a in args.fit_args if a != "--"]
    if args.teachers is None:
        demo_teachers = EXPERIMENTS / "demo" / "teachers"
        args.teachers = [str(demo_teachers / "cnn_tiny.yaml"), str(demo_teachers / "ast_tiny.yaml")]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    Pipeline(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
