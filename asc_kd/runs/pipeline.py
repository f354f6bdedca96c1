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
outputs as artifacts and declares its inputs (``asc_kd.tracking.lineage``). Each run is decided
from its record (below), so an interrupted pipeline resumes where it stopped; ``force`` redoes
the chosen stages.

Each stage's runs (fits, the logits export, int8 copies) go to an executor
(``asc_kd.runs.executors``): in this process, as local processes, or as SLURM jobs; the pipeline
waits for a stage's runs before it starts the next stage. A failed run stops the pipeline after
its stage, naming the run, its job and its log.

Every run has a record (``asc_kd.runs.record``: ``run.json`` in a fit's folder,
``stages/<name>.json`` for the others) with its resolved configuration and its hash, its state,
attempts, owner and artifacts; the manifest is rebuilt from the records, so a driver that dies
loses nothing. Every fit's configuration is resolved here, by the fit's own parser, and handed
to its job as one file (``fit_config.yaml`` in its folder). A rerun decides for each run from
its record, and says so in one line:

- done with the same configuration and inputs: reused;
- done, or with progress, under another configuration: refused, naming the keys that changed
  (``--force`` redoes the chosen stages; another ``--out`` keeps both);
- failed, timed out, cancelled or stopped: resumed from its ``last.ckpt`` in the same W&B run;
- running with a live owner (its SLURM job, or its process): adopted, i.e. waited for, never
  started a second time; with a dead owner: taken over and resumed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_write
from asc_kd.data import dataset_fingerprint
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.options import CLIP_OPTIONS, GivenData, build_datamodule, data_values
from asc_kd.data.spec import DEMO_ROOT, is_demo_root
from asc_kd.data.synthetic import is_synthetic
from asc_kd.deployment.quantize import INT8_SUFFIX, quantize_stage, run_label
from asc_kd.evaluation.tables import (
    TABLE2_BY,
    display_frame,
    student_rows,
    table_title,
    to_markdown,
    write_results,
)
from asc_kd.recipes import RECIPES, recipe_config, recipe_value, resolve_recipe
from asc_kd.runs.executors import (
    Job,
    JobCall,
    RunFailed,
    failure_message,
    owner_alive,
    run_jobs,
)
from asc_kd.runs.record import (
    ENDED_STATES,
    RECORD,
    artifacts_present,
    changed_keys,
    file_hash,
    identity,
    identity_hash,
    job_line,
    now,
    owner_text,
    read_record,
    update_record,
)
from asc_kd.runs.resources import ExecutorConfig, check_resources
from asc_kd.tracking.lineage import WandbTarget, record_tables, stage_run
from asc_kd.training.fit import fit, run_files
from asc_kd.training.logits import TeacherRun, ensemble_members, logits_stage
from asc_kd.training.resolve import resolve_config, write_config

log = logging.getLogger(__name__)
#: Where the lines about pipeline options replacing recipe values go (not shown under ``--quiet``).
overrides_log = logging.getLogger("asc_kd.recipes.overrides")
#: Where each fit's list of files goes (not shown under ``--quiet``).
files_log = logging.getLogger("asc_kd.training.fit.files")

#: Shrinks the student recipes to the demo's synthetic scenes and CPU budget (``--demo``).
DEMO_OVERLAY = RECIPES / "demo" / "synthetic.yaml"
STAGES = ("teachers", "logits", "students", "quantize", "tables")
SYSTEMS = ("system1", "system2", "system3", "system4")


@dataclass
class PipelineConfig:
    """What the pipeline runs and where; ``python -m asc_kd.pipeline --help`` documents each."""

    #: The ``--data.*`` options given (``{"root": "DATA", "layout": "folders"}``), typed: every fit
    #: and the logits and quantize stages read the data they describe.
    data: dict[str, Any] = field(default_factory=dict)
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
    wandb_project: str = WandbTarget.project
    wandb_group: str | None = None
    fit_args: list[str] = field(default_factory=list)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    #: start the driver away from the terminal (``asc_kd.runs.driver.detach``) and return
    detach: bool = False

    @property
    def root(self) -> str:
        """The dataset root: ``--data.root``, else the demo's synthetic scenes."""
        return self.data.get("root", DEMO_ROOT)


