"""The report's whole system as resumable stages, recorded in a manifest (``pipeline.json``).

1. ``teachers``: fine-tune every teacher recipe, once per seed (``asc_kd.fit``);
2. ``logits``: average the ensemble teachers' logits over the training split; Table 1 scores
   every teacher run and the ensemble on the development-test split;
3. ``students``: distil each system, once per seed, from the ensemble logits;
4. ``quantize``: int8 post-training quantization of each student run, evaluated like fp32;
5. ``tables``: Table 2 (per system and precision, mean ± std over seeds: accuracy, log loss,
   accuracy per device group, MEM, MACs), plus one row per seed.

Every (recipe, seed) run has its own folder (``teachers/passt-seed0/``) and W&B run. All W&B
runs of a pipeline form one group (recorded in the manifest, so a resumed pipeline keeps it),
with job types ``teacher``, ``logits``, ``student``, ``quantize`` and ``tables``; each logs its
outputs as artifacts and declares its inputs (``asc_kd.tracking.lineage``). A stage is skipped when its
recorded output exists, so an interrupted pipeline resumes where it stopped; ``force`` redoes
the chosen stages.

Each stage's runs (fits, the logits export, int8 copies) go to an executor
(``asc_kd.runs.executors``): in this process, as local processes, or as SLURM jobs; the pipeline
waits for a stage's runs before it starts the next stage, and records each run's job (id, logs,
state, times, resources) in its manifest entry. A failed run stops the pipeline after its
stage, naming the run, its job and its log; the next pipeline redoes only failed and missing
runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_write
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.options import CLIP_OPTIONS, build_datamodule, data_values, given_data_options
from asc_kd.data.spec import DEMO_ROOT, is_demo_root
from asc_kd.data.synthetic import SYNTHETIC_NOTE, is_synthetic
from asc_kd.recipes import RECIPES, resolve_recipe
from asc_kd.runs.executors import Job, JobCall, RunFailed, failure_message, run_jobs
from asc_kd.runs.resources import ExecutorConfig, check_resources
from asc_kd.runs.tables import TABLE2_BY, student_rows, to_markdown, write_results

log = logging.getLogger(__name__)

STAGES = ("teachers", "logits", "students", "quantize", "tables")
SYSTEMS = ("system1", "system2", "system3", "system4")


@dataclass
class PipelineConfig:
    """What the pipeline runs and where; ``python -m asc_kd.pipeline --help`` documents each."""

    #: The ``--data.*`` options given (``{"root": "DATA", "layout": "folders"}``), as typed: every
    #: fit and the logits and quantize stages read the data they describe.
    data: dict[str, str] = field(default_factory=dict)
    out: str = "outputs/pipeline"
    demo: bool = True
    teachers: list[str] = field(default_factory=list)
    ensemble: list[str] | None = None
    teacher_seeds: int = 1
    student_seeds: int = 1
    teacher_logits: str | None = None
    student_config: str = "students/kd"
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    students: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    max_epochs: int | None = None
    force: bool = False
    quiet: bool = False
    wandb: bool = True
    wandb_project: str = "asc_kd"
    wandb_group: str | None = None
    fit_args: list[str] = field(default_factory=list)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    @property
    def root(self) -> str:
        """The dataset root: ``--data.root``, else the demo's synthetic scenes."""
        return self.data.get("root", DEMO_ROOT)


@dataclass(frozen=True)
class Run:
    """One (recipe, seed) fit: its manifest key, folder and seed."""

    kind: str
    name: str
    seed: int
    recipe: Path

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}-seed{self.seed}"

    @property
    def label(self) -> str:
        """How the stage line names the run's fit: its stage, recipe and seed."""
        return f"stage {self.kind}s: fitting {self.name}, seed {self.seed}"


def fit_run(configs: list[Path], out: Path, extra: list[str]) -> dict[str, Any]:
    """Run a fit (``asc_kd.training.fit.fit``); its reported checkpoint, selection and test metrics."""
    from asc_kd.training.fit import fit

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
    argv, sys.argv = sys.argv, sys.argv[:1]  # the fit's arguments are these, not the pipeline's
    try:
        cli = fit(args)
    finally:
        sys.argv = argv
    callback = cli.trainer.checkpoint_callback
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    return {"checkpoint": callback.selected_path, "selection": callback.selection_label, "test": metrics}


def fit_entry(configs: list[Path], out: Path, extra: list[str], name: str, seed: int) -> dict[str, Any]:
    """A fit's manifest entry: ``fit_run``'s report with the recipe name and seed (one job's work)."""
    return {**fit_run(configs, out, extra), "name": name, "seed": seed}


#: In SLURM jobs submitit requeues a run at its time limit; Lightning's own SLURM requeue (which
#: would also ignore the SIGTERM that ends the job) stays off, so one mechanism acts.
NO_LIGHTNING_REQUEUE = [
    "--trainer.plugins",
    json.dumps(
        {
            "class_path": "lightning.pytorch.plugins.environments.SLURMEnvironment",
            "init_args": {"auto_requeue": False},
        }
    ),
]


def _new_group(out: Path) -> str:
    """A W&B group name for a new pipeline: its folder's name and the start time."""
    return f"{out.resolve().name}-{datetime.now():%Y%m%d-%H%M%S}"


def _recipe_config(recipe: Path) -> dict[str, Any]:
    """A recipe file's top-level mapping (empty for a missing or non-mapping file)."""
    config = yaml.safe_load(recipe.read_text()) if recipe.is_file() else None
    return config if isinstance(config, dict) else {}


def _recipe_name(recipe: Path) -> str:
    """A recipe's ``name:`` (its runs' folders and table rows), else its file's stem."""
    return str(_recipe_config(recipe).get("name") or recipe.stem)


def _stage_of(key: str) -> str | None:
    """The stage that wrote a manifest entry."""
    return {"teacher": "teachers", "logits": "logits", "student": "students", "int8": "quantize"}.get(
        key.split(":", 1)[0]
    )


def _refuse_recipes_choosing_other_clips(recipes: list[Path], data_options: list[str]) -> None:
    """Every fit and stage of a pipeline must read the same clips: a recipe whose ``data:`` sets
    an option that chooses clips (``asc_kd.data.options.CLIP_OPTIONS``) to another value than
    the pipeline's ``--data.*`` would train its runs on data the logits and quantize stages do
    not read. Such a recipe is refused, naming the file, the option and where it belongs."""
    pipeline = data_values(data_options)
    for recipe in dict.fromkeys(recipes):
        data = _recipe_config(recipe).get("data")
        data = (data.get("init_args") or data) if isinstance(data, dict) else {}
        for key in CLIP_OPTIONS:
            if key in data and data[key] != pipeline[key]:
                raise ConfigError(
                    f"{recipe}: data.{key}: {data[key]} would give its runs other clips than the "
                    f"pipeline's stages read (--data.{key} {pipeline[key]}); give it to the pipeline "
                    f"as --data.{key} {data[key]} (every fit and stage then reads it) and remove it "
                    "from the recipe"
                )