@dataclass(frozen=True)
class Run:
    """One (recipe, seed) fit: its manifest key, folder and seed, and the recipe files it composes."""

    kind: str
    name: str
    seed: int
    recipe: Path
    configs: tuple[Path, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}-seed{self.seed}"

    @property
    def path(self) -> str:
        """How the console names the run: its folder under ``--out`` (``teachers/passt-seed0``)."""
        return f"{self.kind}s/{self.name}-seed{self.seed}"

    @property
    def label(self) -> str:
        """How the stage line names the run's fit: its stage, recipe and seed."""
        return f"stage {self.kind}s: fitting {self.name}, seed {self.seed}"


#: The file a fit's job is handed: the run's resolved configuration (``--config FILE``).
FIT_CONFIG = "fit_config.yaml"


def fit_run(config_file: Path, resume: bool) -> dict[str, Any]:
    """Run a fit (``asc_kd.training.fit.fit``) of a resolved configuration file, from its
    ``last.ckpt`` when ``resume``; its reported checkpoint, selection, test metrics and the hash
    of the clips it read (``asc_kd.data.dataset_fingerprint``), which its record keeps."""

    cli = fit(["--config", str(config_file), *(["--ckpt_path", "last"] if resume else [])])
    if cli.summary is not None:
        files_log.info("%s", run_files(cli.summary))

    callback = cli.trainer.checkpoint_callback
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    return {
        "checkpoint": callback.selected_path,
        "selection": callback.selection_label,
        "test": metrics,
        # the clips it was made of: their full content hash (from the cache), else the sampled one
        "data": dataset_fingerprint(cli.datamodule),
    }


def fit_entry(config_file: Path, resume: bool, name: str, seed: int) -> dict[str, Any]:
    """A fit's manifest entry: ``fit_run``'s report with the recipe name and seed (one job's work)."""
    return {**fit_run(config_file, resume), "name": name, "seed": seed}


#: In SLURM jobs submitit requeues a run at its time limit; Lightning's own SLURM requeue (which
#: would also ignore the SIGTERM that ends the job) stays off, so one mechanism acts.
NO_LIGHTNING_REQUEUE = {
    "trainer.plugins": {
        "class_path": "lightning.pytorch.plugins.environments.SLURMEnvironment",
        "init_args": {"auto_requeue": False},
    }
}


def _new_group(out: Path) -> str:
    """A W&B group name for a new pipeline: its folder's name and the start time."""
    return f"{out.resolve().name}-{datetime.now():%Y%m%d-%H%M%S}"


def _recipe_name(recipe: Path) -> str:
    """A recipe's ``name:`` (its runs' folders and table rows), else its file's stem."""
    return str(recipe_config(recipe).get("name") or recipe.stem)


def _packaged(recipe: Path) -> bool:
    return RECIPES.resolve() in recipe.resolve().parents


def _chain(recipes: list[Path], overlay: Path | None) -> tuple[Path, ...]:
    """A fit's recipe files in the order they compose: the packaged ones, then the demo overlay
    (which shrinks them to the demo's data and CPU budget), then the user's own, so that a value
    a user's recipe sets is never overridden by the overlay."""
    chain = [r for r in recipes if _packaged(r)]
    chain += [overlay] if overlay is not None else []
    return tuple(chain + [r for r in recipes if not _packaged(r)])


def _stage_of(key: str) -> str | None:
    """The stage that wrote a manifest entry."""
    return {"teacher": "teachers", "logits": "logits", "student": "students", "int8": "quantize"}.get(
        key.split(":", 1)[0]
    )


def _refuse_recipes_choosing_other_clips(recipes: list[Path], data: dict[str, Any]) -> None:
    """Every fit and stage of a pipeline must read the same clips: a recipe whose ``data:`` sets
    an option that chooses clips (``asc_kd.data.options.CLIP_OPTIONS``) to another value than
    the pipeline's ``--data.*`` would train its runs on data the logits and quantize stages do
    not read. Such a recipe is refused, naming the file, the option and where it belongs."""
    pipeline = data_values(GivenData(data))
    for recipe in dict.fromkeys(recipes):
        section = recipe_config(recipe).get("data")
        section = (section.get("init_args") or section) if isinstance(section, dict) else {}
        for key in CLIP_OPTIONS:
            if key in section and section[key] != pipeline[key]:
                raise ConfigError(
                    f"{recipe}: data.{key}: {section[key]} would give its runs other clips than the "
                    f"pipeline's stages read (--data.{key} {pipeline[key]}); give it to the pipeline "
                    f"as --data.{key} {section[key]} (every fit and stage then reads it) and remove it "
                    "from the recipe"
                )


class Pipeline:
    """The stages above, each run decided from its record; the manifest is built from the records."""

    def __init__(self, config: PipelineConfig) -> None:
        after_dashes = next((arg for arg in config.fit_args if arg.startswith("--data.")), None)
        if after_dashes is not None:
            raise ConfigError(
                f"{after_dashes.split('=')[0]} after --: give the data options before -- "
                "(python -m asc_kd.pipeline --data.root DATA ... -- FIT_OPTIONS), where every fit and "
                "stage reads them"
            )
        check_resources(config.executor)  # every stage's resources, before the first is submitted
        self.config = config
        self.out = Path(config.out)
        self.manifest_path = self.out / "pipeline.json"
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256
        previous = json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}
        self.group = config.wandb_group or previous.get("wandb_group") or _new_group(self.out)
        self.teacher_runs = self._runs(
            "teacher", [resolve_recipe(r) for r in config.teachers], config.teacher_seeds, None
        )
        names = {run.name for run in self.teacher_runs}
        self.ensemble = ensemble_members(names, config.ensemble) if names else set(config.ensemble or ())
        student_config = resolve_recipe(config.student_config)
        student_recipes = [RECIPES / "students" / f"{system}.yaml" for system in config.systems]
        student_recipes += [resolve_recipe(recipe) for recipe in config.students]
        self.student_runs = self._runs("student", student_recipes, config.student_seeds, student_config)
        recipes = [run.recipe for run in [*self.teacher_runs, *self.student_runs]]
        _refuse_recipes_choosing_other_clips([student_config, *recipes], self._data())
        self.logits_file = self._logits_file(previous)
        # Every fit's configuration, resolved by the fit's parser: a wrong key stops here, and so
        # does a changed configuration, before anything is written or submitted.
        stages = set(config.stages)
        fits = [*(self.teacher_runs if stages & {"teachers", "logits"} else [])]
        fits += self.student_runs if stages & {"students", "quantize", "tables"} else []
        self.resolved = {run: self._resolve(run) for run in fits}
        self._say_overrides(fits)
        self._refuse_changed(
            [(run.path, self._record_path(run), self.resolved[run], _stage_of(run.key)) for run in fits]
        )
        self.manifest: dict[str, Any] = {}
        self._rebuild_manifest()

    # -- runs, their configurations and records ---------------------------------------------------
    def _runs(self, kind: str, recipes: list[Path], seeds: int, student_config: Path | None) -> list[Run]:
        """One run per recipe and seed; a recipe listed k times gets k x ``seeds`` distinct seeds."""
        taken: Counter[str] = Counter()
        overlay = DEMO_OVERLAY if kind == "student" and self.config.demo else None
        runs = []
        for recipe in recipes:
            name = _recipe_name(recipe)
            chain = [RECIPES / "base.yaml", *([student_config] if student_config else []), recipe]
            for _ in range(seeds):
                runs.append(Run(kind, name, taken[name], recipe, _chain(chain, overlay)))
                taken[name] += 1
        return runs

    def _folder(self, run: Run) -> Path:
        return self.out / f"{run.kind}s" / f"{run.name}-seed{run.seed}"

    def _record_path(self, run: Run) -> Path:
        return self._folder(run) / RECORD

    def _stage_record(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def _logits_file(self, previous: dict[str, Any]) -> str | None:
        """The teacher logits the students read: the logits stage's file, or the one given."""
        if "logits" in self.config.stages or not (self.config.teacher_logits or previous.get("logits")):
            return str(self.out / "teachers" / "ensemble_train.npz")
        return self.config.teacher_logits or previous["logits"]["file"]

    def _fit_settings(self, run: Run) -> dict[str, Any]:
        """A run's fit settings over its recipes: its folder, W&B, the pipeline's data and trainer
        settings (the user's options after ``--`` come after these)."""
        folder, config = self._folder(run), self.config
        settings: dict[str, Any] = {
            "trainer.default_root_dir": str(folder),
            "checkpoint.dirpath": str(folder / "checkpoints"),
        }
        if config.wandb:
            settings.update(
                {
                    f"trainer.logger.init_args.{key}": value
                    for key, value in (
                        ("save_dir", str(folder)),
                        ("project", config.wandb_project),
                        ("group", self.group),
                        ("job_type", run.kind),
                    )
                }
            )
        else:
            settings["trainer.logger"] = False
        settings.update({f"data.{key}": value for key, value in self._data().items()})
        if config.max_epochs:
            settings["trainer.max_epochs"] = config.max_epochs
        settings["trainer.enable_progress_bar"] = not config.quiet
        return settings

    def _fit_identity(self, run: Run) -> dict[str, Any]:
        """What makes a run the run it is, over everything else: its teacher logits, seed and name."""
        last: dict[str, Any] = {"seed_everything": run.seed, "name": run.name}
        if run.kind == "student":
            last["data.teacher_logits"] = str(self.logits_file)
        if self.config.executor.executor == "slurm":
            last.update(NO_LIGHTNING_REQUEUE)
        return last

    def _resolve(self, run: Run) -> dict[str, Any]:
        return resolve_config(
            run.configs, self._fit_settings(run), self.config.fit_args, self._fit_identity(run)
        )

    def _say_overrides(self, runs: list[Run]) -> None:
        """One line for each recipe value that a pipeline option replaces (``--max-epochs 2``
        over a recipe's ``trainer.max_epochs: 30``), once per recipe file."""
        flags = {"trainer.max_epochs": ("--max-epochs", self.config.max_epochs)}
        flags.update(  # every recipe names a placeholder root: replacing it is the point of --data.root
            {
                f"data.{key}": (f"--data.{key}", value)
                for key, value in self.config.data.items()
                if key != "root"
            }
        )
        said = set()
        for run in runs:
            for key, (flag, value) in flags.items():
                recipes = tuple(
                    r for r in run.configs if r != DEMO_OVERLAY
                )  # the overlay is there to be replaced
                found = recipe_value(recipes, key) if value is not None else None
                if found is None or str(found[0]) == str(value) or (key, found[1]) in said:
                    continue
                said.add((key, found[1]))
                overrides_log.info("%s %s overrides %s: %s of %s", flag, value, key, found[0], found[1])

    def _inputs(self, run: Run) -> dict[str, Any]:
        """The hashes of the files a fit reads besides the data: a student's teacher logits."""
        if run.kind != "student" or not self.logits_file or not Path(self.logits_file).is_file():
            return {}
        # Hashed once per version of the file, not once per student (TAU22's logits are ~40 MB).
        stat = Path(self.logits_file).stat()
        key = (str(self.logits_file), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_hash(self.logits_file)
        return {"teacher_logits": self._hashes[key]}

    def _refuse_changed(self, runs: list[tuple[str, Path, dict[str, Any], str | None]]) -> None:
        """Refuse, before anything is written, to continue runs made under another configuration
        unless ``--force`` redoes their stage (or, for a forced stage, to start a second writer
        beside a live one). A run that failed before it made anything is simply fitted anew."""
        changes, busy = [], []
        for name, path, config, stage in runs:
            record = read_record(path)
            if record is None or "config_hash" not in record:
                continue
            # The configuration alone: changed inputs (an upstream run redone) redo a run instead.
            old = {k: v for k, v in (record.get("identity") or {}).items() if not k.startswith("inputs.")}
            new = self._identity(config, None)
            forced = self.config.force and stage in self.config.stages
            if (
                forced
                and record.get("state") not in ENDED_STATES
                and owner_alive(record.get("owner")) is not False
            ):
                busy.append(f"{name} is running ({owner_text(record['owner'])})")
            if old == new or forced or not _has_progress(record, path):
                continue
            diff = changed_keys(old, new)
            shown = ", ".join(f"{key}: {_short(a)} -> {_short(b)}" for key, a, b in diff[:6])
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            changes.append(f"{name} ({shown}{more})")
        if busy:
            raise ConfigError(
                f"--force would start second writers: {'; '.join(busy)}; cancel them first "
                f"(asc-kd pipeline --cancel --out {self.out})"
            )
        if changes:
            raise ConfigError(
                f"{len(changes)} run(s) in {self.out} were made under another configuration: "
                f"{'; '.join(changes)}. Redo them with --force (the chosen stages run anew), or give "
                "another --out to keep both"
            )

    def _decide(
        self, name: str, path: Path, config: dict[str, Any], inputs: dict[str, Any], resume_from: Path | None
    ) -> tuple[str, dict[str, Any] | None]:
        """What to do with a run, from its record, said in one line: ``reuse`` (done, same
        configuration), ``adopt`` (a live owner works on it), ``resume`` (stopped, failed or
        orphaned, with a checkpoint) or ``new``; with the record."""
        record = read_record(path)
        if record is None:
            return "new", None
        new = self._identity(config, inputs)
        same = not changed_keys(record.get("identity") or {}, new)
        forced = self.config.force and _stage_of(record.get("key", "")) in self.config.stages
        state = record.get("state")
        if state == "done" and same and not forced:
            if artifacts_present(record):
                log.info("reusing %s: done, same config", name)
                return "reuse", record
            log.info("redoing %s: done, but a file it made is gone or changed", name)
            return "new", record
        if forced:
            return "new", record
        if not same:  # refused before when the configuration changed: here its inputs did
            changed = [
                key.removeprefix("inputs.") for key, _, _ in changed_keys(record.get("identity") or {}, new)
            ]
            log.info("redoing %s: what it read changed (%s)", name, ", ".join(changed) or "its inputs")
            return "new", record
        if state not in ENDED_STATES:
            alive = owner_alive(record.get("owner"))
            if alive is not False:
                log.info("adopting %s: %s %s; waiting for it", name, state, owner_text(record["owner"]))
                return "adopt", record
            why = f"its owner ({owner_text(record.get('owner'))}) is gone"
        else:
            said = {"failed": "it failed", "cancelled": "it was cancelled", "timeout": "it timed out"}
            why = said.get(state, f"it was {state}") + (
                f" ({record['reason']})" if record.get("reason") else ""
            )
        if resume_from is not None and resume_from.is_file():
            log.info("resuming %s from its last checkpoint: %s", name, why)
            return "resume", record
        log.info("starting %s anew: %s, with no checkpoint", name, why)
        return "new", record

    def _plan_record(
        self, path: Path, key: str, config: dict[str, Any], inputs: dict[str, Any], fresh: Path | None
    ) -> None:
        """Write a run's record before its job starts (emptying ``fresh``, its folder, when the run
        starts anew over another configuration or under ``--force``)."""
        if fresh is not None and fresh.is_dir():
            shutil.rmtree(fresh)
        kind, _, rest = key.partition(":")
        name, _, seed = rest.rpartition("-seed")

        flat = self._identity(config, inputs)

        def plan(record: dict[str, Any]) -> None:
            if record.get("config_hash") != identity_hash(flat):
                record.clear()
            record.update(
                key=key,
                kind=kind,
                name=name or key,
                seed=int(seed) if seed.isdigit() else None,
                config=config,
                inputs=inputs,
                identity=flat,
                config_hash=identity_hash(flat),
                state="planned",
                reason=None,
            )
            record.setdefault("attempts", [])

        update_record(path, plan)

    def _identity(self, config: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any]:
        """A run's identity (``asc_kd.runs.record.identity``) with the paths under ``--out`` written
        ``<out>/...``: a pipeline folder that is moved or copied keeps its runs."""
        prefixes = sorted({str(self.out), str(self.out.resolve())}, key=len, reverse=True)

        def portable(value: Any) -> Any:
            if isinstance(value, str):
                for prefix in prefixes:
                    if value == prefix or value.startswith(prefix + "/"):
                        return "<out>" + value[len(prefix) :]
            return value

        return {key: portable(value) for key, value in identity(config, inputs).items()}

    def _rebuild_manifest(self) -> None:
        """The manifest's entries, from the records of this pipeline's runs."""
        self.manifest = {}
        paths = {run.key: self._record_path(run) for run in self.teacher_runs}  # in stage order
        paths["logits"] = self._stage_record("logits")
        paths.update({run.key: self._record_path(run) for run in self.student_runs})
        paths.update({f"int8:{run.name}-seed{run.seed}": self._int8_record(run) for run in self.student_runs})
        for key, path in paths.items():
            record = read_record(path)
            if record is not None and record.get("job"):
                self.manifest[key] = {**(record.get("result") or {}), "job": record["job"]}

    def _int8_record(self, run: Run) -> Path:
        return self._stage_record(f"int8-{run.name}-seed{run.seed}")

    def _wandb_target(self) -> WandbTarget | None:
        """Where the stages outside ``asc_kd.fit`` log their W&B runs: this pipeline's group."""
        return WandbTarget(self.config.wandb_project, self.group) if self.config.wandb else None

    @contextmanager
    def _stage_run(self, job_type: str, name: str, folder: Path) -> Iterator[Any]:
        """A W&B run of this pipeline's group for a stage outside ``asc_kd.fit`` (None without W&B)."""
        target = self._wandb_target()
        if target is None:
            yield None
            return

        with stage_run(job_type, name, folder, target.project, target.group) as run:
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

    def _save(self) -> None:
        self._rebuild_manifest()
        self.manifest["wandb_group"] = self.group
        with atomic_write(self.manifest_path) as handle:
            json.dump(self.manifest, handle, indent=2)

    def _done(self, path: Path) -> dict[str, Any] | None:
        """A run's record when it is done and its files are there."""
        record = read_record(path)
        return (
            record
            if record is not None and record.get("state") == "done" and artifacts_present(record)
            else None
        )

    def _execute(self, jobs: list[Job]) -> None:
        """Run a stage's jobs with the chosen executor; record each as it ends (the records are
        written by the jobs and this process; the manifest is rebuilt from them) and say it in
        one line (``asc_kd.runs.record.job_line``); stop after the stage when one failed."""
        failed, said, since = [], set(), now()
        try:
            for outcome in run_jobs(self.config.executor, jobs, self.out / "jobs"):
                if outcome.job.call.record is not None:
                    record = update_record(
                        outcome.job.call.record, lambda r, o=outcome: r.update(job=o.record)
                    )
                    log.info("%s", job_line(record))
                    said.add(outcome.job.key)
                self._save()
                if outcome.value is None:
                    failed.append(outcome)
        except BaseException:
            # The jobs that ended without an outcome: an inline job that raised, jobs a stop cancelled.
            for job in jobs:
                record = read_record(job.call.record) if job.call.record and job.key not in said else None
                last = ((record or {}).get("attempts") or [{}])[-1]
                if record and (record.get("state") in ENDED_STATES or last.get("ended", "") >= since):
                    log.info("%s", job_line(record))
            raise
        finally:
            self._save()
        if failed:
            raise RunFailed(failure_message(failed))

    def _data(self) -> dict[str, Any]:
        """The data options of every fit and stage: the root (over the recipes' own), one
        held-out validation split for all (used with ``data.validation=holdout``), then the given."""
        config = self.config
        data: dict[str, Any] = {"root": config.root}
        if config.demo and is_demo_root(config.root):  # never into a root the user typed
            data["generate_synthetic"] = True
        data["holdout_file"] = str(self.out / "holdout_split.csv")
        data.update(config.data)
        return data

    def _datamodule(self) -> SceneDataModule:
        """The data every fit of this pipeline reads: the same ``--data.*`` options, parsed by the
        fit's own parser; no loader workers unless they ask."""
        return build_datamodule(GivenData(self._data()), defaults={"num_workers": 0})

    def _stage_identity(self) -> dict[str, Any]:
        """The data options every stage reads, without those that cannot change a result."""
        values = data_values(GivenData(self._data()))
        return {
            k: v for k, v in values.items() if k not in ("cache_dir", "num_workers", "generate_synthetic")
        }

    def _fit_job(self, run: Run) -> Job | None:
        """The job that fits ``run`` (None when its record says it is done under the same
        configuration); every start of the job resumes from ``last.ckpt`` when there is one."""
        folder, path = self._folder(run), self._record_path(run)
        config, inputs = self.resolved[run], self._inputs(run)
        last = folder / "checkpoints" / "last.ckpt"
        action, record = self._decide(run.path, path, config, inputs, last)
        if action == "reuse":
            return None
        if action == "adopt":
            assert record is not None
            call = JobCall(lambda: {}, record=path)
            return Job(
                run.key, run.kind, run.label, call, adopt={**record["owner"], "job": record.get("job")}
            )
        anew = action == "new" and record is not None  # another configuration, forced, or nothing kept
        self._plan_record(path, run.key, config, inputs, folder if anew else None)

        config_file = write_config(config, folder / FIT_CONFIG)
        call = JobCall(
            partial(fit_entry, config_file, False, run.name, run.seed),
            resume=partial(fit_entry, config_file, True, run.name, run.seed),
            record=path,
            resume_from=last,
        )
        return Job(run.key, run.kind, run.label, call)

    def _fit_all(self, runs: list[Run]) -> dict[Run, dict[str, Any]]:
        """Fit every run not done yet, and return every run's manifest entry."""
        jobs = [self._fit_job(run) for run in runs]
        self._execute([job for job in jobs if job is not None])
        return {run: self.manifest[run.key] for run in runs}

    def teachers(self) -> list[dict[str, Any]]:
        return list(self._fit_all(self.teacher_runs).values())

    def _stage_job(
        self,
        key: str,
        name: str,
        label: str,
        kind: str,
        config: dict[str, Any],
        inputs: dict[str, Any],
        work: Any,
    ) -> Job | None:
        """The job of a stage run (the logits export, an int8 copy), decided from its record."""
        path = self._stage_record(name)
        self._refuse_changed([(name, path, config, _stage_of(key))])
        action, record = self._decide(f"stages/{name}", path, config, inputs, None)
        if action == "reuse":
            return None
        if action == "adopt":
            assert record is not None
            return Job(
                key,
                kind,
                label,
                JobCall(lambda: {}, record=path),
                adopt={**record["owner"], "job": record.get("job")},
            )
        self._plan_record(path, key, config, inputs, None)
        return Job(key, kind, label, JobCall(work, record=path))

    def logits(self, teachers: list[dict[str, Any]]) -> str:
        out = str(self.logits_file)
        config = {"ensemble": sorted(self.ensemble), "teachers": [run.key for run in self.teacher_runs]}
        config["data"] = self._stage_identity()
        inputs = {run.key: self._checkpoint_hash(self._record_path(run)) for run in self.teacher_runs}
        label = f"stage logits: ensemble of {', '.join(sorted(self.ensemble))}"
        job = self._stage_job(
            "logits", "logits", label, "teacher", config, inputs, partial(self._export_logits, teachers, out)
        )
        if job is not None:
            self._execute([job])
        return out

    @staticmethod
    def _checkpoint_hash(path: Path) -> str | None:
        record = read_record(path) or {}
        return (record.get("artifacts") or {}).get("checkpoint", {}).get("sha256")

    def _export_logits(self, teachers: list[dict[str, Any]], out: str) -> dict[str, Any]:
        """The logits stage's work (one job): the ensemble's logits file, Table 1 and its W&B run."""
        runs = [TeacherRun(t["checkpoint"], t["name"], t["seed"], t["selection"]) for t in teachers]
        frame = logits_stage(
            runs,
            GivenData(self._data()),
            out,
            ensemble=self.ensemble,
            table=self.out / "table1",  # titled, and kept in the logits file, by export_logits
            progress=not self.config.quiet,
            wandb=self._wandb_target(),
        )
        assert frame is not None  # a table was asked for
        return {"file": out, "table1": frame.to_dict("records")}

    def students(self, logits: str | None) -> dict[Run, dict[str, Any]]:
        if not logits:
            raise ConfigError(
                "the students stage needs teacher logits: run the logits stage or give --teacher-logits"
            )
        return self._fit_all(self.student_runs)

    def quantize(self, students: dict[Run, dict[str, Any]]) -> dict[Run, dict[str, Any]]:
        jobs = []
        for run, fitted in students.items():
            key = f"int8:{run.name}-seed{run.seed}"
            artifact = str(self.out / "students" / f"{run_label(run.name, run.seed)}{INT8_SUFFIX}")
            config = {"student": run.key, "data": self._stage_identity()}
            inputs = {run.key: self._checkpoint_hash(self._record_path(run))}
            label = f"stage quantize: {run.name}, seed {run.seed}"
            work = partial(self._quantize_run, run, fitted, artifact)
            job = self._stage_job(key, key.replace(":", "-"), label, "student", config, inputs, work)
            if job is not None:
                jobs.append(job)
        self._execute(jobs)
        return {run: self.manifest[f"int8:{run.name}-seed{run.seed}"] for run in students}

    def _quantize_run(self, run: Run, fitted: dict[str, Any], artifact: str) -> dict[str, Any]:
        """One student's int8 copy and its evaluation (one job): the QuantizationExport's copy made at
        the fit's end when it is of the recorded checkpoint, else a new one."""

        checkpoint = fitted["checkpoint"]
        made_at_fit_end = (
            Path(checkpoint).parent / f"{run_label(run.name, run.seed)}.int8.json"
        )  # QuantizationExport
        report = json.loads(made_at_fit_end.read_text()) if made_at_fit_end.is_file() else None
        if report is not None and report.get("source_checkpoint") == checkpoint and not self.config.force:
            shutil.copyfile(report["artifact"], artifact)
            report["artifact"] = artifact
            with atomic_write(Path(artifact).with_suffix(".json")) as handle:
                json.dump(report, handle, indent=2)
        else:
            report = quantize_stage(
                checkpoint,
                GivenData(self._data()),
                artifact,
                progress=not self.config.quiet,
                wandb=self._wandb_target(),
            )
        return {**report, "selection": fitted["selection"]}

    def tables(self, reports: dict[Run, dict[str, Any]]) -> pd.DataFrame:
        rows = [
            row
            for run, report in reports.items()
            for row in student_rows(report, run.name, report.get("selection", "-"), run.seed)
        ]
        synthetic = is_demo_root(self.config.root) or is_synthetic(self.config.root)
        title = table_title(2, "students", [self._datamodule().test_split()], synthetic)
        frame = pd.DataFrame(rows).astype({"artifact_bytes": "Int64"})  # none for fp32
        summary, written = write_results(frame, TABLE2_BY, self.out / "table2", title)
        log.info("wrote Table 2 to %s", ", ".join(map(str, written)))
        with self._stage_run("tables", "tables", self.out) as run:
            if run is not None:
                students = [
                    (self.manifest[r.key]["checkpoint"], report["artifact"]) for r, report in reports.items()
                ]
                record_tables(run, students, self.out / "table2", summary)
        return summary

    def run(self) -> str | None:
        """Run the chosen stages; with the tables stage, return Tables 1 and 2 and where their
        files are, as ``python -m asc_kd.pipeline`` shows them (else None)."""
        stages = set(self.config.stages)
        if stages & {"teachers", "logits", "students", "quantize"}:
            # Synthetic scenes (the demo root's, or a root given with --data.generate_synthetic true)
            # are made here, once: jobs would all start at once, and a fit takes the option only
            # from its own command line, never from the config file the pipeline writes for it.
            self._datamodule().ensure_root()
        teachers = self.teachers() if stages & {"teachers", "logits"} else []
        if "logits" in stages:
            logits = self.logits(teachers)
        else:
            logits = self.logits_file if Path(str(self.logits_file)).is_file() else None
        students = self.students(logits) if "students" in stages else {}
        if not stages & {"quantize", "tables"}:
            return None
        if not students:
            missing = [run.key for run in self.student_runs if self._done(self._record_path(run)) is None]
            if missing:
                raise ConfigError(f"no trained student for {missing[0]}; run the students stage first")
            students = {run: self.manifest[run.key] for run in self.student_runs}
        reports = self.quantize(students)
        if "tables" not in stages:
            return None
        table1 = self.out / "table1.md"
        shown = [table1.read_text()] if table1.is_file() else []
        frame = self.tables(reports)
        shown.append(to_markdown(display_frame(frame)))
        tables = ", ".join(str(t) for t in (table1, self.out / "table2.md") if t.is_file())  # what exists
        shown.append(f"\nTables: {tables} (per seed: *_seeds.csv); runs in {self.out}/")
        return "\n".join(shown)


def _has_progress(record: dict[str, Any], path: Path) -> bool:
    """Whether a run made anything worth keeping: it is done, running, or has a checkpoint."""
    if record.get("state") == "done" or record.get("state") not in ENDED_STATES:
        return True
    return (path.parent / "checkpoints" / "last.ckpt").is_file() and path.name == RECORD


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