class Pipeline:
    """The stages above, with a manifest recording what each produced."""

    def __init__(self, config: PipelineConfig) -> None:
        given_after_dashes = given_data_options(config.fit_args)
        if given_after_dashes:
            raise ConfigError(
                f"{given_after_dashes[0].split('=')[0]} after --: give the data options before -- "
                "(python -m asc_kd.pipeline --data.root DATA ... -- FIT_OPTIONS), where every fit and "
                "stage reads them"
            )
        check_resources(config.executor)  # every stage's resources, before the first is submitted
        self.config = config
        self.out = Path(config.out)
        self.manifest_path = self.out / "pipeline.json"
        self.manifest: dict[str, Any] = (
            json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}
        )
        if config.force:  # forget what the chosen stages made; keep the others' outputs and the group
            self.manifest = {
                k: v
                for k, v in self.manifest.items()
                if k == "wandb_group" or _stage_of(k) not in (None, *config.stages)
            }
        self.teacher_runs = self._runs(
            "teacher", [resolve_recipe(r) for r in config.teachers], config.teacher_seeds
        )
        names = {run.name for run in self.teacher_runs}
        self.ensemble = set(config.ensemble or names)
        unknown = sorted(self.ensemble - names)
        if unknown and self.teacher_runs:
            raise ConfigError(f"--ensemble names {unknown} are not teacher recipes; recipes: {sorted(names)}")
        student_recipes = [RECIPES / "students" / f"{system}.yaml" for system in config.systems]
        student_recipes += [resolve_recipe(recipe) for recipe in config.students]
        self.student_runs = self._runs("student", student_recipes, config.student_seeds)
        recipes = [run.recipe for run in [*self.teacher_runs, *self.student_runs]]
        _refuse_recipes_choosing_other_clips(
            [resolve_recipe(config.student_config), *recipes], self._data_options()
        )
        self.group = config.wandb_group or self.manifest.get("wandb_group") or _new_group(self.out)

    @contextmanager
    def _stage_run(self, job_type: str, name: str, folder: Path) -> Iterator[Any]:
        """A W&B run of this pipeline's group for a stage outside ``asc_kd.fit`` (None without W&B)."""
        if not self.config.wandb:
            yield None
            return
        from asc_kd.tracking.lineage import stage_run

        with stage_run(job_type, name, folder, self.config.wandb_project, self.group) as run:
            yield run

    def _wandb_args(self, job_type: str) -> list[str]:
        if not self.config.wandb:
            return ["--trainer.logger", "false"]
        return [
            "--trainer.logger.init_args.project",
            self.config.wandb_project,
            "--trainer.logger.init_args.group",
            self.group,
            "--trainer.logger.init_args.job_type",
            job_type,
        ]

    @staticmethod
    def _runs(kind: str, recipes: list[Path], seeds: int) -> list[Run]:
        """One run per recipe and seed; a recipe listed k times gets k x ``seeds`` distinct seeds."""
        taken: Counter[str] = Counter()
        runs = []
        for recipe in recipes:
            name = _recipe_name(recipe)
            for _ in range(seeds):
                runs.append(Run(kind, name, taken[name], recipe))
                taken[name] += 1
        return runs

    def _save(self) -> None:
        self.manifest["wandb_group"] = self.group
        with atomic_write(self.manifest_path) as handle:
            json.dump(self.manifest, handle, indent=2)

    def _done(self, key: str, *paths: str) -> bool:
        """Whether a step's recorded output exists (``force`` redoes the chosen stages only)."""
        entry = self.manifest.get(key)
        if entry is None or entry.get("job", {}).get("state", "COMPLETED") != "COMPLETED":
            return False
        return all(Path(p).exists() for p in paths if p)

    def _execute(self, jobs: list[Job]) -> None:
        """Run a stage's jobs with the chosen executor; record each as it ends (this process alone
        writes the manifest); stop after the stage when one failed."""
        failed = []
        for outcome in run_jobs(self.config.executor, jobs, self.out / "jobs"):
            entry = outcome.value if outcome.value is not None else {}
            self.manifest[outcome.job.key] = {**entry, "job": outcome.record}
            self._save()
            if outcome.value is None:
                failed.append(outcome)
        if failed:
            raise RunFailed(failure_message(failed))

    def _data_options(self) -> list[str]:
        """The ``--data.*`` options of every fit and stage: the root (over the recipes' own), one
        held-out validation split for all (used with ``data.validation=holdout``), then the given."""
        config = self.config
        data = {"root": config.root}
        if config.demo and is_demo_root(config.root):  # never into a root the user typed
            data["generate_synthetic"] = "true"
        data["holdout_file"] = str(self.out / "holdout_split.csv")
        data.update(config.data)
        return [arg for key, value in data.items() for arg in (f"--data.{key}", value)]

    def _fit_args(self) -> list[str]:
        """Every fit's options: the data options, the pipeline's trainer settings, then ``fit_args``."""
        config = self.config
        args = self._data_options()
        if config.max_epochs:
            args += ["--trainer.max_epochs", str(config.max_epochs)]
        return [*args, "--trainer.enable_progress_bar", str(not config.quiet).lower(), *config.fit_args]

    def _datamodule(self) -> SceneDataModule:
        """The data every fit of this pipeline reads: the same ``--data.*`` options, parsed by the
        fit's own parser; no loader workers unless they ask."""
        return build_datamodule(self._data_options(), defaults={"num_workers": 0})

    def _fit_job(self, run: Run, configs: list[Path], extra: list[str]) -> Job | None:
        """The job that fits ``run`` (None when its checkpoint is recorded); when requeued it
        resumes from its ``last.ckpt``."""
        if self._done(run.key, self.manifest.get(run.key, {}).get("checkpoint", "")):
            return None
        folder = self.out / f"{run.kind}s" / f"{run.name}-seed{run.seed}"
        args = [*self._wandb_args(run.kind), *extra, "--seed_everything", str(run.seed), "--name", run.name]
        args += [
            "--overwrite",
            str(self.config.force).lower(),
        ]  # a forced stage fits anew over a finished run
        if self.config.executor.executor == "slurm":
            args += NO_LIGHTNING_REQUEUE
        call = JobCall(
            partial(fit_entry, configs, folder, args, run.name, run.seed),
            resume=partial(fit_entry, configs, folder, [*args, "--ckpt_path", "last"], run.name, run.seed),
        )
        return Job(run.key, run.kind, run.label, call)

    def _fit_all(self, runs: dict[Run, list[Path]], extra: list[str]) -> dict[Run, dict[str, Any]]:
        """Fit every run not fitted yet (each with its config files), and return every run's entry."""
        jobs = [self._fit_job(run, configs, extra) for run, configs in runs.items()]
        self._execute([job for job in jobs if job is not None])
        return {run: self.manifest[run.key] for run in runs}

    def teachers(self) -> list[dict[str, Any]]:
        runs = {run: [RECIPES / "base.yaml", run.recipe] for run in self.teacher_runs}
        return list(self._fit_all(runs, self._fit_args()).values())

    def logits(self, teachers: list[dict[str, Any]]) -> str:

        out = str(self.out / "teachers" / "ensemble_train.npz")
        if not self._done("logits", out):
            label = f"stage logits: ensemble of {', '.join(sorted(self.ensemble))}"
            self._execute(
                [Job("logits", "teacher", label, JobCall(partial(self._export_logits, teachers, out)))]
            )
        return out

    def _export_logits(self, teachers: list[dict[str, Any]], out: str) -> dict[str, Any]:
        """The logits stage's work (one job): the ensemble's logits file, Table 1 and its W&B run."""
        from asc_kd.evaluation.logits import TeacherRun, export_logits

        datamodule = self._datamodule()
        runs = [
            TeacherRun(t["checkpoint"], t["name"], t["seed"], t["selection"], t["name"] in self.ensemble)
            for t in teachers
        ]
        title = "Table 1: teachers on the development-test split"
        if is_demo_root(self.config.root):  # a demo root made before generated sets were marked
            title += SYNTHETIC_NOTE
        table = self.out / "table1"
        progress = not self.config.quiet
        frame = export_logits(runs, datamodule, out, "train", table, title=title, progress=progress)
        with self._stage_run("logits", "logits", self.out / "teachers") as run:
            if run is not None:
                from asc_kd.tracking.lineage import record_logits

                teachers_used = [t["checkpoint"] for t in teachers if t["name"] in self.ensemble]
                record_logits(run, teachers_used, out, table, frame)
        return {"file": out, "table1": frame.to_dict("records")}

    def students(self, logits: str | None) -> dict[Run, dict[str, Any]]:
        if not logits:
            raise ConfigError(
                "the students stage needs teacher logits: run the logits stage or give --teacher-logits"
            )
        configs = [resolve_recipe(self.config.student_config)]
        if self.config.demo:
            overlay = [RECIPES / "demo" / "synthetic.yaml"]
        else:
            overlay = []
        runs = {run: [RECIPES / "base.yaml", *configs, run.recipe, *overlay] for run in self.student_runs}
        return self._fit_all(runs, [*self._fit_args(), "--data.teacher_logits", logits])

    def quantize(self, students: dict[Run, dict[str, Any]]) -> dict[Run, dict[str, Any]]:
        jobs = []
        for run, fitted in students.items():
            key = f"int8:{run.name}-seed{run.seed}"
            artifact = str(self.out / "students" / f"{run.name}-seed{run.seed}.int8.pt")
            if not self._done(key, artifact):
                call = JobCall(partial(self._quantize_run, run, fitted, artifact))
                jobs.append(Job(key, "student", f"stage quantize: {run.name}, seed {run.seed}", call))
        self._execute(jobs)
        return {run: self.manifest[f"int8:{run.name}-seed{run.seed}"] for run in students}

    def _quantize_run(self, run: Run, fitted: dict[str, Any], artifact: str) -> dict[str, Any]:
        """One student's int8 copy and its evaluation (one job): the QuantizationExport's copy made at
        the fit's end when it is of the recorded checkpoint, else a new one."""
        from asc_kd.deployment.quantize import quantize_task
        from asc_kd.tasks.restore import load_task

        checkpoint = fitted["checkpoint"]
        made_at_fit_end = Path(checkpoint).parent / f"{run.name}.int8.json"  # QuantizationExport
        report = json.loads(made_at_fit_end.read_text()) if made_at_fit_end.is_file() else None
        if report is not None and report.get("source_checkpoint") == checkpoint and not self.config.force:
            shutil.copyfile(report["artifact"], artifact)
            report["artifact"] = artifact
            with atomic_write(Path(artifact).with_suffix(".json")) as handle:
                json.dump(report, handle, indent=2)
        else:
            report = quantize_task(
                load_task(checkpoint),
                self._datamodule(),
                artifact,
                source=checkpoint,
                progress=not self.config.quiet,
            )
            name = f"quantize-{run.name}-seed{run.seed}"
            with self._stage_run("quantize", name, self.out / "students") as wandb_run:
                if wandb_run is not None:
                    from asc_kd.tracking.lineage import record_quantize

                    record_quantize(wandb_run, checkpoint, artifact, report)
        return {**report, "selection": fitted["selection"]}

    def tables(self, reports: dict[Run, dict[str, Any]]) -> pd.DataFrame:
        rows = [
            row
            for run, report in reports.items()
            for row in student_rows(report, run.name, report.get("selection", "-"), run.seed)
        ]
        title = "Table 2: students on the development-test split"
        if is_demo_root(self.config.root) or is_synthetic(self.config.root):
            title += SYNTHETIC_NOTE
        frame = pd.DataFrame(rows).astype({"artifact_bytes": "Int64"})  # none for fp32
        summary, written = write_results(frame, TABLE2_BY, self.out / "table2", title)
        log.info("wrote Table 2 to %s", ", ".join(map(str, written)))
        with self._stage_run("tables", "tables", self.out) as run:
            if run is not None:
                from asc_kd.tracking.lineage import record_tables

                students = [
                    (self.manifest[r.key]["checkpoint"], report["artifact"]) for r, report in reports.items()
                ]
                record_tables(run, students, self.out / "table2", summary)
        return summary

    def run(self) -> pd.DataFrame | None:
        stages = set(self.config.stages)
        teachers = self.teachers() if stages & {"teachers", "logits"} else []
        if "logits" in stages:
            logits = self.logits(teachers)
        else:
            logits = self.config.teacher_logits or self.manifest.get("logits", {}).get("file")
        students = self.students(logits) if "students" in stages else {}
        if not stages & {"quantize", "tables"}:
            return None
        if not students:
            missing = [run.key for run in self.student_runs if not self._done(run.key)]
            if missing:
                raise ConfigError(f"no trained student for {missing[0]}; run the students stage first")
            students = {run: self.manifest[run.key] for run in self.student_runs}
        reports = self.quantize(students)
        if "tables" not in stages:
            return None
        table1 = self.out / "table1.md"
        if table1.is_file():
            print(table1.read_text())
        frame = self.tables(reports)
        print(to_markdown(frame))
        tables = ", ".join(str(t) for t in (table1, self.out / "table2.md") if t.is_file())  # what exists
        print(f"\nTables: {tables} (per seed: *_seeds.csv); runs in {self.out}/")
        return frame
